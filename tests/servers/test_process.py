"""ManagedServer's process hygiene: children die with their parent, and a restart stops a
leftover of its own (found by pidfile and command line) but nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from composition.servers import MosquittoServer, find_mosquitto, free_port

pytestmark = pytest.mark.integration


def _require_mosquitto() -> None:
    if find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed; CI must install it")
        pytest.skip("mosquitto is not installed")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
    return value


def test_mosquitto_server_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    _require_mosquitto()
    port = free_port()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from composition.servers import MosquittoServer\n"
        f"s = MosquittoServer(workdir=Path({str(tmp_path)!r}), port={port}, use_pidfile=True)\n"
        "s.start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        broker_pid = int(parent.stdout.readline())
        assert _alive(broker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        _wait_for(lambda: not _alive(broker_pid), 10, "the broker to die with its parent")
        # it was SIGTERM: Mosquitto saved its persistence file on the way out
        assert (tmp_path / "mosquitto.db").is_file()
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]


def test_mosquitto_server_start_stops_a_leftover_of_its_own(tmp_path: Path) -> None:
    _require_mosquitto()
    old = MosquittoServer(workdir=tmp_path, port=free_port(), use_pidfile=True)
    old.start()
    leftover = old.pid
    assert leftover is not None
    # a new owner of the same workdir and port, as after a crash of the first one's parent
    new = MosquittoServer(workdir=tmp_path, port=old.port, use_pidfile=True)
    try:
        new.start()
        assert new.is_running and new.pid != leftover
        assert not old.is_running
        assert int((tmp_path / "mosquitto.pid").read_text()) == new.pid
    finally:
        new.stop()
        old.stop()
    assert not (tmp_path / "mosquitto.pid").exists()


def test_mosquitto_server_start_leaves_an_unrelated_process_named_by_a_stale_pidfile(
    tmp_path: Path,
) -> None:
    _require_mosquitto()
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "mosquitto.pid").write_text(f"{other.pid}\n")
        with MosquittoServer(workdir=tmp_path, use_pidfile=True) as server:
            assert server.is_running
            assert other.poll() is None
    finally:
        other.kill()
        other.wait()
