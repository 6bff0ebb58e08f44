"""Device command routes on real SQLite state and the session's real Mosquitto: what is
published is what the gateway's decoder takes, validation answers 4xx (fuzzed), and a
broker that is away answers 503 and leaves the command on record as failed."""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from composition.api import create_app
from composition.api.broker import BrokerLink
from composition.servers import free_port
from composition.servers.mosquitto import MosquittoServer
from gateway.downlink import decode_command_request
from sealscope.accounts import Authenticator, Site
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage.memory import MemoryTelemetryStore

VALVE = Device("ACME-V-200001", "valve", "ACME", "BV-50", site="north")
PUMP = Device("ACME-P-200002", "pump", "ACME", "P-80", site="north")
ELSEWHERE = Device("ACME-V-200003", "valve", "ACME", "BV-50", site="south")


def _app(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    authenticator: Authenticator,
    broker: BrokerLink | None,
) -> Any:
    return create_app(
        settings,
        telemetry_store=MemoryTelemetryStore(),
        registry=registry,
        alerts=alerts,
        dead_letters=dead_letters,
        authenticator=authenticator,
        broker=broker,
    )


@pytest.fixture
def keys(authenticator: Authenticator, registry: SqliteDeviceRegistry) -> dict[str, str]:
    store = authenticator.store
    out = {}
    for kind in ("operator", "manufacturer", "admin"):
        code = "ACME" if kind == "manufacturer" else None
        org = store.create_org(name=kind, kind=kind, manufacturer_code=code)  # type: ignore[arg-type]
        out[kind] = authenticator.create_key(org.id, name=f"{kind} key")[0]
        if kind == "operator":
            store.put_site(Site("north", org.id, "R1"))
    for device in (VALVE, PUMP, ELSEWHERE):
        registry.add(device)
    return out


@pytest.fixture
def link(mosquitto: MosquittoServer) -> Iterator[BrokerLink]:
    broker = BrokerLink(host=mosquitto.host, port=mosquitto.port)
    assert broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def api(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    authenticator: Authenticator,
    link: BrokerLink,
    keys: dict[str, str],
) -> Iterator[TestClient]:
    app = _app(settings, registry, alerts, dead_letters, authenticator, link)
    with TestClient(app, headers={"Authorization": f"Bearer {keys['operator']}"}) as client:
        yield client


class Listener:
    """A subscriber on the device's cmd topic, as the gateway is."""

    def __init__(self, mosquitto: MosquittoServer, topic: str) -> None:
        self.messages: list[bytes] = []
        self.got = threading.Event()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(bytes(msg.payload))
        self.got.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_command_is_published_as_the_gateway_reads_it_and_listed(
    api: TestClient, mosquitto: MosquittoServer
) -> None:
    listener = Listener(mosquitto, f"sealscope/v1/dev/{VALVE.device_id}/cmd")
    try:
        url = f"/api/v1/devices/{VALVE.device_id}/commands"
        response = api.post(url, json={"name": "stroke_test", "ttl_s": 7200})
        assert response.status_code == 202, response.text
        assert response.headers["Location"] == url
        command = response.json()
        assert command["state"] == "requested" and command["created_by"] == "operator key"
        assert listener.got.wait(10)
    finally:
        listener.close()
    (payload,) = listener.messages
    request = decode_command_request(payload)  # the gateway's own decoder
    assert (request.id, request.name) == (command["id"], "stroke_test")
    assert request.expires_t is not None
    created = json.loads(response.text)["created_at"]
    assert created < command["expires_at"]
    listed = api.get(url).json()
    assert [c["id"] for c in listed["data"]] == [command["id"]]
    assert listed["data"][0]["state"] == "requested"


@pytest.mark.parametrize(
    ("device", "body", "status", "error"),
    [
        (VALVE, {"name": "reboot"}, 422, "validation_error"),
        (VALVE, {"name": "stroke_test", "params": {}}, 422, "validation_error"),
        (VALVE, {"name": "stroke_test", "ttl_s": 10}, 422, "validation_error"),
        (VALVE, {"name": "stroke_test", "ttl_s": 91 * 86400}, 422, "validation_error"),
        (VALVE, {"ttl_s": 600}, 422, "validation_error"),
        (VALVE, {"name": "stroke_test", "ttl_s": "600"}, 422, "validation_error"),
        (PUMP, {"name": "stroke_test"}, 422, "not_applicable"),
        (ELSEWHERE, {"name": "stroke_test"}, 404, "not_found"),  # another operator's site
    ],
)
def test_command_refusals(
    api: TestClient, device: Device, body: dict[str, Any], status: int, error: str
) -> None:
    response = api.post(f"/api/v1/devices/{device.device_id}/commands", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert api.get(f"/api/v1/devices/{VALVE.device_id}/commands").json()["data"] == []


def test_pump_takes_a_time_sync(api: TestClient) -> None:
    response = api.post(f"/api/v1/devices/{PUMP.device_id}/commands", json={"name": "time_sync"})
    assert response.status_code == 202, response.text


def test_broker_away_answers_503_and_keeps_the_command_as_failed(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    authenticator: Authenticator,
    keys: dict[str, str],
) -> None:
    away = BrokerLink(host="127.0.0.1", port=free_port(), timeout_s=0.2)
    assert not away.start()
    try:
        app = _app(settings, registry, alerts, dead_letters, authenticator, away)
        with TestClient(app, headers={"Authorization": f"Bearer {keys['admin']}"}) as client:
            url = f"/api/v1/devices/{VALVE.device_id}/commands"
            response = client.post(url, json={"name": "stroke_test"})
            assert response.status_code == 503
            assert response.json()["error"] == "broker_unavailable"
            (kept,) = client.get(url).json()["data"]
            assert kept["state"] == "failed" and "not published" in kept["detail"]
    finally:
        away.stop()


def _valid(body: Any) -> bool:
    if not isinstance(body, dict) or set(body) - {"name", "ttl_s"}:
        return False
    if body.get("name") not in ("stroke_test", "time_sync"):
        return False
    ttl = body.get("ttl_s", 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        return False
    return math.isfinite(ttl) and 60 <= ttl <= 90 * 86400


def test_command_body_fuzz(api: TestClient) -> None:
    url = f"/api/v1/devices/{VALVE.device_id}/commands"
    names = st.sampled_from(["stroke_test", "time_sync", "STROKE_TEST", "", "x" * 70]) | st.text(
        max_size=12
    )
    ttls = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
    scalars = st.none() | st.booleans() | names | ttls
    bodies = st.fixed_dictionaries(
        {}, optional={"name": names | scalars, "ttl_s": ttls | scalars, "params": scalars}
    ) | st.dictionaries(st.text(max_size=8), scalars, max_size=4)

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(body=bodies)
    def fuzz(body: dict[str, Any]) -> None:
        content = json.dumps(body).encode()  # NaN/Infinity as the bare tokens
        response = api.post(url, content=content, headers={"content-type": "application/json"})
        expected = 202 if _valid(body) else 422
        assert response.status_code == expected, (body, response.text)
        assert set(response.json()) >= ({"id", "state"} if expected == 202 else {"error"})

    fuzz()
