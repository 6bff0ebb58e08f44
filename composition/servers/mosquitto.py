"""A Mosquitto broker run as a child process on a loopback port.

Used by the test harness, ``sealscope bench ingest`` and ``sealscope up`` (the embedded
default), so the generated configuration is the one a durable deployment needs: persistent
sessions and queued QoS 1 messages survive a restart, and queues are large enough that a
slow or offline consumer does not lose messages.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from composition.servers.ports import (
    ServerFailed,
    free_port,
    kill_process,
    log_tail,
    port_is_free,
    spawn,
    stop_process,
    wait_for_port,
)
from sealscope.errors import ConfigError

__all__ = ["MosquittoServer", "find_mosquitto"]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3  # free-port picks; a fixed port that is taken fails at once


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary; Debian installs it in /usr/sbin, often not on PATH."""
    return _find("mosquitto", "/usr/sbin/mosquitto")


def _find(name: str, fallback: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return fallback if os.access(fallback, os.X_OK) else None


class MosquittoServer:
    """One broker in ``workdir`` (config, password/ACL files, persistence, log).

    ``restart()`` keeps the port and the persistence file, so clients with persistent
    sessions find their subscriptions and queued messages again.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        users: dict[str, str] | None = None,
        acl_lines: list[str] | None = None,
        max_queued_messages: int = 1_000_000,
        max_inflight_messages: int = 2000,
        extra_conf: Iterable[str] = (),
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ConfigError("port", f"{port} is not a TCP port")
        if max_queued_messages < 0 or max_inflight_messages < 0:
            raise ConfigError("max_queued_messages", "limits must be >= 0 (0 means none)")
        for name in users or {}:
            if not name or any(c in name for c in ":\n\r"):
                raise ConfigError("users", f"user name {name!r} cannot go in a password file")
        self.workdir = Path(workdir)
        self.host = host
        self._port = port
        self._is_port_fixed = port is not None
        self._users = dict(users) if users else None
        self._acl_lines = list(acl_lines) if acl_lines is not None else None
        self._max_queued_messages = max_queued_messages
        self._max_inflight_messages = max_inflight_messages
        self._extra_conf = list(extra_conf)
        self._proc: subprocess.Popen[bytes] | None = None
        self._is_prepared = False

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port(self.host)
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self.is_running:
            return
        binary = find_mosquitto()
        if binary is None:
            raise ConfigError("mosquitto", "binary not found (apt-get install mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._is_prepared:
            self._write_auth_files()
            self._is_prepared = True
        for _ in range(_START_ATTEMPTS):
            if port_is_free(self.host, self.port):
                break
            if self._is_port_fixed:
                raise ServerFailed(f"{self.host}:{self.port} is already in use")
            self._port = free_port(self.host)  # another process took the free port first
        self._write_conf()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        proc = spawn([binary, "-c", str(self.conf_path)], log_path=self.log_path)
        try:
            self._wait_until_running(proc, offset)
            wait_for_port(self.host, self.port, _START_TIMEOUT_S, proc)
        except ServerFailed as exc:
            stop_process(proc, timeout_s=2.0)
            raise ServerFailed(
                f"mosquitto did not start: {exc}", log_tail=log_tail(self.log_path)
            ) from exc
        self._proc = proc
        self._is_port_fixed = True  # clients know this port now; restarts must keep it
        log.info("mosquitto pid %d listening on %s", proc.pid, self.url)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file), then SIGKILL after ``timeout_s``."""
        if self._proc is not None:
            code = stop_process(self._proc, timeout_s)
            log.info("mosquitto pid %d stopped (exit %d)", self._proc.pid, code)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; only what the last autosave wrote survives."""
        if self._proc is not None:
            kill_process(self._proc)
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

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

    def _wait_until_running(self, proc: subprocess.Popen[bytes], offset: int) -> None:
        # "running" is logged once every listener is bound; a failed bind exits instead
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                if b" running" in f.read():
                    return
            if proc.poll() is not None:
                raise ServerFailed(f"mosquitto exited with {proc.returncode}")
            if time.monotonic() >= deadline:
                raise ServerFailed(f"mosquitto did not report running within {_START_TIMEOUT_S}s")
            time.sleep(0.01)

    def _write_auth_files(self) -> None:
        if self._users is not None:
            passwd = _find("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
            if passwd is None:
                raise ConfigError("mosquitto_passwd", "binary not found")
            path = self.workdir / "passwd"
            # plaintext written 0600 and hashed in place (-U), so passwords never reach argv
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{user}:{password}\n" for user, password in self._users.items())
            result = subprocess.run(
                [passwd, "-U", str(path)], capture_output=True, timeout=30, check=False
            )
            if result.returncode != 0:
                path.unlink(missing_ok=True)
                raise ServerFailed(
                    "mosquitto_passwd failed", log_tail=result.stderr.decode("utf-8", "replace")
                )
        if self._acl_lines is not None:
            (self.workdir / "acl").write_text("".join(f"{line}\n" for line in self._acl_lines))

    def _write_conf(self) -> None:
        lines = [
            "# generated by composition.servers.mosquitto; rewritten on every start",
            f"listener {self.port} {self.host}",
            # when run as root mosquitto would switch to the 'mosquitto' user, which cannot
            # write the persistence file in a private workdir; name the current user instead
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            # SIGTERM always saves; the short interval bounds what a SIGKILL loses
            "autosave_interval 1",
            # the default 1000 silently drops QoS 1 messages for a consumer that is slow or
            # offline; 0 would mean unbounded memory
            f"max_queued_messages {self._max_queued_messages}",
            # the default 20 unacknowledged deliveries stalls a consumer that acknowledges
            # only after a batch is durable (MQTT v5 clients state their own Receive Maximum)
            f"max_inflight_messages {self._max_inflight_messages}",
            "log_dest stderr",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        if self._users is not None:
            lines += ["allow_anonymous false", f"password_file {self.workdir / 'passwd'}"]
        else:
            lines.append("allow_anonymous true")
        if self._acl_lines is not None:
            lines.append(f"acl_file {self.workdir / 'acl'}")
        lines += self._extra_conf
        self.conf_path.write_text("\n".join(lines) + "\n")
