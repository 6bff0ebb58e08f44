"""A NATS server with JetStream as a child process, for tests, benches and fault runs that
need one of their own (to kill it, or where none runs on 127.0.0.1:4222)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from composition.servers.ports import free_port, wait_for_port
from composition.servers.process import ManagedServer
from sealscope.errors import ConfigError

__all__ = ["NatsServer", "find_nats_server"]

_START_TIMEOUT_S = 20.0


def find_nats_server() -> str | None:
    found = shutil.which("nats-server")
    if found is None and Path("/usr/sbin/nats-server").is_file():
        found = "/usr/sbin/nats-server"
    return found


class NatsServer(ManagedServer):
    name = "nats-server"

    def __init__(self, *, workdir: Path, host: str = "127.0.0.1", port: int | None = None):
        self.workdir = Path(workdir)
        super().__init__(host=host, pidfile=self.workdir / "nats-server.pid")
        # chosen once: clients reconnect to the same port after a restart
        self.port = port if port is not None else free_port(host)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "nats-server.log"

    def _argv(self) -> list[str]:
        binary = find_nats_server()
        if binary is None:
            raise ConfigError("nats-server", "binary not found (apt-get install nats-server)")
        store = str(self.workdir / "jetstream")
        return [binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", store]

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        wait_for_port(self.host, self.port, _START_TIMEOUT_S, proc)
