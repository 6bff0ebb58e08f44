"""Another client takes the ingest's client id on a real, anonymous Mosquitto (the worst case).

The broker hands the session to whoever connects with the id. Ingest takes it back, and the
broker redelivers what the intruder left unacknowledged; what the intruder acknowledged, or
a session it wiped with a clean start, is lost to ingest. Each test reconciles all 2,000
messages: stored exactly once by ingest, or provably taken by the intruder (its
acknowledgements, or the broker's "no matching subscribers" answer to the publisher).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from composition.servers import MosquittoServer
from ingest import IngestService, MqttConsumer
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.mqtt_session import ReconnectBackoff
from sealscope.registry import SqliteDeviceRegistry
from sealscope.storage.sqlite import SqliteTelemetryStore
from tests.ingest.conftest import telemetry_rows
from tests.ingest.streams import Stream, fleet
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

CLIENT_ID = "sealscope-ingest"
MESSAGES = 2000
NO_MATCHING_SUBSCRIBERS = 16  # MQTT 5 PUBACK reason code


class Rogue:
    """A plain paho client that connects as ``sealscope-ingest`` and tries to stay ~3 s.

    It connects once (no reconnect when kicked) and either acknowledges what it gets, as a
    default paho client does, or leaves it unacknowledged (manual ack, never sent).
    """

    def __init__(
        self,
        broker: MosquittoServer,
        *,
        clean_start: bool,
        acks: bool,
        protocol: int = mqtt.MQTTv5,
        session_expiry_s: int | None = None,
    ) -> None:
        self._broker = broker
        self._clean_start = clean_start
        self._properties = None
        if session_expiry_s is not None:
            self._properties = Properties(PacketTypes.CONNECT)
            self._properties.SessionExpiryInterval = session_expiry_s
        self.got: list[bytes] = []
        self.connected = threading.Event()
        self.kicked = threading.Event()
        self.left = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=CLIENT_ID,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else clean_start,
            manual_ack=not acks,
        )
        self._client.on_connect = lambda *_: self.connected.set()
        self._client.on_disconnect = lambda *_: self.kicked.set()
        self._client.on_message = lambda _c, _u, msg: self.got.append(msg.payload)

    def hold(self, hold_s: float) -> None:
        """Run in a thread: connect, read until kicked or ``hold_s`` is over, leave."""
        if self._properties is None and self._client._protocol == mqtt.MQTTv311:
            self._client.connect(self._broker.host, self._broker.port)
        else:
            self._client.connect(
                self._broker.host,
                self._broker.port,
                clean_start=self._clean_start,
                properties=self._properties,
            )
        deadline = time.monotonic() + hold_s
        try:
            while time.monotonic() < deadline and not self.kicked.is_set():
                self._client.loop(timeout=0.05)
            if not self.kicked.is_set():
                self._client.disconnect()
        finally:
            self.left.set()


class Publisher:
    """QoS 1 publisher that records each message's PUBACK reason code."""

    def __init__(self, broker: MosquittoServer) -> None:
        self.reasons: dict[int, int] = {}  # mid -> PUBACK reason code
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="publisher", protocol=mqtt.MQTTv5
        )
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)
        self._client.on_publish = self._on_publish
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            self.reasons[mid] = reason.value

    def publish(self, topic: str, payload: bytes) -> int:
        return int(self._client.publish(topic, payload, qos=1).mid)

    def wait_acked(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.reasons) < count:
            assert time.monotonic() < deadline, "the broker did not acknowledge every message"
            time.sleep(0.01)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _stored_messages(db: Path) -> list[int]:
    """Message numbers in the store, one per row (a duplicate would show twice)."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute("SELECT p_in_kpa FROM telemetry").fetchall()
    return sorted(round(p - 500.0) for (p,) in rows)


def _message_number(payload: bytes) -> int:
    # Stream puts p_in_kpa = 500 + message number on the first (here only) sample
    return round(json.loads(payload)["samples"][0]["p_in_kpa"] - 500.0)


async def _run_takeover(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    rogue: Rogue,
    *,
    quiet_before_rogue: bool = False,
) -> tuple[list[int], Publisher, dict[int, int], set[int]]:
    """Publish 2,000 messages paced over ~3 s with the rogue joining after 500 of them.

    Returns the stored message numbers, the publisher, mid -> message number, and the
    messages exposed to the rogue: not yet stored when it connected, and published before
    it was gone (after that, the session is ingest's again).
    """
    devices = fleet(10)
    registry.upsert_many(devices)
    messages = list(Stream(devices, messages=MESSAGES, samples=1).payloads())
    settings = Settings(
        data_dir=tmp_path / "data",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_client_id=CLIENT_ID,
        mqtt_username=None,
        batch_max_age_s=0.05,
    )
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    publisher = Publisher(broker)
    numbers: dict[int, int] = {}
    exposed: set[int] = set()
    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            rogue_thread = threading.Thread(target=rogue.hold, args=(3.0,), name="rogue")

            def publish_all() -> None:
                for i, (topic, payload) in enumerate(messages):
                    if i == 500:
                        if quiet_before_rogue:
                            # nothing queued or in flight for the session the rogue wipes
                            publisher.wait_acked(500, 30)
                            deadline = time.monotonic() + 30
                            while telemetry_rows(settings.telemetry_db)[0] < 500:
                                assert time.monotonic() < deadline, "first 500 not stored"
                                time.sleep(0.02)
                        stored_then = set(_stored_messages(settings.telemetry_db))
                        rogue_thread.start()
                        assert rogue.connected.wait(10), "the rogue got no CONNACK"
                        exposed.update(set(range(500)) - stored_then)
                    if i >= 500 and not rogue.left.is_set():
                        exposed.add(i)
                    numbers[publisher.publish(topic, payload)] = i
                    time.sleep(0.0015)  # pacing: spread the stream over the takeover
                publisher.wait_acked(MESSAGES, 60)

            await asyncio.to_thread(publish_all)
            await asyncio.to_thread(rogue.left.wait, 10)
            assert rogue.left.is_set()
            rogue_thread.join(5)
            dropped = {numbers[m] for m, rc in publisher.reasons.items() if rc}
            rogue_took = {_message_number(p) for p in rogue.got}
            await wait_until(
                lambda: (
                    telemetry_rows(settings.telemetry_db)[0]
                    >= MESSAGES - len(dropped) - len(rogue_took)
                ),
                60,
                "everything not taken by the rogue to be stored",
            )
            assert await ingest.wait_stored(30)
        assert dead.count() == 0
        return _stored_messages(settings.telemetry_db), publisher, numbers, exposed
    finally:
        publisher.close()
        await store.close()
        dead.close()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name == "ingest.consumer"
    ]


@pytest.mark.parametrize(
    "intruder",
    [
        pytest.param({"session_expiry_s": 3600}, id="mqtt5-session-expiry"),
        pytest.param({"protocol": mqtt.MQTTv311}, id="mqtt311-persistent"),
    ],
)
async def test_takeover_by_a_client_keeping_the_session_loses_nothing(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    caplog: pytest.LogCaptureFixture,
    intruder: dict[str, Any],
) -> None:
    # The intruder resumes the session and acknowledges nothing; ingest takes the session
    # back and the broker redelivers everything the intruder was sent.
    rogue = Rogue(broker, clean_start=False, acks=False, **intruder)
    with caplog.at_level(logging.INFO, logger="ingest.consumer"):
        stored, publisher, _, _ = await _run_takeover(tmp_path, broker, registry, rogue)
    assert rogue.got, "the intruder was sent nothing: no takeover happened"
    assert rogue.kicked.is_set(), "ingest never took its session back"
    assert stored == list(range(MESSAGES))  # each message once
    assert set(publisher.reasons.values()) == {0}
    assert _errors(caplog) == []


@pytest.mark.parametrize("acks", [True, False], ids=["acknowledging", "silent"])
async def test_takeover_by_a_default_paho_client_loses_exactly_what_it_was_sent(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    caplog: pytest.LogCaptureFixture,
    acks: bool,
) -> None:
    # paho's MQTT 5 default is clean start off with session expiry 0: the session now ends
    # with the intruder's connection, so when ingest takes it back Mosquitto starts a new
    # one. Whatever was in flight to the intruder is gone, acknowledged or not: what it
    # read, and what was still in its socket when the broker closed it on the takeover
    # (a reset discards unread bytes; a busy machine leaves more of them unread).
    rogue = Rogue(broker, clean_start=False, acks=acks)
    with caplog.at_level(logging.INFO, logger="ingest.consumer"):
        stored, publisher, numbers, exposed = await _run_takeover(tmp_path, broker, registry, rogue)
    assert len(stored) == len(set(stored)), "a message was stored twice"
    taken = {_message_number(p) for p in rogue.got}
    dropped = {numbers[m] for m, rc in publisher.reasons.items() if rc}
    missing = set(range(MESSAGES)) - set(stored)
    assert missing, "the intruder took nothing"
    # every loss accounted for: taken by the intruder, dropped by the broker, or sent to
    # the intruder's connection while it held the session; nothing stored before it came
    # and nothing published after ingest had the session back
    assert missing <= taken | dropped | exposed
    assert len(exposed) < MESSAGES - 500, "ingest never took its session back"
    assert any("no longer had the session" in e for e in _errors(caplog)), _errors(caplog)


async def test_takeover_with_clean_start_loses_what_the_broker_dropped_while_no_session(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Clean start makes the broker discard ingest's session: subscriptions and queue (kept
    # empty here, so the loss is countable). Until ingest subscribes again, uplinks match no
    # subscriber and are dropped, with "no matching subscribers" to an MQTT 5 publisher.
    rogue = Rogue(broker, clean_start=True, acks=True)
    with caplog.at_level(logging.INFO, logger="ingest.consumer"):
        stored, publisher, numbers, _ = await _run_takeover(
            tmp_path, broker, registry, rogue, quiet_before_rogue=True
        )
    dropped = {numbers[m] for m, rc in publisher.reasons.items() if rc}
    assert {rc for rc in publisher.reasons.values() if rc} == {NO_MATCHING_SUBSCRIBERS}
    assert dropped, "the broker dropped nothing while the session was gone"
    assert rogue.got == []  # a clean session has no subscriptions
    assert stored == sorted(set(range(MESSAGES)) - dropped)
    assert any("no longer had the session" in e for e in _errors(caplog)), _errors(caplog)


def test_consumer_logs_a_session_takeover_as_an_error_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Mosquitto 2.0.11 just closes the old connection; MQTT 5 brokers that follow the spec
    # (EMQX, HiveMQ) send DISCONNECT 142, which no broker here can produce: call the callback.
    consumer = MqttConsumer(
        host="127.0.0.1",
        port=1883,
        client_id=CLIENT_ID,
        filters=["sealscope/v1/dev/+/telemetry"],
        on_delivery=lambda _d: None,
        username="sealscope-ingest",
        password="s3cret-pw",
    )
    consumer._connected.set()  # as after a CONNACK
    reason = ReasonCode(PacketTypes.DISCONNECT, identifier=142)
    with caplog.at_level(logging.INFO, logger="ingest.consumer"):
        consumer._on_disconnect(consumer._client, None, None, reason, None)
    (record,) = [r for r in caplog.records if r.name == "ingest.consumer"]
    assert record.levelno == logging.ERROR
    assert "took over the session" in record.getMessage()
    assert CLIENT_ID in record.getMessage()
    assert "s3cret-pw" not in record.getMessage()
    assert consumer.takeovers == 1
    assert not consumer.is_connected


def test_reconnect_backoff_doubles_on_quick_drops_up_to_the_cap_and_resets_when_stable() -> None:
    backoff = ReconnectBackoff(base_s=0.5, cap_s=4.0, stable_s=30.0)
    delays = []
    for n in range(5):
        backoff.connected(now_s=100.0 + n)
        delays.append(backoff.dropped(now_s=100.5 + n))  # held 0.5 s each time
    for delay, ceiling in zip(delays, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling  # jitter: half to all of the ceiling
    backoff.connected(now_s=200.0)
    assert 0.25 <= backoff.dropped(now_s=260.0) <= 0.5  # held 60 s: back to the base
