"""The dispatcher: claims due deliveries, sends them on their channel, records each attempt.

``async with Dispatcher(...)`` enters the channels and starts the claim loop in a
``TaskGroup``; leaving it stops claiming and waits for the sends in flight to be recorded.
A send is bounded by its channel's timeout, kept below the lease, so a live dispatcher
always records before its lease ends; a killed one's deliveries are claimed again once the
lease expires and sent with the same delivery id (at least once, never lost).

Between claims the loop sleeps ``poll_interval_s`` or until ``wake()`` (call it after an
in-process enqueue to skip the poll delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Self

from sealscope.delivery.backoff import RetryPolicy
from sealscope.delivery.channel import Channel
from sealscope.delivery.outbox import Attempt, Delivery, Outbox, Outcome, Result
from sealscope.errors import DeliveryFailed

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

_MAX_RECORD_BATCH = 500
_LEASE_PER_TIMEOUT = 2.0  # the send takes at most half the lease; the record fits in the rest


class Dispatcher:
    def __init__(
        self,
        *,
        outbox: Outbox,
        channels: Iterable[Channel],
        retry: RetryPolicy | None = None,
        lease_s: float = 60.0,
        batch: int = 100,
        max_in_flight: int = 64,
        poll_interval_s: float = 0.5,
        name: str | None = None,
    ) -> None:
        self._channels = {channel.kind: channel for channel in channels}
        if not self._channels:
            raise ValueError("a dispatcher needs at least one channel")
        longest_s = max(channel.timeout_s for channel in self._channels.values())
        if lease_s < longest_s * _LEASE_PER_TIMEOUT:
            raise ValueError(
                f"lease_s {lease_s} must be at least {_LEASE_PER_TIMEOUT} x the longest channel"
                f" timeout ({longest_s}s), or a slow send could be claimed twice"
            )
        if batch < 1 or max_in_flight < 1 or poll_interval_s <= 0:
            raise ValueError("batch and max_in_flight must be >= 1, poll_interval_s > 0")
        self._outbox = outbox
        self._retry = retry or RetryPolicy()
        self._lease_s = lease_s
        self._batch = batch
        self._max_in_flight = max_in_flight
        self._poll_interval_s = poll_interval_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._stack: contextlib.AsyncExitStack | None = None
        self._group: asyncio.TaskGroup | None = None
        self._in_flight = 0
        self.sent = 0  # attempts made, for tests and benches
        self.failed = 0

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            for channel in self._channels.values():
                await stack.enter_async_context(channel)
            self._group = await stack.enter_async_context(asyncio.TaskGroup())
            self._group.create_task(self._run(), name=f"dispatcher-{self.name}")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping = True
        self._wake.set()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(None, None, None)

    def wake(self) -> None:
        """Claim now instead of at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        results: asyncio.Queue[Result | None] = asyncio.Queue()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._record_loop(results), name=f"recorder-{self.name}")
            try:
                async with asyncio.TaskGroup() as sends:
                    while not self._stopping:
                        self._wake.clear()
                        limit = min(self._batch, self._max_in_flight - self._in_flight)
                        claimed: list[Delivery] = []
                        if limit > 0:
                            claimed = await self._claim(limit)
                        for delivery in claimed:
                            self._in_flight += 1
                            sends.create_task(self._deliver(delivery, results))
                        if claimed and len(claimed) == limit:
                            continue  # more may be due
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
            finally:
                results.put_nowait(None)  # after every send's result: the recorder may stop

    async def _claim(self, limit: int) -> list[Delivery]:
        try:
            return await asyncio.to_thread(
                self._outbox.claim, self.name, limit=limit, lease_s=self._lease_s
            )
        except Exception:
            # an outbox outage must not end the loop: claim again at the next poll
            log.exception("claiming deliveries failed")
            return []

    async def _deliver(self, delivery: Delivery, results: asyncio.Queue[Result | None]) -> None:
        results.put_nowait(await self._attempt(delivery))

    async def _record_loop(self, results: asyncio.Queue[Result | None]) -> None:
        """Record finished sends, as many per transaction as have finished meanwhile."""
        stopping = False
        while not stopping:
            first = await results.get()
            if first is None:
                return
            batch = [first]
            while not results.empty() and len(batch) < _MAX_RECORD_BATCH:
                item = results.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                applied = await asyncio.to_thread(self._outbox.record_many, self.name, batch)
                if applied < len(batch):
                    log.warning(
                        "%d deliveries lost their lease before the record", len(batch) - applied
                    )
            except Exception:
                # the rows stay leased and come back when their lease ends
                log.exception("could not record %d attempts", len(batch))
            self._in_flight -= len(batch)
            self._wake.set()  # slots are free

    async def _attempt(self, delivery: Delivery) -> Result:
        channel = self._channels.get(delivery.channel)
        started_at = time.time()
        t0 = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            if channel is None:
                raise DeliveryFailed(f"this dispatcher has no {delivery.channel} channel")
            status_code = await channel.send(delivery)
        except DeliveryFailed as exc:
            status_code, error = exc.status_code, exc.reason
        except Exception as exc:
            # a channel bug fails this attempt, never the loop
            log.exception("delivery %s: channel %s raised", delivery.id, delivery.channel)
            error = f"unexpected {type(exc).__name__}"
        duration_s = time.perf_counter() - t0
        self.sent += 1
        outcome: Outcome = "delivered"
        next_at = delivery.next_attempt_at
        if error is not None:
            self.failed += 1
            attempts = delivery.attempts + 1
            if self._retry.is_exhausted(attempts):
                outcome = "dead"
            else:
                outcome = "retry"
                next_at = time.time() + self._retry.delay_s(attempts)
            log.info(
                "delivery %s attempt %d to subscription %s: %s (%s)",
                delivery.id,
                attempts,
                delivery.subscription_id,
                outcome,
                error,
            )
        attempt = Attempt(
            delivery_id=delivery.id,
            subscription_id=delivery.subscription_id,
            started_at=started_at,
            duration_s=duration_s,
            outcome=outcome,
            status_code=status_code,
            error=error,
            dispatcher=self.name,
        )
        return delivery, attempt, next_at
