"""Spooled record -> points (or a dead letter) -> the store: the same in the service's own
process and in a worker process (``ingest.workers``).

Poison messages: whatever a message makes decoding or translating raise, it is dead-lettered
with the exception's type and message and the loop carries on. One that kills the process
outright is caught by the in-flight marker: after ``crash_limit`` crashes with it in
processing it is dead-lettered without being touched again. Dead letters are kept once per
spool position, and a bad ``state`` (retained, so redelivered on every reconnect) once per
topic and content.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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
from sealscope.registry import Device
from sealscope.spool import SpoolRecord
from sealscope.storage import Point, TelemetryStore
from sealscope.topics import parse_device_topic

__all__ = ["BatchSink", "IngestStats", "Marker", "RecordHandler"]

log = logging.getLogger("ingest.service")

# NAMUR NE 107 category and severity for alarms a device raises itself
_EVENT_ALERTS: dict[str, tuple[Category, int]] = {
    "leak_alarm": ("out_of_specification", 4),
    "actuation_fault": ("failure", 4),
    "sensor_fault": ("failure", 3),
    "low_battery": ("maintenance_required", 2),
    "tamper": ("function_check", 3),
}


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
    worker_restarts: int = 0  # worker processes that died and were started again


class BatchSink(Protocol):
    """Where stored telemetry goes next, e.g. a log partitioned by device that detector
    workers read (sealscope.streaming.BatchPublisher fits). ``put`` returns once the batch
    is durable there; the spool checkpoint advances only after it."""

    async def put(self, batch: Sequence[tuple[Device, wire.Telemetry]]) -> None: ...


class Marker(Protocol):
    """The in-flight marker (``Spool`` in-process, an ``InflightMarker`` in a worker)."""

    def begin(self, record: SpoolRecord) -> int: ...

    def finish(self) -> None: ...


class RecordHandler:
    def __init__(
        self,
        *,
        settings: Settings,
        store: TelemetryStore,
        devices: DeviceCache,
        dead_letters: DeadLetterStore,
        alerts: AlertStore | None,
        stats: IngestStats,
        marker: Marker,
        crash_limit: int,
        commands: CommandStore | None = None,
        sink: BatchSink | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.devices = devices
        self.dead_letters = dead_letters
        self.alerts = alerts
        self.stats = stats
        self.marker = marker
        self.crash_limit = crash_limit
        self.commands = commands
        self.sink = sink

    async def translate(self, record: SpoolRecord) -> Translated | None:
        self.stats.processed += 1
        crashes = self.marker.begin(record)
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
                    self.devices,
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
                await self.dead_letter(record, "no_readings", result.no_readings, device_id)
            if result.event is not None and self.alerts is not None:
                await asyncio.to_thread(self._raise_event_alert, result.device, result.event)
            return result
        finally:
            self.marker.finish()

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
        added = await self.dead_letter(record, exc.code, exc.reason, exc.device_id, once_per)
        if added and isinstance(exc, PoisonMessage):
            self.stats.poison += 1

    async def dead_letter(
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

    async def store_batch(
        self, pending: list[tuple[SpoolRecord, Translated]]
    ) -> list[tuple[SpoolRecord, Translated]]:
        """Write a batch (retrying while the store is away); returns what was stored. A
        message the store refuses is found and dead-lettered, the rest is kept."""
        points = [p for _, t in pending for p in t.points]
        stored = pending
        t0 = time.perf_counter()
        try:
            if points:
                await self._write_with_retry(points)
        except PointsRejected:
            stored = []
            for record, translated in pending:
                try:
                    await self._write_with_retry(translated.points)
                except PointsRejected as exc:
                    await self.dead_letter(
                        record, "store_rejected", str(exc), translated.device.device_id
                    )
                else:
                    stored.append((record, translated))
        if self.sink is not None:
            # before the caller commits the spool: a crash in between replays the batch, and
            # the sink collapses the copy (message ids), so what is stored is also on the log
            await self.sink.put(
                [(t.device, t.telemetry) for _, t in stored if t.telemetry is not None]
            )
        self.stats.points_stored += sum(len(t.points) for _, t in stored)
        if pending:
            self.stats.batches_stored += 1
            self.stats.batch_write_s += time.perf_counter() - t0
        return stored

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
