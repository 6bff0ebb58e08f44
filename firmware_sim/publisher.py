"""One MQTT connection publishing QoS 1 messages on behalf of a fleet (gateway style).

Why paho-mqtt directly, with its threaded network loop, rather than aiomqtt: aiomqtt's
``publish`` awaits one PUBACK per call, costs a task per in-flight message, scans all
pending calls on every publish, and drops the PUBACK reason code, so an MQTT 5 broker's
refusal (0x87 not authorised, ...) would look like success. Here a worker thread feeds
paho, a semaphore bounds the in-flight window, and ``on_publish`` (paho's network thread)
counts each PUBACK by reason code. ``publish_many`` returns only when every message of
the batch is acknowledged or refused; nothing is counted that the broker did not accept.
If the connection drops, paho reconnects and re-sends the unacknowledged messages (QoS 1
allows the duplicates); if acknowledgements stall for ``ack_timeout_s``, ``AckTimeout``.

Errors::

    SealscopeError
    └── PublishError          base; ``acked`` = messages of the batch the broker accepted
        ├── ConnectFailed     no connection, or CONNACK refused (``reason``)
        └── AckTimeout        no acknowledgement progress within ``ack_timeout_s``
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sealscope.errors import AckTimeout, ConnectFailed, PublishError

__all__ = [
    "AckTimeout",
    "ConnectFailed",
    "MqttPublisher",
    "OutgoingMessage",
    "PublishError",
    "PublishResult",
    "Refusal",
]

log = logging.getLogger(__name__)

Protocol = Literal["5", "3.1.1"]
_PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


class OutgoingMessage(NamedTuple):
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:  # not a NamedTuple: its index field would hide tuple.index
    index: int  # position in the batch
    reason: str  # the broker's PUBACK reason


@dataclass(frozen=True, slots=True)
class PublishResult:
    acked: int
    refused: tuple[Refusal, ...] = ()

    def refused_indices(self) -> frozenset[int]:
        return frozenset(r.index for r in self.refused)


class _Batch:
    """Acknowledgement book-keeping for one ``publish_many`` call, shared with paho's thread."""

    def __init__(self, window: int) -> None:
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(window)
        self.idle = threading.Condition(self.lock)
        self.pending: dict[int, int] = {}  # mid -> index in batch
        self.early: dict[int, ReasonCode] = {}  # PUBACKs that beat publish() returning
        self.in_flight = 0
        self.acked = 0
        self.refused: list[Refusal] = []

    def settle(self, index: int, reason: ReasonCode) -> None:
        # caller holds self.lock
        if reason.is_failure:
            self.refused.append(Refusal(index, str(reason)))
        else:
            self.acked += 1
        self.in_flight -= 1
        self.slots.release()
        if self.in_flight == 0:
            self.idle.notify_all()


class MqttPublisher:
    """``async with MqttPublisher(host=..., port=...) as pub: await pub.publish_many(msgs)``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        protocol: Protocol = "5",
        client_id: str | None = None,
        window: int = 1000,
        keepalive_s: int = 60,
        connect_timeout_s: float = 10.0,
        ack_timeout_s: float = 30.0,
    ) -> None:
        if protocol not in _PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(_PROTOCOLS)}, not {protocol!r}")
        if window < 1:
            raise ValueError("window must be >= 1")
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self.host = host
        self.port = port
        self.protocol = protocol
        self.client_id = client_id or f"sealscope-sim-{uuid.uuid4().hex[:12]}"
        self.window = window
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self._username = username
        self._password = password
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._connect_refusal: str | None = None
        self._batch: _Batch | None = None
        self._batch_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> MqttPublisher:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=_PROTOCOLS[self.protocol],
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        # Our semaphore bounds the window; paho must not queue behind a smaller limit of its own.
        client.max_inflight_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        try:
            await asyncio.to_thread(
                client.connect, self.host, self.port, keepalive=self.keepalive_s
            )
        except OSError as exc:
            raise ConnectFailed(self.host, self.port, str(exc)) from exc
        client.loop_start()
        try:
            await self._wait_connected()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._shutdown()

    async def _wait_connected(self) -> None:
        is_connected = await asyncio.to_thread(self._connected.wait, self.connect_timeout_s)
        if self._connect_refusal is not None:
            raise ConnectFailed(self.host, self.port, self._connect_refusal)
        if not is_connected:
            raise ConnectFailed(self.host, self.port, "no CONNACK in time")

    async def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._connect_refusal = str(reason)
            client.disconnect()  # wrong credentials do not get better by retrying
        else:
            receive_max = getattr(properties, "ReceiveMaximum", None)
            if receive_max is not None and receive_max < self.window:
                # Sending more than the broker's Receive Maximum is a protocol error.
                log.info("broker Receive Maximum %d caps the window", receive_max)
                self.window = receive_max
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); paho reconnects and re-sends", reason)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        batch = self._batch
        if batch is None:
            return
        with batch.lock:
            index = batch.pending.pop(mid, None)
            if index is None:
                batch.early[mid] = reason
            else:
                batch.settle(index, reason)

    # -- publishing -----------------------------------------------------------------------

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish at QoS 1; return once the broker answered every message."""
        if self._client is None:
            raise PublishError("publisher is not connected; use `async with`")
        async with self._batch_lock:  # one batch at a time: mids map to this batch only
            self._batch = _Batch(self.window)
            try:
                return await asyncio.to_thread(self._publish_blocking, self._client, messages)
            finally:
                self._batch = None

    def _publish_blocking(
        self, client: mqtt.Client, messages: Sequence[OutgoingMessage]
    ) -> PublishResult:
        batch = self._batch
        assert batch is not None
        for index, (topic, payload, retain) in enumerate(messages):
            if not batch.slots.acquire(timeout=self.ack_timeout_s):
                self._raise_timeout(batch)
            with batch.lock:
                batch.in_flight += 1
            info = client.publish(topic, payload, qos=1, retain=retain)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                # NO_CONN: paho keeps the message and sends it after reconnecting.
                raise PublishError(
                    f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}",
                    acked=batch.acked,
                )
            with batch.lock:
                reason = batch.early.pop(info.mid, None)
                if reason is None:
                    batch.pending[info.mid] = index
                else:
                    batch.settle(index, reason)
        with batch.lock:
            if not batch.idle.wait_for(lambda: batch.in_flight == 0, self.ack_timeout_s):
                self._raise_timeout(batch)
            return PublishResult(acked=batch.acked, refused=tuple(batch.refused))

    def _raise_timeout(self, batch: _Batch) -> None:
        raise AckTimeout(acked=batch.acked, pending=batch.in_flight, timeout_s=self.ack_timeout_s)
