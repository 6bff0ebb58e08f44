"""The live stream (``GET /api/v1/stream``): alert changes and fresh readings as
server-sent events, each connection seeing its caller's scope only.

One ``StreamHub`` per API process feeds every connection:

- alerts: it polls the alert store's change feed (``AlertStore.changes_since``, the
  audit trail by increasing event id), so changes made by detectors or people in any
  process show up, within ``poll_s``. On PostgreSQL an event id can become visible after
  a higher one (sequences are handed out before commit): an id skipped over is looked
  for again for ``gap_wait_s``, so such a late commit still reaches the stream.
- readings: the API's broker subscription (``BrokerLink``), at most one per device per
  ``reading_every_s``, to callers who may see raw telemetry.

Frames (``text/event-stream``)::

    retry: 3000                      once, at the start
    id: 42                           the alert event's id (resume point)
    event: alert
    data: {...AlertPublic...}        the alert as it is now (after change 42)

    event: reading
    data: {"device_id": "...", "t": 1764590000.0, "values": {"p_in_kpa": 512.0}}

    : keepalive                      every heartbeat_s without anything else

Resume: a reconnect with ``Last-Event-ID: 42`` (the browser's EventSource sends it) first
gets the in-scope alert changes after 42 (at most ``backlog_max``, the newest), then live
ones. Each connection has a queue of ``queue_max`` frames; a client that falls that far
behind is dropped (its connection closed), never waited for, and comes back with
Last-Event-ID. A stream ends after ``lifetime_s`` (the browser reconnects on its own), so
a revoked key or session stops streaming within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from composition.api.broker import BrokerLink, Reading
from composition.api.models import AlertPublic
from composition.api.scoping import alert_in_scope
from sealscope.accounts import Scope as CallerScope
from sealscope.alerts import Alert, AlertChange, AlertStore
from sealscope.errors import NotFound, SealscopeError
from sealscope.registry import DeviceRegistry
from sealscope.risk import RiskTable

__all__ = ["EventStream", "StreamHub", "StreamTuning", "Subscriber"]

log = logging.getLogger(__name__)

_HEARTBEAT: Final = b": keepalive\n\n"
_RETRY: Final = b"retry: 3000\n\n"
_VERDICTS_MAX: Final = 50_000


@dataclass(frozen=True)
class StreamTuning:
    poll_s: float = 0.5  # how often the alert change feed is read
    heartbeat_s: float = 15.0  # a comment line when nothing else was sent (proxies, NAT)
    queue_max: int = 512  # frames waiting per connection; past it the client is dropped
    reading_every_s: float = 1.0  # at most one reading per device per this
    backlog_max: int = 1000  # alert changes replayed on resume, the newest
    gap_wait_s: float = 30.0  # how long a skipped event id is looked for again
    lifetime_s: float = 900.0  # a stream ends after this; the client reconnects
    verdict_ttl_s: float = 30.0  # how long "device X is in this caller's scope" is reused


def alert_frame(change: AlertChange) -> bytes:
    data = AlertPublic.of(change.alert).model_dump_json()
    return f"id: {change.event.id}\nevent: alert\ndata: {data}\n\n".encode()


def reading_frame(reading: Reading) -> bytes:
    device_id, t, values = reading
    data = json.dumps({"device_id": device_id, "t": t, "values": values}, allow_nan=False)
    return f"event: reading\ndata: {data}\n\n".encode()


class Subscriber:
    """One connection: its scope, its bounded queue, and whether it was dropped."""

    def __init__(self, scope: CallerScope, queue_max: int) -> None:
        self.scope = scope
        self.readings = scope.sees_raw_telemetry
        self.queue: asyncio.Queue[tuple[int | None, bytes]] = asyncio.Queue(queue_max)
        self.dropped = asyncio.Event()
        self.closing = asyncio.Event()  # the server is stopping: end the stream cleanly
        self._verdicts: dict[str, tuple[bool, float]] = {}

    def offer(self, event_id: int | None, frame: bytes) -> bool:
        """Queue a frame; False (and dropped) when the client is too far behind."""
        if self.dropped.is_set():
            return False
        try:
            self.queue.put_nowait((event_id, frame))
        except asyncio.QueueFull:
            self.dropped.set()
            return False
        return True

    def known(self, device_id: str, now: float) -> bool | None:
        verdict = self._verdicts.get(device_id)
        return verdict[0] if verdict is not None and verdict[1] > now else None

    def remember(self, device_id: str, allowed: bool, until: float) -> None:
        if len(self._verdicts) >= _VERDICTS_MAX:
            self._verdicts.clear()
        self._verdicts[device_id] = (allowed, until)


class StreamHub:
    def __init__(
        self,
        *,
        alerts: AlertStore,
        registry: DeviceRegistry,
        risk_table: Callable[[], RiskTable | None],
        broker: BrokerLink | None = None,
        tuning: StreamTuning | None = None,
    ) -> None:
        self.alerts = alerts
        self.registry = registry
        self.tuning = tuning or StreamTuning()
        # a read of the feed fits twice in a connection's queue: a burst of changes fills
        # it only for a client that does not drain it between reads
        self._batch = max(1, min(500, self.tuning.queue_max // 2))
        self._risk_table = risk_table
        self._broker = broker
        self._subscribers: set[Subscriber] = set()
        self._high = 0  # the newest event id the feed has handed out
        self._gaps: dict[int, float] = {}  # event id skipped over -> when it was noticed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readings: asyncio.Queue[Reading] = asyncio.Queue(10_000)
        self._last_reading: dict[str, float] = {}  # device -> monotonic time of the last
        self._reading_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped_clients = 0
        self.dropped_readings = 0

    async def __aenter__(self) -> StreamHub:
        self._loop = asyncio.get_running_loop()
        self._high = await asyncio.to_thread(self.alerts.last_change_id)
        self._tasks.append(asyncio.create_task(self._poll_alerts(), name="stream-alerts"))
        if self._broker is not None:
            self._broker.on_reading(self._on_reading)
            self._tasks.append(asyncio.create_task(self._fan_readings(), name="stream-readings"))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close_streams()
        self._subscribers.clear()

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def close_streams(self) -> None:
        """End every open stream (the server is stopping): the server waits for open
        responses before it shuts down, and a stream would otherwise run its lifetime."""
        for sub in list(self._subscribers):
            sub.closing.set()

    # -- connections ------------------------------------------------------------------
    def subscribe(self, scope: CallerScope) -> Subscriber:
        sub = Subscriber(scope, self.tuning.queue_max)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def drop(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self.dropped_clients += 1
            log.warning(
                "stream: dropped a client that fell %d frames behind", self.tuning.queue_max
            )

    async def backlog(self, sub: Subscriber, after_id: int) -> list[tuple[int, bytes]]:
        """The in-scope alert changes after ``after_id`` (the newest ``backlog_max``)."""

        def fetch() -> list[tuple[int, bytes]]:
            start = max(after_id, self.alerts.last_change_id() - self.tuning.backlog_max)
            changes = self.alerts.changes_since(start, limit=self.tuning.backlog_max)
            keep = self._visible([sub], changes)[sub]
            return [(c.event.id, alert_frame(c)) for c in keep]

        return await asyncio.to_thread(fetch)

    # -- alerts -----------------------------------------------------------------------
    def _visible(
        self, subs: list[Subscriber], changes: list[AlertChange]
    ) -> dict[Subscriber, list[AlertChange]]:
        """Each subscriber's share of ``changes`` (runs on a worker thread: registry reads)."""
        table = self._risk_table() if changes else None
        now = time.monotonic()
        out: dict[Subscriber, list[AlertChange]] = {}
        for sub in subs:
            keep: list[AlertChange] = []
            for change in changes:
                if self._allows(sub, change.alert, table, now):
                    keep.append(change)
            out[sub] = keep
        return out

    def _allows(self, sub: Subscriber, alert: Alert, table: RiskTable | None, now: float) -> bool:
        if sub.scope.is_admin:
            return True
        verdict = sub.known(alert.device_id, now)
        if verdict is None:
            verdict = alert_in_scope(sub.scope, alert, self.registry, table)
            sub.remember(alert.device_id, verdict, now + self.tuning.verdict_ttl_s)
        return verdict

    def _read_feed(self) -> list[AlertChange]:
        now = time.monotonic()
        for event_id, since in list(self._gaps.items()):
            if now - since > self.tuning.gap_wait_s:
                del self._gaps[event_id]  # a rolled-back transaction's id: never coming
        changes = self.alerts.changes_since(self._high, limit=self._batch, ids=sorted(self._gaps))
        for change in changes:
            event_id = change.event.id
            if event_id in self._gaps:
                del self._gaps[event_id]
            elif event_id > self._high:
                for missing in range(self._high + 1, min(event_id, self._high + 1001)):
                    self._gaps[missing] = now
                self._high = event_id
        return changes

    async def _poll_alerts(self) -> None:
        while True:
            try:
                if not self._subscribers:
                    self._high = await asyncio.to_thread(self.alerts.last_change_id)
                    self._gaps.clear()
                else:
                    changes = await asyncio.to_thread(self._read_feed)
                    if changes:
                        subs = list(self._subscribers)
                        shares = await asyncio.to_thread(self._visible, subs, changes)
                        for sub, share in shares.items():
                            for change in share:
                                if not sub.offer(change.event.id, alert_frame(change)):
                                    self.drop(sub)
                                    break
                        if len(changes) >= self._batch:
                            continue  # more waiting: read on without sleeping
            except SealscopeError as exc:  # the state database is away; try again
                log.warning("stream: reading the alert feed failed: %s", exc)
            except Exception:  # a bug must not end the feed for every client
                log.exception("stream: the alert feed failed; trying again")
            await asyncio.sleep(self.tuning.poll_s)

    # -- readings ---------------------------------------------------------------------
    def _on_reading(self, reading: Reading) -> None:
        """On the broker's network thread: throttle per device, hand over to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._subscribers:
            return
        now = time.monotonic()
        with self._reading_lock:
            last = self._last_reading.get(reading[0])
            if last is not None and now - last < self.tuning.reading_every_s:
                return
            if len(self._last_reading) >= _VERDICTS_MAX:
                self._last_reading.clear()
            self._last_reading[reading[0]] = now
        loop.call_soon_threadsafe(self._queue_reading, reading)

    def _queue_reading(self, reading: Reading) -> None:
        try:
            self._readings.put_nowait(reading)
        except asyncio.QueueFull:
            self.dropped_readings += 1

    def _reading_shares(
        self, subs: list[Subscriber], readings: list[Reading]
    ) -> list[tuple[Subscriber, Reading]]:
        now = time.monotonic()
        out: list[tuple[Subscriber, Reading]] = []
        for sub in subs:
            for reading in readings:
                device_id = reading[0]
                allowed = sub.scope.is_admin or sub.known(device_id, now)
                if allowed is None:
                    try:
                        allowed = sub.scope.allows_device(self.registry.get(device_id))
                    except (NotFound, ValueError):
                        allowed = False
                    sub.remember(device_id, allowed, now + self.tuning.verdict_ttl_s)
                if allowed:
                    out.append((sub, reading))
        return out

    async def _fan_readings(self) -> None:
        while True:
            readings = [await self._readings.get()]
            while not self._readings.empty():
                readings.append(self._readings.get_nowait())
            subs = [s for s in self._subscribers if s.readings]
            if not subs:
                continue
            try:
                shares = await asyncio.to_thread(self._reading_shares, subs, readings)
            except SealscopeError as exc:
                log.warning("stream: scoping readings failed: %s", exc)
                continue
            except Exception:
                log.exception("stream: scoping readings failed")
                continue
            for sub, reading in shares:
                if not sub.offer(None, reading_frame(reading)):
                    self.drop(sub)


class EventStream(Response):
    """The ASGI response of one stream: backlog, then live frames and heartbeats, until
    the client leaves, is dropped, or the stream's lifetime ends."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: StreamHub,
        sub: Subscriber,
        *,
        backlog: list[tuple[int, bytes]],
        lifetime_s: float,
    ) -> None:
        # a Response so FastAPI passes it through; it writes its own head and body
        self.status_code = 200
        self.background = None
        self.raw_headers = []
        self.hub, self.sub = hub, sub
        self._backlog = backlog
        self._lifetime_s = lifetime_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # nginx: pass each frame through at once
        ]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            writer = asyncio.create_task(self._write(send), name="stream-writer")
            left = asyncio.create_task(self._until_disconnect(receive), name="stream-left")
            dropped = asyncio.create_task(self.sub.dropped.wait(), name="stream-dropped")
            closing = asyncio.create_task(self.sub.closing.wait(), name="stream-closing")
            done, pending = await asyncio.wait(
                {writer, left, dropped, closing},
                timeout=self._lifetime_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if writer in done and writer.exception() is not None:
                raise writer.exception()  # type: ignore[misc]
            if not done or closing in done:  # lifetime over, or stopping: end it properly
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.hub.tuning.heartbeat_s):
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
            # dropped: return mid-response; the server closes the connection
        finally:
            if self.sub.dropped.is_set():
                self.hub.drop(self.sub)
            else:
                self.hub.unsubscribe(self.sub)

    async def _write(self, send: Send) -> None:
        async def emit(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        await emit(_RETRY + b"".join(frame for _, frame in self._backlog))
        replayed = {event_id for event_id, _ in self._backlog}
        heartbeat_s = self.hub.tuning.heartbeat_s
        while True:
            try:
                async with asyncio.timeout(heartbeat_s):
                    event_id, frame = await self.sub.queue.get()
            except TimeoutError:
                await emit(_HEARTBEAT)
                continue
            if event_id is not None and event_id in replayed:
                continue  # sent in the backlog already
            # everything waiting goes in one write
            frames = [frame]
            while not self.sub.queue.empty():
                more_id, more = self.sub.queue.get_nowait()
                if more_id is None or more_id not in replayed:
                    frames.append(more)
            await emit(b"".join(frames))

    @staticmethod
    async def _until_disconnect(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
