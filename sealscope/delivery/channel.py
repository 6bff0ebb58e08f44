"""The channel port: one way of handing a delivery to a subscriber.

A channel is an async context manager (it may hold a connection pool or a broker session)
whose ``send`` returns the peer's status code on success and raises ``DeliveryFailed`` on
any failure; every third-party error is translated at the channel. ``send`` is bounded by
the channel's ``timeout_s``, which the dispatcher keeps below its lease.
"""

from __future__ import annotations

from typing import Protocol, Self

from sealscope.delivery.outbox import Delivery
from sealscope.delivery.subscription import ChannelKind

__all__ = ["Channel"]


class Channel(Protocol):
    kind: ChannelKind
    timeout_s: float

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def send(self, delivery: Delivery) -> int | None:
        """Deliver once; raises DeliveryFailed."""
        ...
