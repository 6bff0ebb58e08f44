"""What every gateway ingress hands on: canonical v1 messages for one device.

CoAP/SenML (``gateway.coap``) and the NB-IoT platforms' HTTP push (``gateway.http_push``)
both translate what they receive into ``CanonicalMessage``s and submit them to an
``UplinkSink``. The sink (``gateway.forwarder``) keeps them on disk until the MQTT broker
has acknowledged them, in order, and recognises a device's retry of an uplink it already
took (``dedup_key``), so it is not published twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["CanonicalMessage", "UplinkSink"]


@dataclass(frozen=True, slots=True)
class CanonicalMessage:
    device_id: str
    kind: Literal["telemetry", "event", "state"]
    payload: bytes  # canonical JSON of sealscope.wire v1, made with sealscope.wire.encode
    retain: bool = False  # True for state


class UplinkSink(Protocol):
    async def submit(self, messages: Sequence[CanonicalMessage], *, dedup_key: str | None) -> bool:
        """Make the messages durable (on disk) for forwarding; True if taken, False if
        ``dedup_key`` was seen before (a retry: nothing is published again)."""
        ...
