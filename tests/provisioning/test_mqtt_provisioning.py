"""Provisioned MQTT logins on a real Mosquitto with the dynamic-security plugin.

The upload answers with every password at once; the broker gets them in the background,
the upload report shows how far, and an API restarted before the broker had them all
resumes. Then every device publishes with its own login, and only as itself.
(``sealscope bench provisioning --devices 10000`` runs the same at fleet scale.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from composition.api import create_app
from composition.bench.dynsec import DynsecBroker
from composition.servers.ports import free_port
from sealscope.config import Settings
from sealscope.provisioning import PasswordSealer
from sealscope.storage.memory import MemoryTelemetryStore
from tests.broker_admin.broker import assert_fleet_publishes_only_as_itself, start_dynsec_broker
from tests.provisioning.conftest import (
    UPLOAD,
    bearer,
    bundle_rows,
    fleet_csv,
    fleet_rows,
    make_keys,
)

pytestmark = pytest.mark.integration

FLEET = 1_000
APPLY_TIMEOUT_S = 300.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DynsecBroker]:
    broker = start_dynsec_broker(tmp_path / "broker")
    try:
        yield broker
    finally:
        broker.server.stop()


def _settings(data_dir: Path, broker: DynsecBroker, *, port: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        api_allowed_hosts=["testserver"],
        broker_admin_host=broker.server.host,
        broker_admin_port=port,
        broker_admin_username=broker.admin_username,
        broker_admin_password=broker.admin_password,
    )


def _broker_report(client: TestClient, location: str) -> dict[str, Any]:
    r = client.get(location, params={"limit": 1})
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()["broker"]
    return report


def _stored_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())


def test_mqtt_provisioning_applies_in_background_resumes_and_confines_devices(
    tmp_path: Path, broker: DynsecBroker
) -> None:
    data_dir = tmp_path / "data"
    unreachable = _settings(data_dir, broker, port=free_port())
    key = make_keys(unreachable)["acme"]

    # the broker admin is unreachable: the upload still answers with every password
    app = create_app(unreachable, telemetry_store=MemoryTelemetryStore())
    with TestClient(app, headers=bearer(key)) as client:
        r = client.post(
            UPLOAD,
            content=fleet_csv(fleet_rows(FLEET, prefix="MQTT")),
            headers={"content-type": "text/csv", "accept": "text/csv"},
        )
        assert r.status_code == 200, r.text
        location = r.headers["location"]
        assert _broker_report(client, location) == {
            "applied": 0,
            "total": FLEET,
            "state": "applying",
        }
    bundle = bundle_rows(r.text)
    passwords = {d: row["mqtt_password"] for d, row in bundle.items()}
    assert len(passwords) == FLEET and all(passwords.values())
    assert all(row["mqtt_username"] == d for d, row in bundle.items())
    stored = _stored_bytes(data_dir)
    assert not any(p.encode() in stored for p in passwords.values())

    # a restarted API with the broker reachable resumes and applies them all
    app = create_app(
        _settings(data_dir, broker, port=broker.server.port),
        telemetry_store=MemoryTelemetryStore(),
    )
    with TestClient(app, headers=bearer(key)) as client:
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        report = _broker_report(client, location)
        while report["state"] == "applying" and time.monotonic() < deadline:
            time.sleep(0.5)
            report = _broker_report(client, location)
    assert report == {"applied": FLEET, "total": FLEET, "state": "done"}
    assert not any(p.encode() in _stored_bytes(data_dir) for p in passwords.values())

    assert_fleet_publishes_only_as_itself(broker, passwords, ingest_username="sealscope-ingest-p")


def test_password_sealer_opens_only_for_its_device() -> None:
    sealer = PasswordSealer(bytes(32))
    sealed = sealer.seal("ACME-V-000001", "s3cret-password")
    assert b"s3cret-password" not in sealed
    assert sealer.open("ACME-V-000001", sealed) == "s3cret-password"
    with pytest.raises(ValueError, match="does not open"):
        sealer.open("ACME-V-000002", sealed)
    with pytest.raises(ValueError, match="does not open"):
        PasswordSealer(bytes([1]) * 32).open("ACME-V-000001", sealed)
