"""MosquittoServer against the real broker: round trip, durable sessions, users and ACL."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from composition.servers import MosquittoServer, ServerFailed
from sealscope.errors import ConfigError

pytestmark = pytest.mark.integration

TIMEOUT_S = 5.0


class Probe:
    """A paho client on its own network thread; messages and acks arrive on queues."""

    def __init__(
        self,
        server: MosquittoServer,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = True,
    ) -> None:
        self.server = server
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._connacks: queue.Queue[tuple[bool, mqtt.ReasonCode]] = queue.Queue()
        self._subacks: queue.Queue[int] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.session_present = False

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        self._connacks.put((flags.session_present, reason_code))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[mqtt.ReasonCode],
        properties: mqtt.Properties | None,
    ) -> None:
        self._subacks.put(mid)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, message.payload))

    def connect(self) -> mqtt.ReasonCode:
        """Connect and wait for CONNACK; returns its reason code (failure is not raised)."""
        self.client.connect(self.server.host, self.server.port, keepalive=30)
        self.client.loop_start()
        self.session_present, reason_code = self._connacks.get(timeout=TIMEOUT_S)
        if reason_code.is_failure:
            self.client.loop_stop()
        return reason_code

    def subscribe(self, topic: str, qos: int = 1) -> None:
        _, mid = self.client.subscribe(topic, qos)
        assert self._subacks.get(timeout=TIMEOUT_S) == mid

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and, for QoS 1, wait for PUBACK: the broker then owns the message."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=TIMEOUT_S)
        assert info.is_published()

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probes() -> Iterator[Callable[..., Probe]]:
    made: list[Probe] = []

    def make(server: MosquittoServer, client_id: str | None = None, **kwargs: Any) -> Probe:
        probe = Probe(server, client_id or f"probe-{uuid.uuid4().hex[:8]}", **kwargs)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


def test_mosquitto_pub_sub_round_trip(
    mosquitto: MosquittoServer, probes: Callable[..., Probe]
) -> None:
    topic = f"sealscope/v1/dev/T-{uuid.uuid4().hex[:8]}/telemetry"
    sub = probes(mosquitto)
    assert sub.connect() == 0
    sub.subscribe(topic)
    pub = probes(mosquitto)
    assert pub.connect() == 0
    pub.publish(topic, b'{"v":1}')
    assert sub.next_message() == (topic, b'{"v":1}')
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_mosquitto_queued_qos1_message_survives_restart(
    fresh_mosquitto: Callable[..., MosquittoServer], probes: Callable[..., Probe]
) -> None:
    broker = fresh_mosquitto()
    topic = "sealscope/v1/dev/ACME-1/telemetry"
    sub = probes(broker, "ingest-durable", clean_session=False)
    assert sub.connect() == 0
    sub.subscribe("sealscope/v1/dev/+/telemetry")
    sub.close()  # offline now; the broker keeps its session and queues for it

    pub = probes(broker)
    assert pub.connect() == 0
    pub.publish(topic, b"queued while offline")
    pub.close()

    port = broker.port
    broker.restart()
    assert broker.port == port

    back = probes(broker, "ingest-durable", clean_session=False)
    assert back.connect() == 0
    assert back.session_present
    assert back.next_message() == (topic, b"queued while offline")


def test_mosquitto_acl_keeps_devices_in_their_own_topics(
    fresh_mosquitto: Callable[..., MosquittoServer], probes: Callable[..., Probe]
) -> None:
    broker = fresh_mosquitto(
        users={"ACME-A": "pw-a", "ACME-B": "pw-b", "ingest": "pw-ingest"},
        acl_lines=[
            "pattern write sealscope/v1/dev/%u/#",
            "pattern read sealscope/v1/dev/%u/cmd",
            "user ingest",
            "topic read sealscope/v1/dev/+/telemetry",
        ],
    )
    ingest = probes(broker, username="ingest", password="pw-ingest")
    assert ingest.connect() == 0
    ingest.subscribe("sealscope/v1/dev/+/telemetry")
    device_a = probes(broker, username="ACME-A", password="pw-a")
    assert device_a.connect() == 0

    # QoS 1 from one connection is delivered in order: once A's own message arrives,
    # the forged one published before it would have arrived too, had the broker allowed it
    device_a.publish("sealscope/v1/dev/ACME-B/telemetry", b"forged")
    device_a.publish("sealscope/v1/dev/ACME-A/telemetry", b"own")
    assert ingest.next_message() == ("sealscope/v1/dev/ACME-A/telemetry", b"own")
    assert ingest.messages.empty()


def test_mosquitto_users_refuse_anonymous_and_wrong_password(
    fresh_mosquitto: Callable[..., MosquittoServer], probes: Callable[..., Probe]
) -> None:
    broker = fresh_mosquitto(users={"ACME-A": "pw-a"})
    assert probes(broker).connect().is_failure
    assert probes(broker, username="ACME-A", password="wrong").connect().is_failure
    assert probes(broker, username="ACME-A", password="pw-a").connect() == 0
    assert "pw-a" not in (broker.workdir / "passwd").read_text()


def test_mosquitto_start_on_taken_port_fails(
    fresh_mosquitto: Callable[..., MosquittoServer],
) -> None:
    taken = fresh_mosquitto()
    with pytest.raises(ServerFailed, match="already in use"):
        fresh_mosquitto(port=taken.port)


def test_mosquitto_start_failure_reports_log_tail(
    fresh_mosquitto: Callable[..., MosquittoServer],
) -> None:
    with pytest.raises(ServerFailed) as excinfo:
        fresh_mosquitto(extra_conf=["no_such_option 1"])
    assert "no_such_option" in excinfo.value.log_tail


def test_mosquitto_rejects_bad_user_names(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(ConfigError):
        MosquittoServer(workdir=tmp_path_factory.mktemp("bad"), users={"a:b": "pw"})


def test_mosquitto_kill_then_start_serves_again(
    fresh_mosquitto: Callable[..., MosquittoServer], probes: Callable[..., Probe]
) -> None:
    broker = fresh_mosquitto()
    broker.kill()
    assert not broker.is_running
    broker.start()
    assert probes(broker).connect() == 0
