"""The ingest service: broker -> spool (fsync, then PUBACK) -> decode/enrich -> store.

Three named tasks in one TaskGroup:

- ``spooler``: drains what the MQTT thread received, appends it to the spool with one fsync
  per group, then acknowledges those messages to the broker. Only this makes a PUBACK.
- ``processor``: reads the spool from its checkpoint, translates messages into points (or
  dead letters), writes them in batches flushed by size and age, and only then advances the
  checkpoint; detectors see a batch after it is stored.
- ``reporter``: logs progress.

Poison messages: whatever a message makes decoding or translating raise, it is dead-lettered
with the exception's type and message and the loop carries on. One that kills the process
outright (a crash in C code, the OOM killer) is caught by the spool's in-flight marker: after
``crash_limit`` crashes with it in processing it is dead-lettered on replay without being
touched again. Dead letters are kept once per spool position, and a bad ``state`` (retained,
so redelivered on every reconnect) once per topic and content.

Back-pressure instead of drops: when the spool reaches its byte bound the spooler stops
draining, the in-memory inbox fills, and the MQTT thread blocks in its callback, so the
broker holds the rest. A store outage only grows the spool; it never loses a message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.consumer import Delivery, MqttConsumer
from ingest.translate import DeviceCache, Translated, translate
from sealscope import wire
from sealscope.alerts import AlertStore, Category
from sealscope.commands import CommandStore, command_status_device, decode_command_status
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore
from sealscope.errors import (
    Conflict,
    MessageRejected,
    PointsRejected,
    PoisonMessage,
    StoreUnavailable,
)
from sealscope.registry import Device, DeviceRegistry
from sealscope.spool import Spool, SpoolPosition, SpoolRecord
from sealscope.storage import Point, TelemetryStore
from sealscope.topics import PREFIX, UPLINK_KINDS, device_filter, parse_device_topic

__all__ = ["BatchSink", "Detection", "IngestService", "IngestStats"]

log = logging.getLogger(__name__)

# NAMUR NE 107 category and severity for alarms a device raises itself
_EVENT_ALERTS: dict[str, tuple[Category, int]] = {
    "leak_alarm": ("out_of_specification", 4),
    "actuation_fault": ("failure", 4),
    "sensor_fault": ("failure", 3),
    "low_battery": ("maintenance_required", 2),
    "tamper": ("function_check", 3),
}


class Detection(Protocol):
    """What ingest needs of the detectors (analytics.DetectionService fits)."""

    def observe(self, device: Device, samples: Sequence[wire.Sample]) -> None: ...

    def flush(self) -> Any: ...

    def save(self) -> None: ...


class BatchSink(Protocol):
    """Where stored telemetry goes next, e.g. a log partitioned by device that detector
    workers read (sealscope.streaming.BatchPublisher fits). ``put`` returns once the batch
    is durable there; the spool checkpoint advances only after it."""

    async def put(self, batch: Sequence[tuple[Device, wire.Telemetry]]) -> None: ...


@dataclass
class IngestStats:
    received: int = 0
    acked: int = 0
    spooled: int = 0
    processed: int = 0
    points_stored: int = 0
    dead_letters: int = 0
    poison: int = 0  # of dead_letters: messages whose handling raised or crashed the process
    store_retries: int = 0
    backpressure_waits: int = 0
    batches_stored: int = 0
    batch_write_s: float = 0.0  # summed over batches_stored: store write time incl. retries
    # arrival -> stored (and -> seen by the detectors) of the oldest message in the last batch
    last_batch_lag_s: float = 0.0
    last_detected_lag_s: float = 0.0


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
        self._spooler_done = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> IngestService:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self._spool = await asyncio.to_thread(Spool, s.spool_dir, max_bytes=s.spool_max_bytes)
        backlog = self._spool.used_bytes()
        if backlog:
            log.info("ingest: replaying %d spooled bytes into the store", backlog)
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
            self._tasks.create_task(self._run_processor(), name="processor"),
            self._tasks.create_task(self._run_reporter(), name="reporter"),
        ]
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
        self.stats.processed += 1
        crashes = self.spool.begin(record)
        try:
            if crashes >= self.crash_limit:
                reason = f"crashed the ingest during processing ({crashes} times)"
                poison = PoisonMessage(reason, device_id=_device_of(record))
                # once per content: a copy the broker redelivers (no PUBACK before the
                # crash) comes at another spool position
                await self._reject(record, poison, once_per="crashed")
                return None
            if self.commands is not None:
                status_of = _status_device(record)
                if status_of is not None:
                    await self._record_command_status(record, status_of)
                    return None
            try:
                result = translate(
                    record.topic,
                    record.payload,
                    self._devices,
                    max_payload_bytes=self.settings.payload_max_bytes,
                )
            except MessageRejected as exc:
                await self._reject(record, exc)
                return None
            except Exception as exc:  # one message must never stop the loop
                log.warning("ingest: a message on %s raised", record.topic, exc_info=True)
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                await self._reject(record, PoisonMessage(reason, device_id=_device_of(record)))
                return None
            if result is None:
                return None
            if result.no_readings is not None:
                device_id = result.device.device_id
                await self._dead_letter(record, "no_readings", result.no_readings, device_id)
            if result.event is not None and self.alerts is not None:
                await asyncio.to_thread(self._raise_event_alert, result.device, result.event)
            return result
        finally:
            self.spool.finish()

    async def _record_command_status(self, record: SpoolRecord, device_id: str) -> None:
        assert self.commands is not None
        try:
            status = decode_command_status(record.payload, device_id=device_id)
        except MessageRejected as exc:
            await self._reject(record, exc)
            return
        try:
            await asyncio.to_thread(self.commands.record_status, device_id, status)
        except Conflict:  # two workers added the same unknown command at once: it is there
            log.debug("ingest: command %s recorded by another worker", status.id)

    def _raise_event_alert(self, device: Device, event: wire.Event) -> None:
        assert self.alerts is not None
        category, severity = _EVENT_ALERTS[event.kind]
        text = event.kind.replace("_", " ")
        self.alerts.raise_alert(
            device_id=device.device_id,
            cause=f"device_{event.kind}",
            category=category,
            severity=severity,
            summary=f"Device reported a {text}" + (f": {event.detail}" if event.detail else ""),
            evidence={"source": "device event", "kind": event.kind, "seq": event.seq},
            t=wire.time_to_ns(event.t) / 1e9,
        )

    async def _reject(
        self, record: SpoolRecord, exc: MessageRejected, *, once_per: str | None = None
    ) -> None:
        added = await self._dead_letter(record, exc.code, exc.reason, exc.device_id, once_per)
        if added and isinstance(exc, PoisonMessage):
            self.stats.poison += 1

    async def _dead_letter(
        self,
        record: SpoolRecord,
        code: str,
        reason: str,
        device_id: str | None,
        once_per: str | None = None,
    ) -> bool:
        """Keep the record as a dead letter; False if it was kept before (a replay)."""
        # a retained state comes again on every reconnect; anything else only on a replay
        if once_per is None and record.topic.endswith("/state"):
            once_per = f"retained:{code}"
        elif once_per is None:
            once_per = f"spool:{record.end.segment}:{record.end.offset}:{code}"
        added = await asyncio.to_thread(
            self.dead_letters.add,
            topic=record.topic,
            payload=record.payload,
            code=code,
            reason=reason,
            device_id=device_id,
            once_per=once_per,
        )
        if added is None:
            log.debug("ingest: %s on %s was dead-lettered before", code, record.topic)
            return False
        self.stats.dead_letters += 1
        log.info("ingest: dead-lettered a message on %s: %s", record.topic, reason[:200])
        return True

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
        points = [p for _, t in pending for p in t.points]
        stored = pending
        t0 = time.perf_counter()
        try:
            if points:
                await self._write_with_retry(points)
        except PointsRejected:
            # find the messages the store refuses; keep the rest, and only what was stored
            # is counted and reaches the detectors
            stored = []
            for record, translated in pending:
                try:
                    await self._write_with_retry(translated.points)
                except PointsRejected as exc:
                    await self._dead_letter(
                        record, "store_rejected", str(exc), translated.device.device_id
                    )
                else:
                    stored.append((record, translated))
        if self.sink is not None:
            # before the checkpoint: a crash in between replays the batch, and the sink
            # collapses the copy (message ids), so what is stored is also on the log
            await self.sink.put(
                [(t.device, t.telemetry) for _, t in stored if t.telemetry is not None]
            )
        await asyncio.to_thread(self.spool.commit, position)
        self.stats.points_stored += sum(len(t.points) for _, t in stored)
        oldest_arrival_s = min((r.arrival_s for r, _ in pending), default=None)
        if oldest_arrival_s is not None:
            self.stats.batches_stored += 1
            self.stats.batch_write_s += time.perf_counter() - t0
            self.stats.last_batch_lag_s = max(0.0, time.time() - oldest_arrival_s)
        self._committed.set()
        if self.detection is not None:
            for _, translated in stored:
                if translated.telemetry is not None:
                    self.detection.observe(translated.device, translated.telemetry.samples)
            await asyncio.to_thread(self.detection.flush)
            if oldest_arrival_s is not None:
                self.stats.last_detected_lag_s = max(0.0, time.time() - oldest_arrival_s)

    async def _write_with_retry(self, points: list[Point]) -> None:
        delay = 0.2
        while True:
            try:
                await self.store.write(points)
                return
            except StoreUnavailable as exc:
                self.stats.store_retries += 1
                wait = exc.retry_after_s or delay * (0.5 + random.random())
                log.warning("ingest: store unavailable (%s); retrying in %.1f s", exc, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, 30.0)

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


def _status_device(record: SpoolRecord) -> str | None:
    try:
        return command_status_device(record.topic)
    except MessageRejected:
        return None


def _device_of(record: SpoolRecord) -> str | None:
    try:
        return parse_device_topic(record.topic).device_id
    except MessageRejected:
        return None


async def _wait_any(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
