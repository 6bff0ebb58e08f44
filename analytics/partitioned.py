"""Detection of one partition of devices, fed from a log, with a checkpoint that can move.

A detector worker runs one ``PartitionDetector`` per partition it owns. Batches come in log
order (stream sequence), which is not event-time order: two ingest instances store one
device's uplinks independently, so a later uplink can reach the log first. Each batch is
held for ``reorder_s`` of log time (the time the log stored it), then released with every
other due batch in event-time order, together with any batch of the same device that is
older in event time but reached the log later. A device's readings so reach its detector
state in event-time order unless a batch is on the log more than ``reorder_s`` after a
newer one of its device (an ingest instance killed with it unstored, then NATS down when
it comes back): such a batch is released behind the newer one, and its device's alerts
can differ from in-order detection (a seat-leak baseline or clear count built in another
order). It is not corrected; it is counted per device in ``late`` (kept in the
checkpoint) and logged, so a run can say which devices' alerts are not comparable.

Flush rounds: released batches are flushed in rounds that hold at most one batch per
device, so every device's alerts are those of a single-process ``DetectionService`` that
observes each of its batches in event-time order and flushes after each (detectors keep
per-device state: how other devices share a flush changes nothing).

Checkpoint: the service's state with the log position it covers: ``received`` (highest
sequence taken in) and ``held`` (sequences taken in but not yet released). A new owner
restores it and reads again from the lowest held sequence (or ``received + 1``): held ones
and anything after ``received`` are taken, the rest were already in the state. Nothing is
skipped and nothing counted twice.

Alert calls a replay repeats (the old owner raised an alert after its last checkpoint,
then died) are recognised by ``ReplaySafeAlerts``: the store already shows that change.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgspec

from analytics.base import Detector
from analytics.service import AlertChange, DetectionService
from sealscope import wire
from sealscope.alerts import Alert, AlertStore, Category
from sealscope.streaming import LoggedBatch

__all__ = ["PartitionDetector", "ReplaySafeAlerts"]

log = logging.getLogger(__name__)


class _Checkpoint(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    received: int
    held: list[int]
    state: bytes
    # per device: newest event time released, and batches released behind it (late)
    newest: dict[str, float] = {}
    late: dict[str, int] = {}


@dataclass(order=True)
class _Held:
    stored_s: float
    seq: int
    batch: LoggedBatch = field(compare=False)


class ReplaySafeAlerts:
    """An alert store that ignores a detector's call the store already shows: a replay
    after a failover repeats the old owner's calls since its last checkpoint.

    One device and cause change at rising event times (a detector sees its readings in
    event-time order), so a call at event time ``t`` is old news when the latest alert of
    that device and cause already moved past ``t``: it was updated or resolved later, or
    it is the alert this very raise opened.
    """

    def __init__(self, store: AlertStore) -> None:
        self._store = store
        self.replayed = 0

    def _latest(self, device_id: str, cause: str) -> Alert | None:
        alerts = self._store.list(device_id=device_id, limit=1000)
        return next((a for a in alerts if a.cause == cause), None)

    def raise_alert(
        self,
        *,
        device_id: str,
        cause: str,
        category: Category,
        severity: int,
        summary: str,
        evidence: dict[str, Any],
        t: float,
    ) -> Alert:
        latest = self._latest(device_id, cause)
        t = float(t)
        if latest is not None:
            if latest.status == "resolved":
                seen = latest.opened_at <= t <= latest.updated_at
            else:
                same = latest.category == category and latest.severity == severity
                seen = latest.updated_at > t or (latest.updated_at == t and same)
            if seen:
                self.replayed += 1
                return latest
        return self._store.raise_alert(
            device_id=device_id,
            cause=cause,
            category=category,
            severity=severity,
            summary=summary,
            evidence=evidence,
            t=t,
        )

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        latest = self._latest(device_id, cause)
        if latest is not None and latest.status != "resolved" and latest.updated_at > float(t):
            self.replayed += 1  # an older clear: this alert was opened or updated after it
            return None
        return self._store.clear(device_id=device_id, cause=cause, t=t)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class PartitionDetector:
    def __init__(
        self,
        *,
        alerts: AlertStore,
        detectors: Sequence[Detector] | None = None,
        reorder_s: float = 2.0,
    ) -> None:
        if reorder_s < 0:
            raise ValueError("reorder_s must be >= 0")
        self.alerts = ReplaySafeAlerts(alerts)
        self.service = DetectionService(
            alerts=cast(AlertStore, self.alerts), state_path=None, detectors=detectors
        )
        self.reorder_s = reorder_s
        self.received = 0  # highest log sequence taken in
        self._held: list[_Held] = []  # heap by log time
        self._held_seqs: set[int] = set()
        self._replay: set[int] = set()  # held at the restored checkpoint: take them again
        self.batches = 0  # released into the detectors
        self.skipped = 0  # already in the state (a replay), or a redelivery
        self.last_stored_s = 0.0  # log time of the newest batch released
        # A batch on the log more than ``reorder_s`` after a newer one of its device is
        # released behind it: its device's detector state then differs from in-order
        # detection. Counted per device (not corrected), so a run can say which devices.
        self._newest: dict[str, float] = {}
        self.late: dict[str, int] = {}

    # -- the log side ----------------------------------------------------------------------

    @property
    def start_seq(self) -> int:
        """The first log sequence the checkpoint does not cover."""
        low = min(self._held_seqs | self._replay, default=None)
        return low if low is not None else self.received + 1

    @property
    def pending(self) -> int:
        return len(self._held)

    def oldest_pending_s(self) -> float | None:
        """Log time of the oldest batch taken in and not yet released (read from another
        thread by metrics while ``release`` runs: a batch released meanwhile reads as None)."""
        try:
            return self._held[0].stored_s
        except IndexError:
            return None

    def offer(self, seq: int, stored_s: float, batch: LoggedBatch | None) -> bool:
        """Take in the batch at log sequence ``seq`` (None: one that could not be decoded,
        dead-lettered by the caller; it only moves the position). False if already taken."""
        if seq in self._replay:
            self._replay.discard(seq)
        elif seq <= self.received:
            self.skipped += 1
            return False
        self.received = max(self.received, seq)
        if batch is None:
            return True
        heapq.heappush(self._held, _Held(stored_s, seq, batch))
        self._held_seqs.add(seq)
        return True

    def release(self, watermark_s: float) -> list[AlertChange]:
        """Run the detectors over every batch the log stored at or before
        ``watermark_s - reorder_s``, in event-time order, in flush rounds."""
        due: list[_Held] = []
        horizon = watermark_s - self.reorder_s
        while self._held and self._held[0].stored_s <= horizon:
            due.append(heapq.heappop(self._held))
        if not due:
            return []
        # a batch held back that is older (event time) than a due one of its device goes
        # first: it came late, but within the window of the one it must precede
        newest: dict[str, float] = {}
        for held in due:
            key = held.batch.device.device_id
            newest[key] = max(newest.get(key, -math.inf), held.batch.first_t_s)
        older = [
            h
            for h in self._held
            if h.batch.first_t_s <= newest.get(h.batch.device.device_id, -math.inf)
        ]
        if older:
            taken = {h.seq for h in older}
            self._held = [h for h in self._held if h.seq not in taken]
            heapq.heapify(self._held)
            due += older
        due.sort(key=lambda h: (h.batch.first_t_s, h.seq))
        rounds: list[list[_Held]] = []
        nth: Counter[str] = Counter()
        for held in due:
            device_id = held.batch.device.device_id
            r = nth[device_id]
            nth[device_id] += 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(held)
        changes: list[AlertChange] = []
        for flush in rounds:
            for held in flush:
                device_id = held.batch.device.device_id
                seen_t = self._newest.get(device_id, -math.inf)
                if held.batch.first_t_s < seen_t:
                    self.late[device_id] = self.late.get(device_id, 0) + 1
                    log.warning(
                        "late batch of %s (log sequence %d): event time %.0f behind %.0f "
                        "already detected; its alerts may differ from in-order detection",
                        device_id,
                        held.seq,
                        held.batch.first_t_s,
                        seen_t,
                    )
                last_t = max(wire.time_to_ns(s.t) for s in held.batch.samples) / 1e9
                self._newest[device_id] = max(seen_t, last_t)
                self.service.observe(held.batch.device, held.batch.samples)
            changes += self.service.flush()
            for held in flush:
                self._held_seqs.discard(held.seq)
        self.batches += len(due)
        self.last_stored_s = max(self.last_stored_s, max(h.stored_s for h in due))
        return changes

    # -- checkpoint ------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        return msgspec.msgpack.encode(
            _Checkpoint(
                1,
                self.received,
                sorted(self._held_seqs | self._replay),
                self.service.state_bytes(),
                dict(self._newest),
                dict(self.late),
            )
        )

    def restore(self, data: bytes) -> None:
        """Take over the state a checkpoint holds; ``start_seq`` then says where to read."""
        cp = msgspec.msgpack.decode(data, type=_Checkpoint)
        self.service.load_state_bytes(cp.state)
        self.received = cp.received
        self._newest, self.late = dict(cp.newest), dict(cp.late)
        self._held, self._held_seqs = [], set()
        # read again from the oldest held batch: those are taken again, the others up to
        # ``received`` are in the state already
        self._replay = set(cp.held)
        log.info(
            "partition restored: %d devices, reading again from sequence %d",
            self.service.counters["devices"],
            self.start_seq,
        )
