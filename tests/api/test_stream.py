"""GET /api/v1/stream against a real uvicorn on a free port, read by a real httpx streaming
client (and a raw socket that never reads, for the slow client), on real SQLite state and
the session's real Mosquitto for readings."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from composition.api import create_app
from composition.api.broker import BrokerLink
from composition.api.stream import StreamTuning
from composition.servers.mosquitto import MosquittoServer
from sealscope.accounts import Authenticator, Remit, Site
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage.memory import MemoryTelemetryStore

IN = Device("ACME-V-100001", "valve", "ACME", "BV-50", site="north", region="R1")
IN2 = Device("ACME-V-100002", "valve", "ACME", "BV-50", site="north", region="R1")
OUT = Device("PUMPCO-P-100003", "pump", "PumpCo", "P-80", site="south", region="R2")
WAIT_S = 20.0


@dataclass
class Event:
    event: str
    data: Any
    id: int | None


@dataclass
class Reader:
    """Parses one SSE response; ``until`` reads on until a predicate matches."""

    response: httpx.Response
    seen: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.response.iter_lines()

    def next(self) -> Event | None:
        """The next event, or None for a heartbeat comment."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if fields:
                    break
                continue
            if line.startswith(":"):
                return None
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        else:
            raise EOFError("the stream ended")
        if "event" not in fields:  # the opening retry: line
            return None
        event = Event(
            fields["event"],
            json.loads(fields["data"]),
            int(fields["id"]) if "id" in fields else None,
        )
        self.seen.append(event)
        return event

    def until(self, match: Callable[[Event], bool], what: str) -> Event:
        # heartbeats come every heartbeat_s, so the deadline is checked that often
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            event = self.next()
            if event is not None and match(event):
                return event
        raise AssertionError(f"timed out waiting for {what}; saw {self.seen}")


@dataclass
class Env:
    url: str
    keys: dict[str, str]
    alerts: SqliteAlertStore
    app: Any
    mosquitto: MosquittoServer

    @contextmanager
    def stream(self, role: str, headers: dict[str, str] | None = None) -> Iterator[Reader]:
        with (
            httpx.Client(base_url=self.url, timeout=WAIT_S) as client,
            client.stream(
                "GET",
                "/api/v1/stream",
                headers={"Authorization": f"Bearer {self.keys[role]}", **(headers or {})},
            ) as response,
        ):
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            yield Reader(response)

    def raise_alert(self, device: Device, cause: str = "seat_leak", **evidence: Any) -> int:
        return self.alerts.raise_alert(
            device_id=device.device_id,
            cause=cause,
            category="out_of_specification",
            severity=4,
            summary=f"{cause} on {device.device_id}",
            evidence=evidence,
            t=time.time(),
        ).id

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[role]}"}
        )


TUNING = StreamTuning(poll_s=0.05, heartbeat_s=0.25, queue_max=8, reading_every_s=60.0)


@pytest.fixture
def env(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    telemetry: MemoryTelemetryStore,
    authenticator: Authenticator,
    mosquitto: MosquittoServer,
    serve: Callable[[Any], AbstractContextManager[str]],
) -> Iterator[Env]:
    store = authenticator.store
    keys = {}
    orgs = {}
    for kind in ("operator", "monitoring_point", "admin"):
        org = store.create_org(name=f"{kind} org", kind=kind)  # type: ignore[arg-type]
        orgs[kind] = org.id
        keys[kind] = authenticator.create_key(org.id, name=kind)[0]
    store.put_site(Site("north", orgs["operator"], "R1"))
    # a monitoring point without the raw-data grant: alerts yes, readings no
    store.set_remit(orgs["monitoring_point"], Remit(frozenset({"R1"}), frozenset({"valve"})))
    for device in (IN, IN2, OUT):
        registry.add(device)
    link = BrokerLink(host=mosquitto.host, port=mosquitto.port)
    assert link.start()
    app = create_app(
        settings,
        telemetry_store=telemetry,
        registry=registry,
        alerts=alerts,
        dead_letters=dead_letters,
        authenticator=authenticator,
        broker=link,
        stream_tuning=TUNING,
    )
    try:
        with serve(app) as url:
            # the test deployment answers to "localhost" (api_allowed_hosts)
            yield Env(url.replace("127.0.0.1", "localhost"), keys, alerts, app, mosquitto)
    finally:
        link.stop()


def test_stream_needs_credentials(env: Env) -> None:
    with httpx.Client(base_url=env.url) as client:
        response = client.get("/api/v1/stream")
        assert response.status_code == 401
        bad = client.get(
            "/api/v1/stream",
            headers={"Authorization": f"Bearer {env.keys['admin']}", "Last-Event-ID": "x"},
        )
        assert bad.status_code == 422
        assert bad.json()["error"] == "validation_error"


def test_alert_in_scope_appears_as_the_api_shows_it_and_out_of_scope_never(env: Env) -> None:
    with env.stream("operator") as reader:
        out_id = env.raise_alert(OUT)  # first, so the in-scope one proves it was passed over
        in_id = env.raise_alert(IN, ratio=3.2)
        raised = reader.until(lambda e: e.event == "alert", "the raised alert")
        with env.api("operator") as api:
            assert raised.data == api.get(f"/api/v1/alerts/{in_id}").json()
            acked = api.post(f"/api/v1/alerts/{in_id}/acknowledge", json={"comment": "on it"})
            assert acked.status_code == 200
        changed = reader.until(lambda e: e.event == "alert", "the acknowledgement")
        assert changed.data["id"] == in_id
        assert changed.data["status"] == "acknowledged"
        assert raised.id is not None and changed.id is not None and changed.id > raised.id
        env.alerts.clear(device_id=IN.device_id, cause="seat_leak", t=time.time())
        cleared = reader.until(lambda e: e.event == "alert", "the clear")
        assert cleared.data["status"] == "resolved"
    assert out_id not in {e.data["id"] for e in reader.seen}
    # the admin's stream does carry it
    with env.stream("admin") as admin:
        env.raise_alert(OUT, cause="actuation_wear")
        got = admin.until(lambda e: e.event == "alert", "the admin's alert")
        assert got.data["device_id"] == OUT.device_id


