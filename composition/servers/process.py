"""Child server processes that die with their parent, and the base class that runs them.

Every managed child (Mosquitto, influxd, the v2 shim) is started by ``spawn``: its own
session, so a terminal's Ctrl-C reaches only the parent, which then stops the children in
order (the broker must outlive the ingest draining it); and ``PR_SET_PDEATHSIG``, so that
when the parent dies without stopping them (SIGKILL, OOM) the kernel sends them SIGTERM:
Mosquitto then saves its persistence file and frees its port for the next start.

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not the process:
start children from a thread that lives as long as they should (the main thread, the
event loop's thread), never from a short-lived worker thread.

``ManagedServer`` is start / wait-ready / stop / kill / restart once for all of them, with
an optional pidfile through which a restart finds a leftover of its own (a child of a
parent killed before this module made children die with it) and stops it.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from composition.servers.ports import ServerFailed, log_tail

__all__ = ["ManagedServer", "kill_process", "spawn", "stop_process"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PARENT_DEATH_SIGNAL = signal.SIGTERM  # lets Mosquitto save its sessions before it exits


def _load_prctl() -> Callable[..., int] | None:
    # looked up in the parent: the child between fork and exec should only call it
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None  # not Linux: children outlive a killed parent, the pidfile cleans up
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    fn: Callable[..., int] = prctl
    return fn


_prctl = _load_prctl()

# children still running when the interpreter exits are killed, so a crashed test run or
# CLI does not leave brokers holding ports and persistence files
_children: set[subprocess.Popen[bytes]] = set()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    if _prctl is None:
        return None
    prctl = _prctl

    def in_child() -> None:
        # runs between fork and exec (preexec_fn): no locks, no logging, no allocation
        # beyond the call itself, since other threads of the parent may hold locks
        prctl(_PR_SET_PDEATHSIG, int(_PARENT_DEATH_SIGNAL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child with stdout and stderr appended to ``log_path``; it dies with us."""
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),  # safe as written: see the module doc
        )
    _children.add(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.1fs; killing it", proc.pid, timeout_s)
            proc.kill()
    code = proc.wait()
    _children.discard(proc)
    return code


def kill_process(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL without a chance to save state (crash simulation); returns the exit code."""
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    _children.discard(proc)
    return code


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0")[:-1]]


def _is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie holds no port


def _stop_pid(pid: int, timeout_s: float) -> None:
    """SIGTERM a process that is not our child, then SIGKILL; waits until it is gone."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while _is_alive(pid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        else:
            return
    raise ServerFailed(f"leftover pid {pid} did not exit")


class ManagedServer:
    """A server child process: ``start()`` returns once it is ready, ``stop()`` is SIGTERM
    then SIGKILL, ``kill()`` is a crash, ``restart()`` keeps ports and data.

    Subclasses give ``_argv()``, ``_wait_ready()`` and, if they need them, ``_prepare()``
    (config files, port checks) and ``_env()``.
    """

    name: ClassVar[str] = "server"
    stop_timeout_s: ClassVar[float] = 10.0

    def __init__(self, *, host: str = "127.0.0.1", pidfile: Path | None = None) -> None:
        self.host = host
        self._pidfile = pidfile
        self._proc: subprocess.Popen[bytes] | None = None

    # -- what a subclass says ------------------------------------------------------------
    @property
    def log_path(self) -> Path | None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _prepare(self) -> None:
        """Before each spawn: write config, check ports (raise ServerFailed if taken)."""

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        raise NotImplementedError

    def _after_stop(self) -> None:
        """After stop, kill or a failed start."""

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code if the child died (or was stopped) since it was started."""
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> None:
        if self.is_running:
            return
        if self._proc is not None:  # died by itself: collect it before starting anew
            kill_process(self._proc)
            self._proc = None
        self.stop_leftover()
        self._prepare()
        log_path = self.log_path
        assert log_path is not None, "_prepare must settle the log path"
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = spawn(self._argv(), log_path=log_path, env=self._env())
        try:
            self._wait_ready(proc, offset)
        except ServerFailed as exc:
            stop_process(proc, timeout_s=2.0)
            tail = log_tail(log_path)
            self._after_stop()
            raise ServerFailed(f"{self.name} did not start: {exc}", log_tail=tail) from exc
        self._proc = proc
        if self._pidfile is not None:
            self._pidfile.write_text(f"{proc.pid}\n")
        log.info("%s pid %d ready", self.name, proc.pid)

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM (servers save their state), then SIGKILL after ``timeout_s``."""
        if self._proc is not None:
            code = stop_process(self._proc, self.stop_timeout_s if timeout_s is None else timeout_s)
            log.info("%s pid %d stopped (exit %d)", self.name, self._proc.pid, code)
            self._forget()
        self._after_stop()

    def kill(self) -> None:
        """SIGKILL: a crash; only what the server already wrote to disk survives."""
        if self._proc is not None:
            kill_process(self._proc)
            self._forget()
        self._after_stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop_leftover(self) -> int | None:
        """Stop the process the pidfile names if it runs our very command line (a child of
        an earlier parent that was killed); returns its pid, or None if there was none."""
        if self._pidfile is None or self.is_running:
            return None
        try:
            pid = int(self._pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if _is_alive(pid) and _cmdline(pid) == self._argv():
            log.warning("%s: stopping leftover pid %d of an earlier run", self.name, pid)
            _stop_pid(pid, self.stop_timeout_s)
            self._pidfile.unlink(missing_ok=True)
            return pid
        self._pidfile.unlink(missing_ok=True)  # stale, or a reused pid that is not ours
        return None

    def _forget(self) -> None:
        self._proc = None
        if self._pidfile is not None:
            self._pidfile.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
