"""How simulated devices' messages leave the process: the ``Transport`` port and its adapters.

A transport takes a batch of ``DeviceMessage``s (each to be put on the wire ``copies``
times: the radio's retries duplicate some) and says what the far end acknowledged, and
which downlink commands came back right after each device's uplink — the only moment an
NB-IoT device in PSM can receive anything.

Adapters:

* ``SharedMqttTransport`` — one MQTT connection publishing for the whole fleet (how a
  gateway or a platform bridge publishes); no downlink.
* ``DeviceMqttTransport`` (device_mqtt.py) — every device its own MQTT identity, a pool of
  concurrently connected devices cycling through wake-ups.
* ``CoapTransport`` (coap.py) — the NB-IoT path: SenML uplinks to the sealscope gateway.
* ``MemoryTransport`` — records everything, acknowledges everything; for unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, Self

from firmware_sim.publisher import MqttPublisher, OutgoingMessage
from firmware_sim.publisher import Protocol as MqttProtocol
from sealscope.topics import device_topic

__all__ = [
    "Delivery",
    "DeviceMessage",
    "MemoryTransport",
    "SharedMqttTransport",
    "Transport",
]

Kind = Literal["telemetry", "event", "state"]


class DeviceMessage(NamedTuple):
    device_id: str
    kind: Kind
    payload: bytes
    copies: int = 1  # times it goes on the wire (1 + the radio's duplicates)
    retain: bool = False


@dataclass(slots=True)
class Delivery:
    """What the far end made of one ``send``."""

    published: int = 0  # copies put on the wire
    acked: list[int] = field(default_factory=list)  # per message: copies acknowledged
    refused: list[tuple[int, str]] = field(default_factory=list)  # (message index, reason)
    downlinks: list[tuple[str, bytes]] = field(default_factory=list)  # (device id, payload)

    @property
    def acked_copies(self) -> int:
        return sum(self.acked)


class Transport(Protocol):
    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def send(self, messages: Sequence[DeviceMessage]) -> Delivery: ...


class SharedMqttTransport:
    """All devices over one MQTT connection (``MqttPublisher``); the gateway's view."""

    name = "mqtt-shared"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        protocol: MqttProtocol = "5",
        window: int = 1000,
    ) -> None:
        self._publisher = MqttPublisher(
            host=host,
            port=port,
            username=username,
            password=password,
            protocol=protocol,
            window=window,
        )

    async def __aenter__(self) -> Self:
        await self._publisher.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._publisher.__aexit__(*exc_info)

    async def send(self, messages: Sequence[DeviceMessage]) -> Delivery:
        outgoing: list[OutgoingMessage] = []
        owner: list[int] = []
        for index, m in enumerate(messages):
            topic = device_topic(m.device_id, m.kind)
            for _ in range(m.copies):
                outgoing.append(OutgoingMessage(topic, m.payload, m.retain))
                owner.append(index)
        result = await self._publisher.publish_many(outgoing)
        acked = [m.copies for m in messages]
        refused: dict[int, str] = {}
        for r in result.refused:
            acked[owner[r.index]] -= 1
            refused.setdefault(owner[r.index], r.reason)
        return Delivery(published=len(outgoing), acked=acked, refused=sorted(refused.items()))


class MemoryTransport:
    """Acknowledges every copy and remembers it; ``downlink`` may answer a device's uplink."""

    name = "memory"

    def __init__(self, *, downlink: Callable[[str], list[bytes]] | None = None) -> None:
        self.sent: list[DeviceMessage] = []
        self._downlink = downlink

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def send(self, messages: Sequence[DeviceMessage]) -> Delivery:
        delivery = Delivery()
        for m in messages:
            self.sent.extend([m] * m.copies)
            delivery.published += m.copies
            delivery.acked.append(m.copies)
            if self._downlink is not None and m.kind != "state":
                delivery.downlinks += [(m.device_id, p) for p in self._downlink(m.device_id)]
        return delivery