def test_resume_after_reconnect_replays_what_was_missed_in_scope_only(env: Env) -> None:
    with env.stream("operator") as reader:
        first = env.raise_alert(IN)
        last_seen = reader.until(lambda e: e.event == "alert", "the first alert").id
    assert last_seen is not None
    # while disconnected: two in-scope changes and one outside
    second = env.raise_alert(IN, cause="actuation_wear")
    env.raise_alert(OUT)
    env.alerts.resolve(first, actor="someone", note="fixed")
    for how in ({"Last-Event-ID": str(last_seen)}, None):
        headers = how or {}
        path_after = "" if how else f"?after={last_seen}"
        with (
            httpx.Client(base_url=env.url, timeout=WAIT_S) as client,
            client.stream(
                "GET",
                f"/api/v1/stream{path_after}",
                headers={"Authorization": f"Bearer {env.keys['operator']}", **headers},
            ) as response,
        ):
            reader = Reader(response)
            a = reader.until(lambda e: e.event == "alert", "the replayed raise")
            b = reader.until(lambda e: e.event == "alert", "the replayed resolve")
        assert (a.data["id"], a.data["status"]) == (second, "open")
        assert (b.data["id"], b.data["status"]) == (first, "resolved")
        assert a.id is not None and b.id is not None and last_seen < a.id < b.id


def test_a_slow_client_is_dropped_and_the_others_keep_streaming(env: Env) -> None:
    hub = env.app.state.stream_hub
    host, port = env.url.removeprefix("http://").split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never reads
    slow.connect(("127.0.0.1", int(port)))
    slow.sendall(
        f"GET /api/v1/stream HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {env.keys['admin']}\r\n\r\n".encode()
    )
    fast_events: list[Event] = []
    with env.stream("admin") as fast:
        stop = threading.Event()

        def read_fast() -> None:
            with_fast = fast
            while not stop.is_set():
                try:
                    event = with_fast.next()
                except (EOFError, httpx.HTTPError):
                    return
                if event is not None:
                    fast_events.append(event)

        reader_thread = threading.Thread(target=read_fast, daemon=True)
        reader_thread.start()
        deadline = time.monotonic() + WAIT_S * 3
        raised = 0
        while hub.dropped_clients == 0:
            assert time.monotonic() < deadline, f"slow client still served after {raised}"
            # 200 kB each: the socket buffers fill after a few MB, then the queue does
            env.raise_alert(IN, cause=f"c{raised}", blob="x" * 200_000)
            raised += 1
        after = env.raise_alert(IN2)
        deadline = time.monotonic() + WAIT_S
        while not any(e.data["id"] == after for e in fast_events):
            assert time.monotonic() < deadline, "the fast client stopped getting alerts"
            time.sleep(0.02)
        stop.set()
    assert hub.dropped_clients == 1
    # the server closed the slow one: what its buffers hold, then end of stream
    slow.settimeout(WAIT_S)
    while slow.recv(1 << 20):
        pass
    slow.close()


def _publish(mosquitto: MosquittoServer, messages: list[tuple[Device, dict[str, Any]]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for device, body in messages:
            topic = f"sealscope/v1/dev/{device.device_id}/telemetry"
            client.publish(topic, json.dumps(body), qos=1).wait_for_publish(WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def _telemetry(seq: int, p_in_kpa: float) -> dict[str, Any]:
    t = round(time.time(), 3)
    return {
        "v": 1,
        "seq": seq,
        "samples": [{"t": t - 1, "p_in_kpa": 1.0}, {"t": t, "p_in_kpa": p_in_kpa}],
    }


def test_readings_reach_callers_in_scope_throttled_and_not_without_raw_grant(env: Env) -> None:
    with env.stream("operator") as operator, env.stream("monitoring_point") as point:
        assert env.app.state.broker.is_connected
        # out of scope first, then five of one device (throttled to one), then another
        messages = [(OUT, _telemetry(1, 700.0))]
        messages += [(IN, _telemetry(2 + k, 500.0 + k)) for k in range(5)]
        messages += [(IN2, _telemetry(9, 600.0))]
        _publish(env.mosquitto, messages)
        operator.until(
            lambda e: e.event == "reading" and e.data["device_id"] == IN2.device_id,
            "the second device's reading",
        )
        readings = [e.data for e in operator.seen if e.event == "reading"]
        assert [r["device_id"] for r in readings] == [IN.device_id, IN2.device_id]
        first = readings[0]
        assert first["values"] == {"p_in_kpa": 500.0}  # the newest sample of the batch
        assert abs(first["t"] - messages[1][1]["samples"][1]["t"]) < 1e-3
        # the monitoring point: the alert that follows arrives, the readings never did
        alert_id = env.raise_alert(IN)
        point.until(lambda e: e.event == "alert" and e.data["id"] == alert_id, "the alert")
        assert [e.event for e in point.seen] == ["alert"]
