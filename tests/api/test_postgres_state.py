"""The API opens its state database from ``database_url``: the same routes on PostgreSQL."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from composition.api import create_app
from sealscope.accounts import Authenticator, MemoryAccountStore
from sealscope.config import Settings
from sealscope.db import open_engine, tables
from sealscope.storage.memory import MemoryTelemetryStore


def _admin() -> tuple[Authenticator, dict[str, str]]:
    # accounts are not on the SQLAlchemy state yet (revision 0002_accounts is to come): an
    # injected in-memory store keeps this test about the registry, alerts and dead letters
    auth = Authenticator(MemoryAccountStore())
    key, _ = auth.create_key(auth.store.create_org(name="a", kind="admin").id, name="t")
    return auth, {"Authorization": f"Bearer {key}"}


def test_api_on_postgres_state_migrates_and_serves_devices(
    tmp_path: Path, postgres_databases: Any
) -> None:
    url = postgres_databases.create()
    settings = Settings(data_dir=tmp_path, database_url=url, api_allowed_hosts=["testserver"])
    auth, headers = _admin()
    app = create_app(settings, telemetry_store=MemoryTelemetryStore(), authenticator=auth)
    with TestClient(app, headers=headers) as client:
        body = {"device_id": "ACME-0001", "kind": "valve", "manufacturer": "a", "model": "m"}
        assert client.post("/api/v1/devices", json=body).status_code == 201
        assert client.post("/api/v1/devices", json=body).status_code == 409
        assert client.get("/api/v1/devices/ACME-0001").json()["model"] == "m"
        assert client.get("/api/v1/alerts").json()["data"] == []
        assert client.get("/api/v1/dead-letters").json()["total"] == 0
    engine = open_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(tables.devices.c.device_id)) == "ACME-0001"
    engine.dispose()
    assert not (tmp_path / "sealscope.db").exists()


@pytest.mark.parametrize("path", ["/api/v1/devices/ACME%000001", "/api/v1/alerts?device_id=A%00"])
def test_api_on_postgres_state_nul_in_a_lookup_is_not_a_server_error(
    tmp_path: Path, postgres_databases: Any, path: str
) -> None:
    url = postgres_databases.create()
    settings = Settings(data_dir=tmp_path, database_url=url, api_allowed_hosts=["testserver"])
    auth, headers = _admin()
    app = create_app(settings, telemetry_store=MemoryTelemetryStore(), authenticator=auth)
    with TestClient(app, headers=headers) as client:
        assert client.get(path).status_code < 500
