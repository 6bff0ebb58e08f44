"""Worker processes: decode, encode and write what the service's own process spooled.

The process that holds the MQTT session keeps receiving, spooling (fsync) and acknowledging;
with ``SEALSCOPE_INGEST_WORKERS=N`` it hands spans of the spool (two positions, never the
bytes) to N worker processes over pipes. Each worker reads its span from the segment file,
translates, writes to the store, and answers with what it did; the owner advances the
checkpoint only over a gap-free prefix of answered spans, so a span that a dead worker had
is simply handed out again (the writes are idempotent, dead letters are kept once per spool
position). A worker has an in-flight marker of its own; one that dies is started again in
the same slot with the records that were in flight, so a message that kills workers is
dead-lettered after ``crash_limit`` crashes, as in one process. Workers die with the owner
(``PR_SET_PDEATHSIG``, and end of pipe), so a killed instance leaves no writer behind.

Detection stays where it was, in the owner: a worker sends back the samples it stored and
the owner hands them to the ``Detection`` hook in spool order.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ingest.processing import BatchSink, IngestStats, RecordHandler
from ingest.translate import DeviceCache
from sealscope import wire
from sealscope.alerts import AlertStore
from sealscope.commands import CommandStore
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore
from sealscope.registry import DeviceRegistry
from sealscope.spool import CrashedRecord, InflightMarker, Spool, SpoolPosition, read_range
from sealscope.storage import TelemetryStore

__all__ = ["Job", "JobDone", "OpenWorkerDeps", "WorkerDeps", "WorkerPool"]

log = logging.getLogger(__name__)

_COUNTED = ("processed", "points_stored", "dead_letters", "poison", "store_retries")
_COUNTED_F = ("batches_stored", "batch_write_s")
_OBSERVED = msgspec.msgpack.Decoder(list[tuple[str, list[wire.Sample]]])


@dataclass
class WorkerDeps:
    """What a worker writes to; opened in the worker from the settings."""

    store: TelemetryStore
    registry: DeviceRegistry
    dead_letters: DeadLetterStore
    alerts: AlertStore | None = None
    commands: CommandStore | None = None
    sink: BatchSink | None = None  # the batch log to detector workers, when there is one


# a module-level function (pickled by name): the composition root's, or a test's or bench's
OpenWorkerDeps = Callable[[Settings], AbstractAsyncContextManager[WorkerDeps]]


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    start: SpoolPosition
    end: SpoolPosition


@dataclass(slots=True)
class JobDone:
    job_id: int
    totals: dict[str, float]  # the worker's running totals (counters of IngestStats)
    oldest_arrival_s: float | None
    observed: bytes | None  # msgpack [(device id, samples)] stored, when detection is on


# -- the worker process -------------------------------------------------------------------
def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_entry(
    slot: int,
    settings: Settings,
    spool_dir: Path,
    open_deps: OpenWorkerDeps,
    conn: multiprocessing.connection.Connection,
    crashed: list[CrashedRecord],
    crash_limit: int,
    observe: bool,
    log_level: int,
) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner stops us, in order
    logging.basicConfig(level=log_level, format=f"%(asctime)s w{slot} %(name)s: %(message)s")
    asyncio.run(_worker(slot, settings, spool_dir, open_deps, conn, crashed, crash_limit, observe))


async def _worker(
    slot: int,
    settings: Settings,
    spool_dir: Path,
    open_deps: OpenWorkerDeps,
    conn: multiprocessing.connection.Connection,
    crashed: list[CrashedRecord],
    crash_limit: int,
    observe: bool,
) -> None:
    loop = asyncio.get_running_loop()
    jobs: asyncio.Queue[Job | None] = asyncio.Queue()

    def receive() -> None:
        while True:
            try:
                job: Job | None = conn.recv()
            except (EOFError, OSError):
                job = None  # the owner is gone
            loop.call_soon_threadsafe(jobs.put_nowait, job)
            if job is None:
                return

    threading.Thread(target=receive, name="jobs", daemon=True).start()
    stats = IngestStats()
    marker = InflightMarker(spool_dir / f"inflight-w{slot}", crashed)
    async with open_deps(settings) as deps:
        conn.send(JobDone(0, {}, None, None))  # ready: the owner may start taking messages
        handler = RecordHandler(
            settings=settings,
            store=deps.store,
            devices=DeviceCache(deps.registry),
            dead_letters=deps.dead_letters,
            alerts=deps.alerts,
            commands=deps.commands,
            sink=deps.sink,
            stats=stats,
            marker=marker,
            crash_limit=crash_limit,
        )

        async def write(job: Job, pending: list[Any], oldest: float | None) -> None:
            stored = await handler.store_batch(pending)
            observed = None
            if observe:
                observed = msgspec.msgpack.encode(
                    [
                        (t.device.device_id, t.telemetry.samples)
                        for _, t in stored
                        if t.telemetry is not None
                    ]
                )
            totals = {k: float(getattr(stats, k)) for k in (*_COUNTED, *_COUNTED_F)}
            conn.send(JobDone(job.job_id, totals, oldest, observed))

        writing: asyncio.Task[None] | None = None
        while (job := await jobs.get()) is not None:
            records = await asyncio.to_thread(read_range, spool_dir, job.start, job.end)
            pending = []
            for i, record in enumerate(records):
                translated = await handler.translate(record)
                if translated is not None:
                    pending.append((record, translated))
                if i % 64 == 63:
                    await asyncio.sleep(0)  # let the write in flight send and read its reply
            oldest = min((r.arrival_s for r in records), default=None)
            # one write in flight while the next span is translated
            if writing is not None:
                await writing
            writing = asyncio.create_task(write(job, pending, oldest))
        if writing is not None:
            await writing
    marker.close()


# -- the owner's side ---------------------------------------------------------------------
@dataclass
class _Slot:
    slot: int
    process: Any = None
    conn: multiprocessing.connection.Connection | None = None
    jobs: dict[int, Job] = field(default_factory=dict)  # sent, not answered, in order
    totals: dict[str, float] = field(default_factory=dict)
    started_s: float = 0.0
    restart_delay_s: float = 0.0
    ready: bool = False


class WorkerPool:
    """N worker processes fed spool spans; answers come back through ``on_done`` on the
    event loop. ``depth`` spans per worker are outstanding at most (one translating, one
    writing)."""

    def __init__(
        self,
        *,
        count: int,
        settings: Settings,
        spool: Spool,
        open_deps: OpenWorkerDeps,
        stats: IngestStats,
        on_done: Callable[[JobDone], None],
        crash_limit: int,
        observe: bool,
        depth: int = 2,
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._settings = settings
        self._spool = spool
        self._open_deps = open_deps
        self._stats = stats
        self._on_done = on_done
        self._crash_limit = crash_limit
        self._observe = observe
        self.depth = depth
        self._slots = [_Slot(i) for i in range(count)]
        self._ctx = multiprocessing.get_context("spawn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._next_id = 0

    async def start(self, timeout_s: float = 60.0) -> None:
        """Start the workers and wait until each has opened its stores."""
        self._loop = asyncio.get_running_loop()
        crashed = self._spool.load_crashed()
        for slot in self._slots:
            self._spawn(slot, crashed)
        deadline = time.monotonic() + timeout_s
        while not all(s.ready for s in self._slots):
            if time.monotonic() > deadline:
                log.warning("ingest: workers not ready after %.0f s; starting anyway", timeout_s)
                return
            await asyncio.sleep(0.02)

    def _spawn(self, slot: _Slot, crashed: list[CrashedRecord]) -> None:
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_entry,
            name=f"sealscope-ingest-w{slot.slot}",
            args=(
                slot.slot,
                self._settings,
                self._spool.directory,
                self._open_deps,
                theirs,
                crashed,
                self._crash_limit,
                self._observe,
                logging.getLogger().getEffectiveLevel(),
            ),
            daemon=True,
        )
        process.start()
        theirs.close()
        slot.process, slot.conn, slot.totals = process, ours, {}
        slot.started_s = time.monotonic()
        for job in slot.jobs.values():  # what the dead one had, in the same order
            ours.send(job)
        threading.Thread(
            target=self._receive, args=(slot, ours), name=f"ingest-w{slot.slot}", daemon=True
        ).start()

    def idle(self) -> int:
        return sum(1 for s in self._slots if not s.jobs)

    def free(self) -> int:
        return sum(max(0, self.depth - len(s.jobs)) for s in self._slots)

    def submit(self, start: SpoolPosition, end: SpoolPosition) -> Job:
        slot = min(self._slots, key=lambda s: len(s.jobs))  # an idle one first
        self._next_id += 1
        job = Job(self._next_id, start, end)
        slot.jobs[job.job_id] = job
        assert slot.conn is not None
        with contextlib.suppress(OSError):  # a dead worker's jobs go to its replacement
            slot.conn.send(job)
        return job

    def _receive(self, slot: _Slot, conn: multiprocessing.connection.Connection) -> None:
        assert self._loop is not None
        while True:
            try:
                done: JobDone = conn.recv()
            except (EOFError, OSError):
                break
            self._loop.call_soon_threadsafe(self._answered, slot, done)
        if not self._closing:
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are done anyway
                self._loop.call_soon_threadsafe(self._died, slot, conn)

    def _answered(self, slot: _Slot, done: JobDone) -> None:
        if done.job_id == 0:
            slot.ready = True
            return
        if slot.jobs.pop(done.job_id, None) is None:
            return
        for key, total in done.totals.items():
            now = getattr(self._stats, key)
            setattr(self._stats, key, type(now)(now + total - slot.totals.get(key, 0.0)))
        slot.totals = done.totals
        self._on_done(done)

    def _died(self, slot: _Slot, conn: multiprocessing.connection.Connection) -> None:
        if self._closing or slot.conn is not conn:
            return
        slot.process.join(timeout=5)
        log.error(
            "ingest: worker %d died (exit code %s) with %d spans; starting it again",
            slot.slot,
            slot.process.exitcode,
            len(slot.jobs),
        )
        self._stats.worker_restarts += 1
        quick = time.monotonic() - slot.started_s < 5.0
        slot.restart_delay_s = min(max(0.5, slot.restart_delay_s * 2), 30.0) if quick else 0.0
        assert self._loop is not None
        self._loop.call_later(slot.restart_delay_s, self._restart, slot)

    def _restart(self, slot: _Slot) -> None:
        if not self._closing:
            self._spawn(slot, self._spool.load_crashed())

    def observed(self, done: JobDone) -> list[tuple[str, list[wire.Sample]]]:
        return _OBSERVED.decode(done.observed) if done.observed else []

    async def close(self, timeout_s: float = 30.0) -> None:
        """Let the workers finish what they have, then stop them."""
        self._closing = True
        for slot in self._slots:
            if slot.conn is not None:
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
        deadline = time.monotonic() + timeout_s
        for slot in self._slots:
            if slot.process is None:
                continue
            await asyncio.to_thread(slot.process.join, max(0.1, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("ingest: worker %d did not stop; killing it", slot.slot)
                slot.process.kill()
                await asyncio.to_thread(slot.process.join, 5)
            if slot.conn is not None:
                slot.conn.close()

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None]
