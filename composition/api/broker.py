"""The API process's one connection to the service's broker: fresh telemetry in (for the
live stream) and device commands out.

Readings come from an MQTT subscription, not from polling the telemetry store: they reach
the stream within milliseconds of publication, whichever process runs ingest, and cost the
store nothing (the store has no cheap "latest point of every device in scope" query). QoS 0
and a clean session: a live reading missed while disconnected is replaced by the next one,
and the page reloads history from the store. What arrives is decoded with the core's wire
decoder (malformed messages are dropped); it is the device's message as published, before
ingest stores it.

Commands go out at QoS 1, and a publish counts only once the broker's PUBACK is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope import wire
from sealscope.config import Settings
from sealscope.errors import BrokerUnavailable, MessageRejected
from sealscope.topics import device_filter, device_topic, parse_device_topic

__all__ = ["BrokerLink", "Reading"]

log = logging.getLogger(__name__)

# (device_id, event time in Unix s, {field: value}) of a telemetry message's newest sample
Reading = tuple[str, float, dict[str, float]]


class BrokerLink:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._listeners: list[Callable[[Reading], None]] = []
        self.published = 0  # commands the broker acknowledged
        # never the ingest's client id: the broker would hand ingest's session over to us
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sealscope-api-{secrets.token_hex(6)}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.suppress_exceptions = True  # a listener's bug must not end the thread
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @classmethod
    def from_settings(cls, settings: Settings) -> BrokerLink:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        return cls(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username if password is not None else None,
            password=password,
            # the login's client id, made unique: ingest may share the login (``up``)
            client_id=f"{settings.mqtt_client_id}-live-{secrets.token_hex(4)}",
        )

    def on_reading(self, listener: Callable[[Reading], None]) -> None:
        """Call ``listener`` (on the network thread) with each fresh reading."""
        self._listeners.append(listener)

    def start(self) -> bool:
        """Connect (blocking up to ``timeout_s``); False if the broker is not there yet.
        Starting without the broker is allowed: commands answer 503 until it is there."""
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        return self._connected.wait(self.timeout_s)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_subscribed(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self._subscribed.wait, timeout_s)

    async def publish_command(self, device_id: str, body: dict[str, Any]) -> None:
        """Publish on ``.../dev/{device_id}/cmd`` at QoS 1; returns once the broker has it."""
        if not self._connected.is_set():
            raise BrokerUnavailable(f"not connected to the broker at {self.host}:{self.port}")
        payload = json.dumps(body, separators=(",", ":")).encode()
        info = self._client.publish(device_topic(device_id, "cmd"), payload, qos=1)
        try:
            await asyncio.to_thread(info.wait_for_publish, self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnavailable(f"the broker did not take the command: {exc}") from exc
        if not info.is_published():
            raise BrokerUnavailable(f"the broker did not acknowledge within {self.timeout_s} s")
        self.published += 1

    # -- paho callbacks (network thread) ----------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("api: broker %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        self._connected.set()
        client.subscribe(device_filter("telemetry"), qos=0)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()
        self._subscribed.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not self._listeners:
            return
        try:
            device_id = parse_device_topic(msg.topic).device_id
            _, samples = wire.decode_telemetry_readings(bytes(msg.payload), device_id=device_id)
        except MessageRejected:
            return  # ingest dead-letters it; the live view just skips it
        newest = max(samples, key=lambda s: wire.time_to_ns(s["t"]))
        values = {k: v for k, v in newest.items() if k != "t"}
        reading = (device_id, wire.time_to_ns(newest["t"]) / 1e9, values)
        for listener in self._listeners:
            listener(reading)
