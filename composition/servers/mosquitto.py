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

from composition.servers.ports import ServerFailed, free_port, port_is_free, wait_for_port
from composition.servers.process import ManagedServer
from sealscope.errors import ConfigError

__all__ = ["MosquittoServer", "find_dynsec_plugin", "find_mosquitto"]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3  # free-port picks; a fixed port that is taken fails at once


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary; Debian installs it in /usr/sbin, often not on PATH."""
    return find_binary("mosquitto", "/usr/sbin/mosquitto")


_DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"
_DYNSEC_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/usr/local/lib",
)


def find_dynsec_plugin() -> str | None:
    """Path of the dynamic-security plugin (Debian ships it beside libmosquitto)."""
    for directory in _DYNSEC_DIRS:
        path = Path(directory) / _DYNSEC_PLUGIN
        if path.is_file():
            return str(path)
    return None


def find_binary(name: str, fallback: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return fallback if os.access(fallback, os.X_OK) else None


class MosquittoServer(ManagedServer):
    """One broker in ``workdir`` (config, password/ACL files, persistence, log, pidfile).

    ``restart()`` keeps the port and the persistence file, so clients with persistent
    sessions find their subscriptions and queued messages again.

    Persistence: Mosquitto writes its whole in-memory state to ``mosquitto.db`` on SIGTERM
    and on autosave. ``autosave_interval_s`` saves every that many seconds;
    ``autosave_on_changes`` makes the interval a count of changes instead (1: a save after
    each stored, queued or acknowledged message). What a SIGKILL loses is what changed
    since the last save.
    """

    name = "mosquitto"

    def __init__(
        self,
        *,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        users: dict[str, str] | None = None,
        acl_lines: list[str] | None = None,
        allow_anonymous: bool | None = None,
        max_queued_messages: int = 1_000_000,
        max_inflight_messages: int = 2000,
        autosave_interval: int = 1,
        autosave_on_changes: bool = False,
        use_pidfile: bool = False,
        extra_conf: Iterable[str] = (),
        dynsec_config_file: Path | None = None,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ConfigError("port", f"{port} is not a TCP port")
        if max_queued_messages < 0 or max_inflight_messages < 0:
            raise ConfigError("max_queued_messages", "limits must be >= 0 (0 means none)")
        if autosave_interval < 1:
            raise ConfigError("autosave_interval", "must be >= 1 (seconds or changes)")
        for name in users or {}:
            if not name or any(c in name for c in ":\n\r"):
                raise ConfigError("users", f"user name {name!r} cannot go in a password file")
        self.workdir = Path(workdir)
        super().__init__(host=host, pidfile=self.workdir / "mosquitto.pid" if use_pidfile else None)
        self._port = port
        self._is_port_fixed = port is not None
        self._users = dict(users) if users else None
        self._acl_lines = list(acl_lines) if acl_lines is not None else None
        # default: anonymous only when there are no users, as before
        self._allow_anonymous = self._users is None if allow_anonymous is None else allow_anonymous
        self._max_queued_messages = max_queued_messages
        self._max_inflight_messages = max_inflight_messages
        self._autosave_interval = autosave_interval
        self._autosave_on_changes = autosave_on_changes
        self._extra_conf = list(extra_conf)
        # the plugin reads the file at start only (not on SIGHUP) and rewrites it after
        # every command; it must exist (sealscope.broker_admin.write_initial_config)
        self._dynsec_config_file = Path(dynsec_config_file) if dynsec_config_file else None
        self._is_prepared = False

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port(self.host)
        return self._port

    @port.setter
    def port(self, port: int) -> None:
        """Settle the port before the first start (after ``stop_leftover`` freed it)."""
        if self._is_port_fixed and port != self._port:
            raise ConfigError("port", "the port is fixed once given or started")
        self._port = port
        self._is_port_fixed = True

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def start(self) -> None:
        super().start()
        self._is_port_fixed = True  # clients know this port now; restarts must keep it
        log.info("mosquitto listening on %s", self.url)

    def _argv(self) -> list[str]:
        binary = find_mosquitto()
        if binary is None:
            raise ConfigError("mosquitto", "binary not found (apt-get install mosquitto)")
        return [binary, "-c", str(self.conf_path)]

    def _prepare(self) -> None:
        self._argv()  # a missing binary fails before any file is written
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

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        # "running" is logged once every listener is bound; a failed bind exits instead
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with self.log_path.open("rb") as f:
                f.seek(log_offset)
                if b" running" in f.read():
                    break
            if proc.poll() is not None:
                raise ServerFailed(f"mosquitto exited with {proc.returncode}")
            if time.monotonic() >= deadline:
                raise ServerFailed(f"mosquitto did not report running within {_START_TIMEOUT_S}s")
            time.sleep(0.01)
        wait_for_port(self.host, self.port, _START_TIMEOUT_S, proc)

    def _write_auth_files(self) -> None:
        if self._users is not None:
            passwd = find_binary("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
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
            # SIGTERM always saves; autosave bounds what a SIGKILL loses
            f"autosave_interval {self._autosave_interval}",
            f"autosave_on_changes {'true' if self._autosave_on_changes else 'false'}",
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
        lines.append(f"allow_anonymous {'true' if self._allow_anonymous else 'false'}")
        if self._users is not None:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        if self._acl_lines is not None:
            lines.append(f"acl_file {self.workdir / 'acl'}")
        if self._dynsec_config_file is not None:
            plugin = find_dynsec_plugin()
            if plugin is None:
                raise ConfigError("dynsec_config_file", f"{_DYNSEC_PLUGIN} not found")
            lines += [f"plugin {plugin}", f"plugin_opt_config_file {self._dynsec_config_file}"]
        lines += self._extra_conf
        self.conf_path.write_text("\n".join(lines) + "\n")
