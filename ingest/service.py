"""The ingest service: broker -> spool (fsync, then PUBACK) -> decode/enrich -> store.

Three named tasks in one TaskGroup:

- ``spooler``: drains what the MQTT thread received, appends it to the spool with one fsync
  per group, then acknowledges those messages to the broker. Only this makes a PUBACK.
- ``processor``: reads the spool from its checkpoint, translates messages into points (or
  dead letters), writes them in batches flushed by size and age, and only then advances the
  checkpoint; detectors see a batch after it is stored.
- ``reporter``: logs progress.

With ``settings.ingest_workers`` > 0 the ``processor`` only hands spans of the spool to
worker processes (``ingest.workers``) that translate and write; it commits the checkpoint
over the answered prefix and feeds the detectors in spool order, so receiving and
acknowledging stay here and decoding, encoding and writing use the other cores.

Poison messages (``ingest.processing``): whatever a message makes decoding or translating
raise, it is dead-lettered and the loop carries on; one that kills the process (or a worker)
is dead-lettered after ``crash_limit`` crashes with it in processing.

Back-pressure instead of drops: when the spool reaches its byte bound the spooler stops
draining, the in-memory inbox fills, and the MQTT thread blocks in its callback, so the
broker holds the rest. A store outage only grows the spool; it never loses a message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.consumer import Delivery, MqttConsumer
from ingest.processing import BatchSink, IngestStats, RecordHandler
from ingest.translate import DeviceCache, Translated
from ingest.workers import JobDone, OpenWorkerDeps, WorkerPool
from sealscope import wire
from sealscope.alerts import AlertStore
from sealscope.commands import CommandStore
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore
from sealscope.registry import Device, DeviceRegistry
from sealscope.spool import Spool, SpoolPosition, SpoolRecord
from sealscope.storage import TelemetryStore
from sealscope.topics import PREFIX, UPLINK_KINDS, device_filter

__all__ = ["BatchSink", "Detection", "IngestService", "IngestStats"]

log = logging.getLogger(__name__)


class Detection(Protocol):
    """What ingest needs of the detectors (analytics.DetectionService fits)."""

    def observe(self, device: Device, samples: Sequence[wire.Sample]) -> None: ...

    def flush(self) -> Any: ...

    def save(self) -> None: ...


@dataclass
class _Span:
    end: SpoolPosition
    done: JobDone | None = None


class IngestService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: TelemetryStore,
        registry: DeviceRegistry,
        dead_letters: DeadLetterStore,
        alerts: AlertStore | None = None,
        detection: Detection | None = None,
        commands: CommandStore | None = None,
        sink: BatchSink | None = None,
        inbox_max: int = 20_000,
        report_every_s: float = 10.0,
        detection_save_every_s: float = 60.0,
        drain_timeout_s: float = 30.0,
        crash_limit: int = 2,
        open_worker_deps: OpenWorkerDeps | None = None,
        connect_on_enter: bool = True,
    ) -> None:
        if crash_limit < 1:
            raise ValueError("crash_limit must be at least 1")
        # 2, not 1: a SIGKILL from outside often lands while some good message is in flight
        self.crash_limit = crash_limit
        self.drain_timeout_s = drain_timeout_s
        self.settings = settings
        self.store = store
        self.dead_letters = dead_letters
        self.alerts = alerts
        self.detection = detection
        self.commands = commands
        self.sink = sink
        self.stats = IngestStats()
        self._devices = DeviceCache(registry)
        if settings.ingest_workers and open_worker_deps is None:
            raise ValueError("ingest workers need open_worker_deps (how a worker opens its stores)")
        self._open_worker_deps = open_worker_deps
        self._connect_on_enter = connect_on_enter
        self._pool: WorkerPool | None = None
        self._handler: RecordHandler | None = None
        self._answered = asyncio.Event()
        self._inbox: collections.deque[Delivery] = collections.deque()
        self._inbox_max = inbox_max
        self._room = threading.Condition()
        self._report_every_s = report_every_s
        self._detection_save_every_s = detection_save_every_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._spooled = asyncio.Event()
        self._committed = asyncio.Event()
        self._stopping = False
        self._spool: Spool | None = None
        self._consumer: MqttConsumer | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._task_list: list[asyncio.Task[None]] = []
        self._inflight: asyncio.Task[None] | None = None
        self._processor_done = asyncio.Event()
        self._spans: dict[int, _Span] = {}  # handed to workers, in spool order
        self._spooler_done = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> IngestService:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self._spool = await asyncio.to_thread(Spool, s.spool_dir, max_bytes=s.spool_max_bytes)
        backlog = self._spool.used_bytes()
        if backlog:
            log.info("ingest: replaying %d spooled bytes into the store", backlog)
        self._handler = RecordHandler(
            settings=s,
            store=self.store,
            devices=self._devices,
            dead_letters=self.dead_letters,
            alerts=self.alerts,
            commands=self.commands,
            sink=self.sink,
            stats=self.stats,
            marker=self._spool,
            crash_limit=self.crash_limit,
        )
        if s.ingest_workers:
            assert self._open_worker_deps is not None
            self._pool = WorkerPool(
                count=s.ingest_workers,
                settings=s,
                spool=self._spool,
                open_deps=self._open_worker_deps,
                stats=self.stats,
                on_done=self._span_answered,
                crash_limit=self.crash_limit,
                observe=self.detection is not None,
            )
            await self._pool.start()
        self._consumer = MqttConsumer(
            host=s.mqtt_host,
            port=s.mqtt_port,
            client_id=s.mqtt_client_id,
            filters=self._filters(),
            on_delivery=self._on_delivery,
            username=s.mqtt_username,
            password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
            protocol=s.mqtt_protocol,
            receive_maximum=s.mqtt_receive_maximum,
        )
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._task_list = [
            self._tasks.create_task(self._run_spooler(), name="spooler"),
            self._tasks.create_task(
                self._run_dispatcher() if self._pool else self._run_processor(), name="processor"
            ),
            self._tasks.create_task(self._run_reporter(), name="reporter"),
        ]
        if self._connect_on_enter:
            self._consumer.start()
        return self

    def _filters(self) -> list[str]:
        group = self.settings.mqtt_shared_group
        kinds = [device_filter(k, shared_group=group) for k in UPLINK_KINDS]
        if self.commands is None:
            return kinds
        # the gateway's reports on the commands it queued, recorded for the API to list
        status = f"{PREFIX}/dev/+/cmd/status"
        return [*kinds, f"$share/{group}/{status}" if group else status]

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop: spool and acknowledge what arrived, disconnect, store what is spooled."""
        assert self._consumer is not None and self._tasks is not None
        await self._quiesce()
        await asyncio.to_thread(self._consumer.stop)
        # anything that arrived after the last ack is spooled too; the broker redelivers it
        # (same session) and the store collapses the duplicate
        self._stopping = True
        with self._room:
            self._room.notify_all()
        self._wake.set()
        self._spooled.set()
        await asyncio.wait(self._task_list, timeout=self.drain_timeout_s)
        if not self._processor_done.is_set():
            log.warning("ingest: store still unavailable at shutdown; data stays in the spool")
        for task in self._task_list:
            task.cancel()
        await self._tasks.__aexit__(None, None, None)
        if self._pool is not None:
            await self._pool.close()
        if self.detection is not None:
            await asyncio.to_thread(self.detection.save)
        if self._spool is not None:
            self._spool.close()
        self._log_stats("stopped")

    async def _quiesce(self, idle_s: float = 0.2, max_s: float = 5.0) -> None:
        """Wait until the inbox stays empty for ``idle_s`` so in-flight messages get acked."""
        deadline = time.monotonic() + max_s
        last = (-1, -1)
        while time.monotonic() < deadline:
            now = (self.stats.received, self.stats.acked)
            if not self._inbox and now == last:
                return
            last = now
            await asyncio.sleep(idle_s)

    def connect(self) -> None:
        """Start taking messages (only with ``connect_on_enter=False``: a bench starts several
        instances at once, after each has spawned its workers)."""
        assert self._consumer is not None and not self._connect_on_enter
        self._consumer.start()

    def wait_connected(self, timeout_s: float) -> bool:
        assert self._consumer is not None
        return self._consumer.wait_connected(timeout_s)

    async def wait_stored(self, timeout_s: float) -> bool:
        """True once everything spooled so far is in the store (for tests and shutdown)."""
        assert self._spool is not None
        deadline = time.monotonic() + timeout_s
        while self._spool.checkpoint < self._spool.end or self._inbox:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._committed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._committed.wait(), timeout=min(remaining, 0.5))
        return True

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids if self._pool is not None else []

    @property
    def spool(self) -> Spool:
        assert self._spool is not None
        return self._spool

    # -- MQTT thread -------------------------------------------------------------------
    def _on_delivery(self, delivery: Delivery) -> None:
        with self._room:
            while len(self._inbox) >= self._inbox_max and not self._stopping:
                self.stats.backpressure_waits += 1
                self._room.wait(timeout=1.0)
            self._inbox.append(delivery)
            self.stats.received += 1
            first = len(self._inbox) == 1
        if first and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- spooler -----------------------------------------------------------------------
    async def _run_spooler(self) -> None:
        spool, consumer = self.spool, self._consumer
        assert consumer is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._inbox:
                while True:
                    self._committed.clear()  # before the check, so a commit after it wakes us
                    if self._stopping or not spool.is_full():
                        break
                    log.warning(
                        "ingest: spool full (%d bytes); holding the broker", spool.max_bytes
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._committed.wait(), timeout=5.0)
                room = spool.max_bytes - spool.used_bytes()
                with self._room:
                    batch = self._take_from_inbox(max_messages=5000, max_bytes=room)
                    self._room.notify_all()
                await asyncio.to_thread(
                    spool.append, [(d.topic, d.payload, d.arrival_s) for d in batch]
                )
                self.stats.spooled += len(batch)
                self.stats.acked += consumer.ack(batch)
                self._spooled.set()
            if self._stopping and not self._inbox:
                self._spooler_done.set()
                return

    def _take_from_inbox(self, *, max_messages: int, max_bytes: int) -> list[Delivery]:
        """At least one delivery, then as many as fit, so the spool bound holds to one message."""
        batch = [self._inbox.popleft()]
        size = len(batch[0].payload)
        while self._inbox and len(batch) < max_messages:
            size += len(self._inbox[0].payload) + len(self._inbox[0].topic) + 24
            if size > max_bytes:
                break
            batch.append(self._inbox.popleft())
        return batch

    # -- processor ---------------------------------------------------------------------
    async def _run_processor(self) -> None:
        spool = self.spool
        position = spool.checkpoint
        pending: list[tuple[SpoolRecord, Translated]] = []
        oldest = 0.0
        max_points = self.settings.batch_max_points
        max_age = self.settings.batch_max_age_s
        n_points = 0
        while True:
            self._spooled.clear()  # before the read, so an append after it wakes the wait
            records, position = await asyncio.to_thread(spool.read, position, max_records=5000)
            for record in records:
                translated = await self._translate(record)
                if translated is not None:
                    if not pending:
                        oldest = time.monotonic()
                    pending.append((record, translated))
                    n_points += len(translated.points)
                if n_points >= max_points:
                    await self._flush(pending, record.end)
                    pending, n_points = [], 0
            if records:
                if not pending:
                    # the rest of this read was dead-lettered or had nothing to store; its
                    # position is committed in order, after any write still in flight
                    await self._flush([], position)
                elif time.monotonic() - oldest >= max_age:
                    await self._flush(pending, position)
                    pending, n_points = [], 0
                continue
            if pending and time.monotonic() - oldest >= max_age:
                await self._flush(pending, position)
                pending, n_points = [], 0
                continue
            if self._stopping and self._spooler_done.is_set():
                if pending:
                    await self._flush(pending, position)
                if self._inflight is not None:
                    await self._inflight
                self._processor_done.set()
                return
            timeout = max_age - (time.monotonic() - oldest) if pending else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spooled.wait(), timeout=timeout)

    async def _translate(self, record: SpoolRecord) -> Translated | None:
        assert self._handler is not None
        return await self._handler.translate(record)

    # -- dispatcher (worker processes) ---------------------------------------------------
    def _span_answered(self, done: JobDone) -> None:
        span = self._spans.get(done.job_id)
        if span is not None:
            span.done = done
            self._answered.set()

    async def _run_dispatcher(self) -> None:
        """Hand spool spans to the workers; commit and detect over the answered prefix."""
        spool, pool = self.spool, self._pool
        assert pool is not None
        position = spool.checkpoint
        # about a store batch per span: an uplink carries a dozen samples or so
        max_records = max(1, self.settings.batch_max_points // 12)
        while True:
            self._spooled.clear()  # before looking, so an append after it wakes the wait
            self._answered.clear()
            free = pool.free()
            limit = spool.end
            if free and position < limit:
                spans = await asyncio.to_thread(
                    spool.ranges,
                    position,
                    max_records=max_records,
                    max_bytes=4 << 20,
                    max_ranges=free,
                )
                for start, end in spans:
                    if end >= limit and not pool.idle():
                        # a span cut short by the end of the spool waits for an idle worker
                        # and grows meanwhile: small spans queued behind busy workers would
                        # each cost a store write and fall behind at moderate rates
                        break
                    job = pool.submit(start, end)
                    self._spans[job.job_id] = _Span(end)
                    position = end
            await self._commit_answered()
            if (
                self._stopping
                and self._spooler_done.is_set()
                and not self._spans
                and position >= spool.end
            ):
                self._processor_done.set()
                return
            waits = [asyncio.ensure_future(self._answered.wait())]
            if pool.free():
                waits.append(asyncio.ensure_future(self._spooled.wait()))
            _done, not_done = await asyncio.wait(
                waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
            )
            for waiting in not_done:
                waiting.cancel()

    async def _commit_answered(self) -> None:
        spans = self._spans
        answered: list[JobDone] = []
        end = None
        while spans:
            job_id = next(iter(spans))  # dicts keep the order spans were handed out in
            span = spans[job_id]
            if span.done is None:
                break
            answered.append(span.done)
            end = span.end
            del spans[job_id]
        if end is None:
            return
        await asyncio.to_thread(self.spool.commit, end)
        arrivals = [d.oldest_arrival_s for d in answered if d.oldest_arrival_s is not None]
        if arrivals:
            self.stats.last_batch_lag_s = max(0.0, time.time() - min(arrivals))
        self._committed.set()
        if self.detection is not None:
            assert self._pool is not None
            for done in answered:
                for device_id, samples in self._pool.observed(done):
                    with contextlib.suppress(Exception):  # gone from the registry since
                        device, _series = self._devices.lookup(device_id)
                        self.detection.observe(device, samples)
            await asyncio.to_thread(self.detection.flush)
            if arrivals:
                self.stats.last_detected_lag_s = max(0.0, time.time() - min(arrivals))

    async def _flush(
        self, pending: list[tuple[SpoolRecord, Translated]], position: SpoolPosition
    ) -> None:
        """Hand a batch to the store while the next one is translated (one write in flight,
        so checkpoints still advance in spool order)."""
        if self._inflight is not None:
            await self._inflight
        assert self._tasks is not None
        self._inflight = self._tasks.create_task(
            self._store_batch(pending, position), name="store-write"
        )

    async def _store_batch(
        self, pending: list[tuple[SpoolRecord, Translated]], position: SpoolPosition
    ) -> None:
        assert self._handler is not None
        stored = await self._handler.store_batch(pending)
        await asyncio.to_thread(self.spool.commit, position)
        oldest_arrival_s = min((r.arrival_s for r, _ in pending), default=None)
        if oldest_arrival_s is not None:
            self.stats.last_batch_lag_s = max(0.0, time.time() - oldest_arrival_s)
        self._committed.set()
        if self.detection is not None:
            for _, translated in stored:
                if translated.telemetry is not None:
                    self.detection.observe(translated.device, translated.telemetry.samples)
            await asyncio.to_thread(self.detection.flush)
            if oldest_arrival_s is not None:
                self.stats.last_detected_lag_s = max(0.0, time.time() - oldest_arrival_s)

    # -- reporter ----------------------------------------------------------------------
    async def _run_reporter(self) -> None:
        last_save = time.monotonic()
        while not (self._processor_done.is_set()):
            await _wait_any(self._processor_done, self._report_every_s)
            self._log_stats("progress")
            if (
                self.detection is not None
                and time.monotonic() - last_save >= self._detection_save_every_s
            ):
                await asyncio.to_thread(self.detection.save)
                last_save = time.monotonic()

    def _log_stats(self, what: str) -> None:
        s = self.stats
        spool = self._spool
        log.info(
            "ingest %s: received=%d acked=%d stored_points=%d dead_letters=%d poison=%d "
            "store_retries=%d spool_bytes=%d",
            what,
            s.received,
            s.acked,
            s.points_stored,
            s.dead_letters,
            s.poison,
            s.store_retries,
            spool.used_bytes() if spool else 0,
        )


async def _wait_any(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
