"""An InfluxDB 1.x (Debian's influxd) run as a child process on a loopback port.

Debian packages InfluxDB 1.6, which speaks InfluxQL and the 1.x ``/write`` endpoint only;
put ``composition.bench.v2shim`` in front of it for the v2 write path.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from composition.servers.mosquitto import find_binary
from composition.servers.ports import ServerFailed, free_port, port_is_free, wait_for_port
from composition.servers.process import ManagedServer
from sealscope.errors import ConfigError
from sealscope.storage.influxql import quote_ident

__all__ = ["InfluxServer", "find_influxd"]

log = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_START_TIMEOUT_S = 30.0


def find_influxd() -> str | None:
    return find_binary("influxd", "/usr/bin/influxd")


class InfluxServer(ManagedServer):
    """One influxd with its meta, data and WAL directories in ``workdir``; auth is off."""

    name = "influxd"
    stop_timeout_s = 15.0

    def __init__(
        self,
        *,
        workdir: Path,
        port: int | None = None,
        max_body_size: int | None = None,
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ConfigError("port", f"{port} is not a TCP port")
        if max_body_size is not None and max_body_size < 1:
            raise ConfigError("max_body_size", "must be positive (None: influxd's default)")
        super().__init__(host=_HOST)
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port(_HOST)
        self._rpc_port = free_port(_HOST)
        self._max_body_size = max_body_size

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "influxd.log"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "influxdb.conf"

    def _argv(self) -> list[str]:
        binary = find_influxd()
        if binary is None:
            raise ConfigError("influxd", "binary not found (apt-get install influxdb)")
        return [binary, "-config", str(self.conf_path)]

    def _prepare(self) -> None:
        self._argv()
        for port in (self.port, self._rpc_port):
            if not port_is_free(self.host, port):
                raise ServerFailed(f"{self.host}:{port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_conf()

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        wait_for_port(self.host, self.port, _START_TIMEOUT_S, proc)
        self._wait_for_ping(proc)

    def create_database(self, name: str) -> None:
        result = self.query(f"CREATE DATABASE {quote_ident(name)}")
        errors = [r["error"] for r in result.get("results", []) if "error" in r]
        if errors:
            raise ServerFailed(f"CREATE DATABASE {name!r} failed: {errors[0]}")

    def write_lines(self, db: str, lines: str, precision: str = "n") -> None:
        """Write line protocol through the 1.x ``/write`` endpoint (seeding, fixtures)."""
        query = urllib.parse.urlencode({"db": db, "precision": precision})
        request = urllib.request.Request(
            f"{self.url}/write?{query}", data=lines.encode(), method="POST"
        )
        self._call(request)

    def query(self, influxql: str, db: str | None = None) -> dict[str, Any]:
        """POST an InfluxQL query (reads and writes alike); timestamps come back in ns.

        Statement errors stay in the returned ``results``; HTTP errors raise ServerFailed.
        """
        params = {"q": influxql, "epoch": "ns"}
        if db is not None:
            params["db"] = db
        request = urllib.request.Request(
            f"{self.url}/query",
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
        )
        result: dict[str, Any] = json.loads(self._call(request))
        return result

    def _call(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ServerFailed(f"influxd answered {exc.code}: {detail}") from exc
        except OSError as exc:
            raise ServerFailed(f"influxd at {self.url} unreachable: {exc}") from exc

    def _wait_for_ping(self, proc: subprocess.Popen[bytes]) -> None:
        # the port opens before the HTTP service is fully wired; /ping 204 means ready
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"influxd exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                    if response.status == 204:
                        return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise ServerFailed(f"influxd /ping did not answer 204 within {_START_TIMEOUT_S}s")
            time.sleep(0.05)

    def _write_conf(self) -> None:
        max_body = self._max_body_size if self._max_body_size is not None else 25_000_000
        # JSON string syntax is valid TOML basic-string syntax, so odd paths stay intact
        meta, data, wal = (json.dumps(str(self.workdir / name)) for name in ("meta", "data", "wal"))
        self.conf_path.write_text(
            f"""\
# generated by composition.bench.influxdb; rewritten on every start
reporting-disabled = true
bind-address = "{_HOST}:{self._rpc_port}"

[meta]
  dir = {meta}
  logging-enabled = false

[data]
  dir = {data}
  wal-dir = {wal}
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{_HOST}:{self.port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  max-body-size = {max_body}

[continuous_queries]
  log-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""
        )
