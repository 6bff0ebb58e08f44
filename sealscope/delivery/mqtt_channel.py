"""MQTT channel: publish to ``sealscope/v1/alerts/{scope}`` at QoS 1 and wait for PUBACK.

One paho client with its network thread; it reconnects by itself. A publish while the
broker is away fails the attempt (the dispatcher retries later); paho may still send its
queued copy once it reconnects, a duplicate that carries the same delivery id.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope.delivery.outbox import Delivery
from sealscope.delivery.subscription import ChannelKind
from sealscope.errors import DeliveryFailed
from sealscope.topics import alerts_topic

__all__ = ["MqttChannel"]


class MqttChannel:
    kind: ChannelKind = "mqtt"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self._host, self._port = host, port
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sealscope-delivery-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    async def __aenter__(self) -> Self:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        # start without the broker is allowed: sends fail and are retried until it is back
        await asyncio.to_thread(self._connected.wait, self.timeout_s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def send(self, delivery: Delivery) -> int | None:
        topic = alerts_topic(delivery.target)
        if not self._connected.is_set():
            raise DeliveryFailed(f"not connected to the broker at {self._host}:{self._port}")
        info = self._client.publish(topic, delivery.body, qos=1)
        try:
            await asyncio.to_thread(info.wait_for_publish, self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryFailed(f"publish failed: {exc}", status_code=info.rc) from exc
        if not info.is_published():
            raise DeliveryFailed(f"no PUBACK within {self.timeout_s}s")
        return 0
