"""Webhook channel: an HTTP POST signed per Standard Webhooks, with aiohttp.

Any 2xx is delivered; anything else (3xx included: redirects are not followed, so a
subscriber URL cannot bounce the signed body elsewhere), a connection error or the timeout
is a failed attempt. The response body is not read beyond a small bound.
"""

from __future__ import annotations

import asyncio
from typing import Self

import aiohttp

from sealscope.delivery.outbox import Delivery
from sealscope.delivery.signature import headers
from sealscope.delivery.subscription import ChannelKind
from sealscope.errors import DeliveryFailed

__all__ = ["WebhookChannel"]

_MAX_RESPONSE_BYTES = 4096


class WebhookChannel:
    kind: ChannelKind = "webhook"

    def __init__(
        self, *, timeout_s: float = 10.0, max_connections: int = 100, user_agent: str = "sealscope"
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            headers={"user-agent": self._user_agent},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, delivery: Delivery) -> int | None:
        if self._session is None:
            raise RuntimeError("WebhookChannel is used outside 'async with'")
        if delivery.secret is None:
            raise DeliveryFailed("webhook subscription has no secret")
        signed = headers(delivery.secret, delivery.id, delivery.body)
        signed["content-type"] = "application/json"
        try:
            async with self._session.post(
                delivery.target, data=delivery.body, headers=signed, allow_redirects=False
            ) as response:
                await response.content.read(_MAX_RESPONSE_BYTES)
                status = response.status
        except TimeoutError as exc:
            raise DeliveryFailed(f"no answer within {self.timeout_s}s") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        except asyncio.CancelledError:
            raise
        if not 200 <= status < 300:
            raise DeliveryFailed(f"receiver answered {status}", status_code=status)
        return status
