"""An app on real SQLite state in tmp_path and the in-memory telemetry store, and a real
uvicorn to serve an app on a free loopback port.

``client`` calls as the platform admin (an API key in its default headers); ``anon`` is a
client on the same app with no credentials.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette >= 1.x wants the httpx2 package for its TestClient and warns when it falls back
    # to httpx; the fallback works, and filterwarnings=error would otherwise stop collection.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from analytics.fleet_risk import FleetRisk
from composition.api import create_app
from composition.api.broker import BrokerLink
from composition.servers.mosquitto import MosquittoServer
from sealscope.accounts import (
    Authenticator,
    Remit,
    SignInThrottle,
    Site,
    SqliteAccountStore,
)
from sealscope.accounts.passwords import hash_password
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.risk import JsonFileRiskStore
from sealscope.storage import Point, Series
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.storage.sqlite import SqliteTelemetryStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # TestClient sends "Host: testserver": the test deployment answers to that name
    return Settings(data_dir=tmp_path / "data", api_allowed_hosts=["testserver", "localhost"])


@pytest.fixture
def registry(settings: Settings) -> Iterator[SqliteDeviceRegistry]:
    reg = SqliteDeviceRegistry(settings.state_db)
    yield reg
    reg.close()


@pytest.fixture
def alerts(settings: Settings) -> Iterator[SqliteAlertStore]:
    store = SqliteAlertStore(settings.state_db)
    yield store
    store.close()


@pytest.fixture
def dead_letters(settings: Settings) -> Iterator[SqliteDeadLetterStore]:
    store = SqliteDeadLetterStore(settings.state_db)
    yield store
    store.close()


@pytest.fixture
def telemetry() -> MemoryTelemetryStore:
    return MemoryTelemetryStore()


@pytest.fixture
def accounts(settings: Settings) -> Iterator[SqliteAccountStore]:
    store = SqliteAccountStore(settings.state_db)
    yield store
    store.close()


@pytest.fixture
def authenticator(accounts: SqliteAccountStore) -> Authenticator:
    return Authenticator(accounts, throttle=SignInThrottle(per_username=3, per_source=10))


@pytest.fixture
def admin_key(authenticator: Authenticator) -> str:
    org = authenticator.store.create_org(name="platform", kind="admin")
    key, _ = authenticator.create_key(org.id, name="tests")
    return key


@pytest.fixture
def app(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    telemetry: MemoryTelemetryStore,
    authenticator: Authenticator,
) -> Any:
    return create_app(
        settings,
        telemetry_store=telemetry,
        registry=registry,
        alerts=alerts,
        dead_letters=dead_letters,
        authenticator=authenticator,
    )


@pytest.fixture
def client(app: Any, admin_key: str) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as c:
        yield c


@pytest.fixture
def anon(client: TestClient, app: Any) -> TestClient:
    """No credentials; the admin ``client`` keeps the lifespan (the stores) open."""
    return TestClient(app)


def _assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert body["message"].endswith(".")
    return body


@pytest.fixture
def assert_error() -> Callable[[httpx.Response, int, str], dict[str, Any]]:
    """Checks the one error shape: {"error": code, "message": sentence}; returns the body."""
    return _assert_error


_SERVER_WAIT_S = 5.0


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # ws="none": no websockets import, whose deprecation warnings would be errors here
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _SERVER_WAIT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_SERVER_WAIT_S)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="session")
def serve() -> Callable[[FastAPI], AbstractContextManager[str]]:
    """``with serve(app) as url``: the app under a real uvicorn on a free loopback port."""
    return _serve


LIVE_USER, LIVE_PASSWORD = "live.tech", "live password, long enough"


@dataclass(frozen=True)
class LiveApi:
    """A served app over real SQLite files (state and telemetry) holding seeded rows."""

    url: str
    device_ids: tuple[str, ...]
    alert_ids: tuple[int, ...]
    keys: dict[str, str]  # role -> API key; "anonymous" -> ""
    operator_id: int
    user: tuple[str, str] = (LIVE_USER, LIVE_PASSWORD)  # the operator's technician


def _seed_live_accounts(settings: Settings) -> tuple[dict[str, str], int]:
    """One organisation per kind with a key; the operator owns both seeded sites."""
    store = SqliteAccountStore(settings.state_db)
    try:
        auth = Authenticator(store)
        keys = {"anonymous": ""}
        codes = {"manufacturer": "ACME"}
        orgs = {}
        for kind in ("operator", "manufacturer", "monitoring_point", "admin"):
            org = store.create_org(
                name=f"live {kind}", kind=kind, manufacturer_code=codes.get(kind)
            )  # type: ignore[arg-type]
            orgs[kind] = org.id
            keys[kind] = auth.create_key(org.id, name="live")[0]
        for site in ("north", "south"):
            store.put_site(Site(site, orgs["operator"], ""))
        store.set_remit(orgs["monitoring_point"], Remit(frozenset({""}), frozenset({"valve"})))
        store.create_user(
            org_id=orgs["operator"], username=LIVE_USER, password_hash=hash_password(LIVE_PASSWORD)
        )
    finally:
        store.close()
    return keys, orgs["operator"]


LIVE_DEVICES = (
    Device("ACME-DN50-000001", "valve", "ACME", "BV-50", site="north", dn=50, pn=16),
    Device("ACME-DN50-000002", "valve", "ACME", "BV-50", site="south", leakage_class="B"),
    Device("PUMPCO-P80-000003", "pump", "PumpCo", "P-80", site="south"),
)
LIVE_NOW_S = 1_717_000_000  # fixed, so seeded times are reproducible


async def _seed_live_telemetry(path: Path) -> None:
    store = SqliteTelemetryStore(path)
    try:
        points = [
            Point(
                Series(d.kind, d.tags),
                (LIVE_NOW_S - 60 * k) * 1_000_000_000,
                {"p_in_kpa": 400.0 + k, "temp_c": 20.0 + k % 7},
            )
            for d in LIVE_DEVICES
            for k in range(200)
        ]
        await store.write(points)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def live_api(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: MosquittoServer
) -> Iterator[LiveApi]:
    """One per module: its tests add devices and move alerts, never delete anything."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("live") / "data", store="sqlite")
    registry = SqliteDeviceRegistry(settings.state_db)
    registry.upsert_many(LIVE_DEVICES)
    registry.close()
    alerts = SqliteAlertStore(settings.state_db)
    alert_ids = tuple(
        alerts.raise_alert(
            device_id=d.device_id,
            cause=cause,
            category="maintenance_required",
            severity=3,
            summary=f"{cause} on {d.device_id}",
            evidence={"ratio": 2.5},
            t=LIVE_NOW_S - 600,
        ).id
        for d in LIVE_DEVICES
        for cause in ("seat_leak", "actuation_wear")
    )
    alerts.close()
    letters = SqliteDeadLetterStore(settings.state_db)
    for payload in (b"{not json", b"\xff\xfe binary"):
        letters.add(
            topic=f"sealscope/v1/dev/{LIVE_DEVICES[0].device_id}/telemetry",
            payload=payload,
            code="malformed",
            reason="seeded",
            device_id=LIVE_DEVICES[0].device_id,
        )
    letters.close()
    asyncio.run(_seed_live_telemetry(settings.telemetry_db))
    # the table a detection process would have saved, so /risk answers 200, not 503
    risk = FleetRisk()
    risk.add_devices(LIVE_DEVICES)
    ids = [d.device_id for d in LIVE_DEVICES]
    risk.observe_many(
        ids, np.full(len(ids), LIVE_NOW_S - 86_400 * 200.0), np.full(len(ids), float(LIVE_NOW_S))
    )
    risk.record_event(ids[0], LIVE_NOW_S - 86_400 * 10.0)
    settings.detector_state_dir.mkdir(parents=True, exist_ok=True)
    JsonFileRiskStore(settings.risk_table_path).save(risk.table())
    keys, operator_id = _seed_live_accounts(settings)
    # the session's broker: device commands are published there
    broker = BrokerLink(host=mosquitto.host, port=mosquitto.port)
    assert broker.start(), "no connection to the test broker"
    try:
        with _serve(create_app(settings, broker=broker)) as url:
            ids = tuple(d.device_id for d in LIVE_DEVICES)
            yield LiveApi(url, ids, alert_ids, keys, operator_id)
    finally:
        broker.stop()
