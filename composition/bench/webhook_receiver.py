"""A local webhook receiver (aiohttp) for the delivery tests and ``sealscope bench delivery``.

It verifies each request's Standard Webhooks signature, keeps what arrived and when, and
answers what ``respond`` says (204 by default), so a test can make it answer 500, stall
past the sender's timeout, or hold a request until the test has killed the sender.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from composition.servers import free_port
from sealscope.delivery.signature import verify
from sealscope.errors import WebhookVerificationError

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Received:
    webhook_id: str
    body: bytes
    arrived_at: float  # Unix s
    verified: bool


Respond = Callable[[Received], Awaitable[int]]


async def _no_content(_: Received) -> int:
    return 204


class WebhookReceiver:
    def __init__(
        self, *, secret: str | None, host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self._secret = secret
        self.host = host
        self.port = port or free_port(host)
        self.respond: Respond = _no_content
        self.received: list[Received] = []
        self.in_flight: dict[str, int] = {}  # webhook-id -> requests being answered now
        self.max_in_flight_per_id = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def ids(self) -> list[str]:
        return [r.webhook_id for r in self.received]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/received", self._list)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _list(self, _: web.Request) -> web.Response:
        arrivals = [[r.webhook_id, r.arrived_at, r.verified] for r in self.received]
        return web.json_response(arrivals)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = False
        if self._secret is not None:
            try:
                verify(self._secret, headers, body)
                verified = True
            except WebhookVerificationError:
                verified = False
        received = Received(headers.get("webhook-id", ""), body, time.time(), verified)
        self.received.append(received)
        if self._secret is not None and not verified:
            return web.Response(status=400)
        key = received.webhook_id
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.max_in_flight_per_id = max(self.max_in_flight_per_id, self.in_flight[key])
        try:
            return web.Response(status=await self.respond(received))
        finally:
            self.in_flight[key] -= 1


async def _serve(port: int) -> None:
    receiver = WebhookReceiver(secret=os.environ.get("SEALSCOPE_BENCH_WEBHOOK_SECRET"), port=port)
    await receiver.start()
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


if __name__ == "__main__":
    # run alone (the bench does, in its own process): python -m ... PORT; secret from the env
    asyncio.run(_serve(int(sys.argv[1])))
