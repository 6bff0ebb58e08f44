"""The MQTT side of ingest: a persistent QoS 1 session that acknowledges only on request.

paho-mqtt 2.x rather than aiomqtt, because aiomqtt 2.5 acknowledges a QoS 1 message as soon
as it arrives, and the reliability contract says a PUBACK goes out only once the message is
durable. paho's network loop runs on its own thread; each delivery is handed to a callback
that may block (that is the back-pressure: paho stops reading the socket, the broker queues).

Session takeover: another connection with our client id gets our session, and with it
everything queued or in flight for us. We reconnect (capped, jittered backoff) with
clean start off and take it back; the broker then redelivers whatever the intruder did not
acknowledge. What it did acknowledge, or a session it wiped by connecting with clean start,
is gone from the broker: only binding client ids to usernames there prevents that
(deploy/README.md). Both cases are logged as errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from sealscope.mqtt_session import ReconnectBackoff, is_session_taken_over, manual_ack_client

__all__ = ["Delivery", "MqttConsumer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    payload: bytes
    arrival_s: float
    mid: int
    qos: int
    generation: int  # which connection it came on: a PUBACK is only valid on that one


class MqttConsumer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        filters: Sequence[str],
        on_delivery: Callable[[Delivery], None],
        username: str | None = None,
        password: str | None = None,
        protocol: Literal["5", "3.1.1"] = "5",
        receive_maximum: int = 2000,
        session_expiry_s: int = 7 * 24 * 3600,
        keepalive_s: int = 30,
    ) -> None:
        if not filters:
            raise ValueError("at least one topic filter is needed")
        self.host = host
        self.port = port
        self._filters = list(filters)
        self._on_delivery = on_delivery
        self._protocol = protocol
        self._receive_maximum = receive_maximum
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._generation = 0
        self._connected = threading.Event()
        # set on SUBACK: until then the broker may drop what is published (no subscriber yet)
        self._subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._is_stopping = False
        self._had_session = False
        self._client_id = client_id
        self._max_reconnect_delay_s = 30
        self._backoff = ReconnectBackoff()
        self.takeovers = 0  # times another connection took our session
        self.sessions_lost = 0  # reconnects that found the broker no longer had our session
        self._client = manual_ack_client(
            client_id=client_id,
            protocol=protocol,
            username=username,
            password=password,
            max_reconnect_delay_s=self._max_reconnect_delay_s,
        )
        self._client.enable_logger(logging.getLogger("ingest.consumer.paho"))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        properties = None
        if self._protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._session_expiry_s
            properties.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self.host,
            self.port,
            keepalive=self._keepalive_s,
            clean_start=False if self._protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected and subscribed, i.e. ready to receive what is published."""
        deadline = time.monotonic() + timeout_s
        if not self._connected.wait(timeout_s):
            return False
        return self._subscribed.wait(max(0.0, deadline - time.monotonic()))

    def ack(self, deliveries: Iterable[Delivery]) -> int:
        """PUBACK the deliveries of the current connection; returns how many were sent.

        A delivery from an earlier connection is skipped: the broker will redeliver it on this
        one (same session) and it will be acknowledged then; on a new session its packet id
        could belong to a different message.
        """
        generation = self._generation
        if not self._connected.is_set():
            return 0  # nothing to send it on; the broker redelivers on the next connection
        sent = 0
        for d in deliveries:
            if d.qos > 0 and d.generation == generation:
                self._client.ack(d.mid, d.qos)
                sent += 1
        return sent

    def stop(self) -> None:
        self._is_stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- paho callbacks (network thread) -----------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("mqtt: %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        self._generation += 1
        self._backoff.connected()
        session_present = bool(getattr(flags, "session_present", False))
        if self._had_session and not session_present:
            self.sessions_lost += 1
            log.error(
                "mqtt: %s:%d no longer had the session of client id %r: whatever was queued "
                "for it while we were away is lost (another client connected with this id "
                "and a clean start, or the session expired); subscribing again",
                self.host,
                self.port,
                self._client_id,
            )
        self._had_session = True
        self._subscribed.clear()
        if self._protocol == "5":
            _rc, mid = client.subscribe([(f, SubscribeOptions(qos=1)) for f in self._filters])
        else:
            _rc, mid = client.subscribe([(f, 1) for f in self._filters])
        self._subscribe_mid = mid
        self._connected.set()
        log.info(
            "mqtt: connected to %s:%d (session present: %s)", self.host, self.port, session_present
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: Any, _props: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            log.error("mqtt: %s:%d refused our subscription: %s", self.host, self.port, refused)
            return
        self._subscribed.set()
        log.info("mqtt: subscribed to %s", ", ".join(self._filters))

    def _on_disconnect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if self._is_stopping:
            log.info("mqtt: disconnected from %s:%d", self.host, self.port)
            return
        if not was_connected:
            return  # paho may report one drop twice (DISCONNECT packet, then socket close)
        delay_s = self._backoff.dropped()
        # paho annotates the delays as int but computes with them as float seconds
        client.reconnect_delay_set(min_delay=delay_s, max_delay=self._max_reconnect_delay_s)  # type: ignore[arg-type]
        if is_session_taken_over(reason):
            self.takeovers += 1
            log.error(
                "mqtt: another client connected to %s:%d with our client id %r and took over "
                "the session; taking it back in %.1f s. Messages it acknowledges are lost "
                "to ingest: the broker must bind client ids to usernames (deploy/README.md)",
                self.host,
                self.port,
                self._client_id,
                delay_s,
            )
        else:
            log.warning(
                "mqtt: disconnected from %s:%d: %s; reconnecting in %.1f s",
                self.host,
                self.port,
                reason,
                delay_s,
            )

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = cast(bytes, msg.payload)  # paho unpacks it with struct: bytes, not bytearray
        self._on_delivery(
            Delivery(msg.topic, payload, time.time(), msg.mid, msg.qos, self._generation)
        )
