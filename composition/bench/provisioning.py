"""``sealscope bench provisioning``: a fleet provisioned through the HTTP API, its MQTT
logins applied to a real Mosquitto (dynamic security) in the background, then every
device publishing once with its own login.

Prints the upload's response time, the time until the broker had every login (from the
upload report), and connects/s and messages accepted. Ceiling, from the same broker once
it holds the whole fleet: one bare dynsec ``createClient`` chunk of the same size, which
is what each of the applier's chunks costs at that size (the plugin rewrites its whole
config after every command).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn

from composition.admin import create_admin_key
from composition.api import create_app
from composition.bench.dynsec import (
    DynsecBroker,
    UplinkCounter,
    publish_once_per_device,
    start_dynsec_broker,
)
from composition.servers.ports import free_port
from sealscope.broker_admin import DEVICE_ROLE, BrokerAdmin, new_password
from sealscope.config import Settings
from sealscope.storage.memory import MemoryTelemetryStore

__all__ = ["run_bench_provisioning"]

_HEADER = ("serial", "kind", "model", "dn", "pn", "seat_material", "leakage_class", "lot")
_POLL_S = 1.0


def _fleet_csv(devices: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_HEADER)
    writer.writerows(
        (f"BENCH-BV50-{i:06d}", "valve", "BV-50", 50, 16, "PTFE", "B", "L001")
        for i in range(devices)
    )
    return out.getvalue().encode()


class _Api:
    """The API on uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        app = create_app(settings, telemetry_store=MemoryTelemetryStore())
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, name="bench-api")

    def __enter__(self) -> _Api:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(60)

    def call(self, method: str, path: str, key: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())


def _bare_chunk_s(broker: DynsecBroker, chunk: int) -> float:
    """One createClient chunk of new devices on the broker as it is now."""
    ids = [f"CEIL-V-{i:06d}" for i in range(chunk)]
    commands = [
        {
            "command": "createClient",
            "username": d,
            "password": new_password(),
            "clientid": d,
            "roles": [{"rolename": DEVICE_ROLE}],
        }
        for d in ids
    ]
    with broker.control(chunk_commands=chunk, timeout_s=600) as control:
        t = time.perf_counter()
        BrokerAdmin(control).run(commands)
        return time.perf_counter() - t


def run_bench_provisioning(*, devices: int, chunk_commands: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sealscope-bench-prov-") as tmp:
        broker = start_dynsec_broker(Path(tmp) / "broker")
        try:
            _bench(broker, Path(tmp) / "data", devices, chunk_commands, workers)
        finally:
            broker.server.stop()


def _bench(
    broker: DynsecBroker, data_dir: Path, devices: int, chunk_commands: int, workers: int
) -> None:
    settings = Settings(
        data_dir=data_dir,
        broker_admin_host=broker.server.host,
        broker_admin_port=broker.server.port,
        broker_admin_username=broker.admin_username,
        broker_admin_password=broker.admin_password,
        broker_admin_chunk_commands=chunk_commands,
    )
    key = create_admin_key(settings, name="bench")
    body = _fleet_csv(devices)
    with _Api(settings) as api:
        started = time.perf_counter()
        report = api.call("POST", "/api/v1/provisioning/devices?manufacturer=BENCH", key, body)
        response_s = time.perf_counter() - started
        upload_id = report["upload"]["id"]
        rows = csv.DictReader(io.StringIO(report["credentials_csv"]))
        passwords = {r["device_id"]: r["mqtt_password"] for r in rows}
        print(
            f"POST {devices} devices: answered in {response_s:.1f} s with "
            f"{sum(1 for p in passwords.values() if p)} MQTT passwords"
        )
        path = f"/api/v1/provisioning/uploads/{upload_id}?limit=1"
        broker_report = api.call("GET", path, key)["broker"]
        while broker_report["state"] == "applying":
            time.sleep(_POLL_S)
            broker_report = api.call("GET", path, key)["broker"]
        applied_s = time.perf_counter() - started
    print(
        f"broker had all logins {applied_s:.0f} s after the upload "
        f"({broker_report['applied']}/{broker_report['total']} {broker_report['state']}, "
        f"{broker_report['applied'] / applied_s:.0f} logins/s, chunks of {chunk_commands})"
    )
    bare_s = _bare_chunk_s(broker, chunk_commands)
    print(
        f"  ceiling: one bare createClient chunk of {chunk_commands} at {devices} clients: "
        f"{bare_s:.2f} s ({chunk_commands / bare_s:.0f} clients/s at that size)"
    )
    with broker.control() as control:
        ingest_password = BrokerAdmin(control).provision_service("ingest")
    with UplinkCounter(broker, "sealscope-ingest", ingest_password) as ingest:
        run = publish_once_per_device(
            broker.server.host, broker.server.port, passwords, workers=workers
        )
        arrived = ingest.wait_for(devices, timeout_s=60)
    accepted = sum(1 for r in run.puback.values() if r == "Success")
    print(
        f"{devices} devices connected and published once: {run.elapsed_s:.1f} s, "
        f"{run.connects_per_s:.0f} connects/s ({workers} at a time); PUBACK success "
        f"{accepted}, arrived at ingest {len(ingest.devices)}{'' if arrived else ' (timed out)'}"
    )
