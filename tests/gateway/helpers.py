"""Gateway test helpers: a paho subscriber recording what reaches the broker, SenML packs,
and a CoAP uplink call."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiocoap
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway import Gateway, encode_cbor, encode_json


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def device_id(kind: str = "V") -> str:
    """A device id no other test uses (the session broker is shared)."""
    return f"T{uuid.uuid4().hex[:10]}-{kind}-0001"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """Records every message on ``topic_filter`` (QoS 1, persistent session)."""

    def __init__(
        self, host: str, port: int, topic_filter: str, *, auth: tuple[str, str] | None = None
    ) -> None:
        self.topic_filter = topic_filter
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        if auth is not None:
            self._client.username_pw_set(*auth)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("test subscriber did not get its SUBACK")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic_filter, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, msg.retain))
            self._cond.notify_all()

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout_s: float = 10.0
    ) -> list[Received]:
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: predicate(self.messages), timeout_s)

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"condition not met in {timeout_s}s; got {self.snapshot()}")
        return self.snapshot()

    async def wait_count(self, n: int, timeout_s: float = 10.0) -> list[Received]:
        return await self.wait_for(lambda m: len(m) >= n, timeout_s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def post_uplink(
    client: aiocoap.Context,
    gw: Gateway,
    device: str,
    key: str | None,
    payload: bytes,
    *,
    content_format: int | None = 112,
) -> aiocoap.Message:
    query = f"?k={key}" if key is not None else ""
    request = aiocoap.Message(
        code=aiocoap.POST,
        uri=f"coap://127.0.0.1:{gw.coap_port}/u/{device}{query}",
        payload=payload,
    )
    if content_format is not None:
        request.opt.content_format = content_format
    return await asyncio.wait_for(client.request(request).response, 10)


def pack(
    device: str, seq: int, samples: list[dict[str, Any]], *, extra: list[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """A SenML pack: base name, seq, and one record per reading of each sample."""
    records: list[dict[str, Any]] = [{"bn": f"urn:dev:sn:{device}:", "n": "seq", "v": seq}]
    for sample in samples:
        t = sample["t"]
        records += [{"n": name, "t": t, "v": v} for name, v in sample.items() if name != "t"]
    return records + list(extra)


def cbor_pack(*args: Any, **kwargs: Any) -> bytes:
    return encode_cbor(pack(*args, **kwargs))


def json_pack(*args: Any, **kwargs: Any) -> bytes:
    return encode_json(pack(*args, **kwargs))
