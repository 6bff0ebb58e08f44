"""``sealscope detect-worker``: detection of the partitions this worker holds a lease on.

Every ``lease_ttl_s / 3`` the worker renews its heartbeat and its leases, counts the live
workers and takes free partitions up to its even share (``ceil(partitions / workers)``),
giving back any above it (checkpoint saved first), so partitions spread out as workers come
and move to the survivors when one dies (its leases expire after ``lease_ttl_s``).

Each partition it holds runs a ``PartitionDetector``: restored from the partition's
checkpoint, fed by the partition's durable consumer from the position the checkpoint covers,
and checkpointed again every ``save_every_s`` and at once after any flush that changed an
alert (so a failover replays as little alert work as possible; what it does replay,
``ReplaySafeAlerts`` recognises). A batch that does not decode is dead-lettered once per log
sequence and the partition goes on. A worker that finds its lease gone (it stalled past the
TTL) drops the partition without saving: the new owner's state wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.js import JetStreamContext

from analytics import default_detectors
from analytics.base import Detector
from analytics.partitioned import PartitionDetector
from sealscope.alerts import AlertStore
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore
from sealscope.metrics import Reading
from sealscope.streaming import (
    CheckpointLost,
    Checkpoints,
    LogConfig,
    PartitionLeases,
    connect,
    decode_batch,
    ensure_log,
    open_partition,
)

__all__ = ["DetectWorker", "default_worker_id", "run_detect_worker", "worker_readings"]

log = logging.getLogger(__name__)

_FETCH = 256
_CAUGHT_UP_MARGIN_S = 0.5  # wall clock minus this stands for log time once caught up


def default_worker_id() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{socket.gethostname()}-{os.getpid()}")


@dataclass
class _Partition:
    number: int
    revision: int
    detector: PartitionDetector | None = None
    task: asyncio.Task[None] | None = None
    lost: bool = False  # the lease went to another worker: drop, never save
    leaving: bool = False  # handed back on purpose: save, then release
    behind: int = 0  # messages on the log not yet delivered to us
    newest_stored_s: float = 0.0
    dead_letters: int = 0
    saves: int = 0
    checkpoint_revision: int = 0  # of the partition's checkpoint pointer, for the next save


@dataclass
class WorkerStats:
    acquired: int = 0
    lost: int = 0
    released: int = 0
    dead_letters: int = 0
    batches: int = 0
    alert_changes: int = 0
    restored: list[int] = field(default_factory=list)


class DetectWorker:
    def __init__(
        self,
        cfg: LogConfig,
        *,
        alerts: AlertStore,
        dead_letters: DeadLetterStore,
        worker_id: str | None = None,
        reorder_s: float = 2.0,
        save_every_s: float = 5.0,
        detectors: Callable[[], Sequence[Detector]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.alerts = alerts
        self.dead_letters = dead_letters
        self.worker_id = worker_id or default_worker_id()
        self.reorder_s = reorder_s
        self.save_every_s = save_every_s
        self._detectors = detectors or default_detectors
        self.partitions: dict[int, _Partition] = {}
        self.stats = WorkerStats()
        self._js: JetStreamContext | None = None
        self._leases: PartitionLeases | None = None
        self._checkpoints: Checkpoints | None = None
        self._tg: asyncio.TaskGroup | None = None

    # -- the worker --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        nc = await connect(self.cfg.url, name=f"sealscope-detect-{self.worker_id}")
        try:
            self._js = js = nc.jetstream()
            await ensure_log(js, self.cfg)
            self._leases = await PartitionLeases.open(js, self.cfg, self.worker_id)
            self._checkpoints = await Checkpoints.open(js, self.cfg)
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await self._balance()
                if ready is not None:
                    ready.set()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.cfg.lease_ttl_s / 3)
                    if not stop.is_set():
                        try:
                            await self._balance()
                        except (nats.errors.Error, OSError) as exc:
                            log.warning("detect-worker: lease round failed: %s", exc)
                for part in list(self.partitions.values()):
                    part.leaving = True
                await asyncio.gather(
                    *(p.task for p in self.partitions.values() if p.task is not None),
                    return_exceptions=True,
                )
                with contextlib.suppress(nats.errors.Error):
                    await self._leases.leave()
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _balance(self) -> None:
        leases = self._leases
        assert leases is not None and self._tg is not None
        await leases.heartbeat()
        for part in list(self.partitions.values()):
            # a partition being handed back too: it is ours until its checkpoint is saved
            revision = await leases.renew(part.number, part.revision)
            if revision is None:
                log.warning("detect-worker: lost the lease of partition %d", part.number)
                part.lost = True
                self.stats.lost += 1
                if part.task is not None:
                    part.task.cancel()
                self.partitions.pop(part.number, None)
            else:
                part.revision = revision
        share = math.ceil(self.cfg.partitions / await leases.workers())
        held = [p for p in self.partitions.values() if not p.leaving]
        for part in held[share:]:
            part.leaving = True  # its task saves, releases and leaves the table
        if len(held) < share:
            # start the search at a place of our own, so workers do not all race for p0
            offset = sum(self.worker_id.encode()) % self.cfg.partitions
            for i in range(self.cfg.partitions):
                number = (offset + i) % self.cfg.partitions
                if number in self.partitions:
                    continue
                revision = await leases.try_acquire(number)
                if revision is None:
                    continue
                part = _Partition(number, revision)
                self.partitions[number] = part
                self.stats.acquired += 1
                part.task = self._tg.create_task(self._run_partition(part), name=f"p{number}")
                held.append(part)
                if len(held) >= share:
                    break

    # -- one partition -----------------------------------------------------------------------

    async def _run_partition(self, part: _Partition) -> None:
        try:
            await self._consume(part)
        except asyncio.CancelledError:
            if not part.lost:
                raise
        except CheckpointLost:
            self.stats.lost += 1
        except Exception:
            # the partition is given up and taken again by whoever gets its lease next
            log.exception("detect-worker: partition %d failed; releasing it", part.number)
            part.lost = True
            if self._leases is not None:
                with contextlib.suppress(Exception):
                    await self._leases.release(part.number, part.revision)
        finally:
            if self.partitions.get(part.number) is part:
                self.partitions.pop(part.number)

    async def _consume(self, part: _Partition) -> None:
        assert self._js is not None and self._checkpoints is not None
        assert self._leases is not None
        detector = PartitionDetector(
            alerts=self.alerts, detectors=self._detectors(), reorder_s=self.reorder_s
        )
        saved, part.checkpoint_revision = await self._checkpoints.load(part.number)
        if saved is not None:
            await asyncio.to_thread(detector.restore, saved)
            self.stats.restored.append(part.number)
        part.detector = detector
        sub = await open_partition(self._js, self.cfg, part.number, detector.start_seq)
        log.info(
            "detect-worker %s: partition %d from sequence %d",
            self.worker_id,
            part.number,
            detector.start_seq,
        )
        last_save = time.monotonic()
        dirty = False
        try:
            while not part.leaving:
                try:
                    msgs = await sub.fetch(_FETCH, timeout=0.5)
                except (nats.errors.TimeoutError, TimeoutError):  # the client raises either
                    msgs = []
                for msg in msgs:
                    meta = msg.metadata
                    stored_s = meta.timestamp.timestamp()
                    try:
                        batch = decode_batch(msg.data)
                    except Exception as exc:  # whatever a bad body raises, one message
                        batch = None
                        await asyncio.to_thread(self._dead_letter, part, meta, msg.data, exc)
                    detector.offer(meta.sequence.stream, stored_s, batch)
                    part.newest_stored_s = max(part.newest_stored_s, stored_s)
                    part.behind = meta.num_pending
                    dirty = True
                    await msg.ack()
                if not msgs:
                    part.behind = 0
                    watermark = max(part.newest_stored_s, time.time() - _CAUGHT_UP_MARGIN_S)
                else:
                    watermark = part.newest_stored_s
                before = detector.batches
                changes = await asyncio.to_thread(detector.release, watermark)
                self.stats.batches += detector.batches - before
                dirty = dirty or detector.batches != before
                self.stats.alert_changes += len(changes)
                if changes or (dirty and time.monotonic() - last_save >= self.save_every_s):
                    await self._save(part, detector)
                    last_save, dirty = time.monotonic(), False
            await self._save(part, detector)
            await self._leases.release(part.number, part.revision)
            self.stats.released += 1
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _save(self, part: _Partition, detector: PartitionDetector) -> None:
        assert self._checkpoints is not None
        if part.lost:
            return  # another worker owns it now: its checkpoint must not be overwritten
        data = await asyncio.to_thread(detector.checkpoint)
        try:
            part.checkpoint_revision = await self._checkpoints.save(
                part.number, data, part.checkpoint_revision
            )
        except CheckpointLost:
            # another worker took the partition while we stalled: its state wins
            log.warning("detect-worker: partition %d moved on; dropping it", part.number)
            part.lost = True
            raise
        part.saves += 1

    def _dead_letter(self, part: _Partition, meta: Any, body: bytes, exc: Exception) -> None:
        seq = meta.sequence.stream
        added = self.dead_letters.add(
            topic=self.cfg.subject_of(part.number),
            payload=body,
            code="poison",
            reason=f"batch log sequence {seq}: {type(exc).__name__}: {str(exc)[:200]}",
            device_id=None,
            once_per=f"log:{self.cfg.stream}:{seq}",  # a replay after failover: not again
        )
        if added is not None:
            part.dead_letters += 1
            self.stats.dead_letters += 1
            log.warning("detect-worker: dead-lettered batch %d of partition %d", seq, part.number)

    # -- what Prometheus reads ---------------------------------------------------------------

    def lag(self) -> dict[str, tuple[float, int]]:
        """Per partition held: (seconds, messages) the detectors are behind the log."""
        now = time.time()
        out: dict[str, tuple[float, int]] = {}
        for number, part in sorted(self.partitions.items()):
            det = part.detector
            if det is None:
                continue
            messages = part.behind + det.pending
            oldest = det.oldest_pending_s()
            if oldest is None and part.behind:
                oldest = part.newest_stored_s
            out[str(number)] = (max(0.0, now - oldest) if oldest is not None else 0.0, messages)
        return out


def worker_readings(worker: DetectWorker) -> list[Reading]:
    s = worker.stats
    return [
        Reading(
            "sealscope_detector_lag_seconds",
            "gauge",
            "age of the oldest batch on the log not yet through the detectors, per partition",
            lambda: {p: v[0] for p, v in worker.lag().items()},
            label="partition",
        ),
        Reading(
            "sealscope_detector_lag_messages",
            "gauge",
            "batches on the log not yet through the detectors, per partition",
            lambda: {p: v[1] for p, v in worker.lag().items()},
            label="partition",
        ),
        Reading(
            "sealscope_detector_partitions",
            "gauge",
            "partitions this worker holds a lease on",
            lambda: len(worker.partitions),
        ),
        Reading(
            "sealscope_detector_batches",
            "counter",
            "batches released into the detectors",
            lambda: s.batches,
        ),
        Reading(
            "sealscope_detector_alert_changes",
            "counter",
            "alerts raised, updated or cleared",
            lambda: s.alert_changes,
        ),
        Reading(
            "sealscope_detector_late_batches",
            "gauge",
            "batches released behind a newer one of their device (on the log more than the "
            "reorder window late; their devices' alerts may differ), per partition held",
            lambda: {
                str(n): sum(p.detector.late.values())
                for n, p in sorted(worker.partitions.items())
                if p.detector is not None
            },
            label="partition",
        ),
        Reading(
            "sealscope_detector_dead_lettered",
            "counter",
            "batches on the log that did not decode, dead-lettered",
            lambda: s.dead_letters,
        ),
    ]


async def run_detect_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    from composition.metrics import serving_metrics
    from composition.runtime import _stop_event, open_core
    from sealscope.metrics import ProcessMetrics

    stop = stop or _stop_event()
    cfg = LogConfig.from_settings(settings)
    async with open_core(settings) as core:
        worker = DetectWorker(
            cfg,
            alerts=core.alerts,
            dead_letters=core.dead_letters,
            worker_id=settings.detect_worker_id,
            reorder_s=settings.detect_reorder_s,
            detectors=lambda: default_detectors(settings.detectors),
        )
        metrics = ProcessMetrics()
        metrics.add(*worker_readings(worker))
        log.info(
            "detect-worker %s: %d partitions of %s on %s",
            worker.worker_id,
            cfg.partitions,
            cfg.stream,
            cfg.url,
        )
        with serving_metrics(settings, metrics):
            await worker.run(stop)
