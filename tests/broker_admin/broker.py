"""A real Mosquitto 2.0.x with the dynamic-security plugin, and MQTT 5 test clients."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from composition.bench.dynsec import DynsecBroker, UplinkCounter, publish_once_per_device
from composition.bench.dynsec import start_dynsec_broker as start_bench_broker
from composition.servers import find_mosquitto
from composition.servers.mosquitto import find_dynsec_plugin
from sealscope.broker_admin import BrokerAdmin
from sealscope.topics import device_topic

WAIT_S = 10.0


def start_dynsec_broker(workdir: Path) -> DynsecBroker:
    for found, name in ((find_mosquitto(), "mosquitto"), (find_dynsec_plugin(), "dynsec plugin")):
        if found is None:
            if os.environ.get("CI"):
                pytest.fail(f"{name} is not installed; CI requires it")
            pytest.skip(f"{name} is not installed")
    return start_bench_broker(workdir)


class Session:
    """One MQTT 5 connection that reports CONNACK, PUBACK and SUBACK reason codes."""

    def __init__(self, broker: DynsecBroker, username: str, password: str, client_id: str):
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = lambda _c, _u, m: self.messages.put(m)
        self._client.on_disconnect = lambda *_a: self.disconnected.set()
        self._host, self._port = broker.server.host, broker.server.port
        self._connack: queue.Queue[Any] = queue.Queue()
        self._acks: dict[int, queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()

    def connect(self) -> str:
        """The CONNACK reason ("Success", "Not authorized", ...)."""
        self._client.reconnect_delay_set(min_delay=60, max_delay=120)  # no quiet retries
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        return str(self._connack.get(timeout=WAIT_S))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        # a connection the broker refused or kicked can leave paho's socket open
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _ack_queue(self, mid: int) -> queue.Queue[Any]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def publish(self, topic: str, payload: bytes = b"{}") -> str:
        """The PUBACK reason of one QoS 1 publish."""
        info = self._client.publish(topic, payload, qos=1)
        return str(self._ack_queue(info.mid).get(timeout=WAIT_S))

    def subscribe(self, topic_filter: str) -> str:
        _rc, mid = self._client.subscribe(topic_filter, qos=1)
        assert mid is not None
        (reason,) = self._ack_queue(mid).get(timeout=WAIT_S)
        return str(reason)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connack.put(reason)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self._ack_queue(mid).put(reason)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        self._ack_queue(mid).put(reasons)


def assert_fleet_publishes_only_as_itself(
    broker: DynsecBroker, passwords: dict[str, str], *, ingest_username: str
) -> None:
    """One device is refused under another's id; then every device publishes once, as
    itself, and an ingest identity on the broker receives one message from each."""
    ids = sorted(passwords)
    with broker.control() as control:
        ingest_password = BrokerAdmin(control).provision_service("ingest", ingest_username)
    with UplinkCounter(broker, ingest_username, ingest_password) as ingest:
        forger = ids[0]
        with Session(broker, forger, passwords[forger], forger) as device:
            assert device.connect() == "Success"
            assert device.publish(device_topic(ids[1], "telemetry")) == "Not authorized"
            assert device.publish(device_topic("GHOST-0001", "telemetry")) == "Not authorized"
            assert device.publish(device_topic(forger, "telemetry")) == "Success"
        # one connection delivers in order: its own message arriving means the two
        # refused ones would have arrived already
        assert ingest.wait_for(1, timeout_s=WAIT_S)
        assert ingest.devices == {forger}

        host, port = broker.server.host, broker.server.port
        run = publish_once_per_device(host, port, passwords, workers=8)
        assert set(run.connack.values()) == {"Success"}
        assert set(run.puback.values()) == {"Success"}
        fleet = len(ids)
        assert ingest.wait_for(fleet, timeout_s=60), f"{len(ingest.devices)} of {fleet} arrived"
        assert ingest.devices == set(ids)
