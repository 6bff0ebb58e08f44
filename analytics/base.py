"""The detector contract: river's shape, numpy inside.

A ``Detector`` keeps only hyper-parameters in ``__init__``. Learned state lives in numpy
arrays indexed by device slot (declared by ``_state_spec``, allocated by ``_reset``, grown
by ``ensure_capacity``). ``update(batch)`` consumes a ``SampleBatch`` holding samples of
many devices at once; ``verdicts()`` reads back one row per slot; ``state_dict()`` /
``load_state_dict()`` round-trip the state through ``np.savez``.

Event time: ``update`` sorts each batch by (slot, t). A sample at or before the last event
time already processed for its device is late (or a QoS 1 duplicate): it is counted and
dropped, never applied out of order. Verdicts therefore depend only on each device's
event-time stream, not on how it was chunked into batches, on row order inside a batch,
or on how devices interleave; a straggler older than what was already processed is lost
(the service sorts everything pending before a flush, so only stragglers that miss their
flush are).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Protocol

import numpy as np
import numpy.typing as npt

from analytics.params import Param
from sealscope import iso5208
from sealscope.alerts import Category
from sealscope.registry import Device
from sealscope.wire import SAMPLE_FIELDS, Sample

__all__ = [
    "CATEGORY_NAMES",
    "SEVERITY_BY_CATEGORY",
    "CategoryCode",
    "Detector",
    "DeviceTable",
    "Gate",
    "SampleBatch",
    "Status",
    "Verdicts",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Status(enum.IntEnum):
    """Per-slot detector status code."""

    NO_DATA = 0
    LEARNING = 1  # commissioning baseline not yet established
    NORMAL = 2
    ALARM = 3


class CategoryCode(enum.IntEnum):
    """NAMUR NE 107 categories; a larger code is more severe, so np.maximum combines them."""

    NONE = 0
    MAINTENANCE_REQUIRED = 1
    OUT_OF_SPECIFICATION = 2
    FUNCTION_CHECK = 3
    FAILURE = 4


# Index by CategoryCode; names are sealscope.alerts.Category values.
CATEGORY_NAMES: Final[tuple[Category | None, ...]] = (
    None,
    "maintenance_required",
    "out_of_specification",
    "function_check",
    "failure",
)

_KINDS: Final = ("", "valve", "pump")


def _grow(arr: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    out = np.full((capacity, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _new_capacity(current: int, needed: int) -> int:
    # Doubling keeps growth amortised O(1) per slot as a fleet is provisioned.
    return max(needed, 2 * current, 64)


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Samples of many devices as struct-of-arrays; NaN where a sample lacks a field."""

    slot: I64
    t_s: F64
    signals: Mapping[str, F64] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.slot)
        if len(self.t_s) != n or any(len(v) != n for v in self.signals.values()):
            raise ValueError("SampleBatch arrays must all have the same length")
        if n and int(self.slot.min()) < 0:
            raise ValueError("device slots must be >= 0")

    def __len__(self) -> int:
        return len(self.slot)

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), {})

    @classmethod
    def from_arrays(
        cls, slot: npt.ArrayLike, t_s: npt.ArrayLike, **signals: npt.ArrayLike
    ) -> SampleBatch:
        return cls(
            np.asarray(slot, dtype=np.int64),
            np.asarray(t_s, dtype=np.float64),
            {k: np.asarray(v, dtype=np.float64) for k, v in signals.items()},
        )

    @classmethod
    def from_samples(
        cls,
        rows: Iterable[tuple[int, Sample]],
        fields: Sequence[str] = SAMPLE_FIELDS,
    ) -> SampleBatch:
        """Build from ``(slot, wire.Sample)`` rows; event times normalised to Unix seconds."""
        slots: list[int] = []
        times: list[float] = []
        cols: dict[str, list[float]] = {f: [] for f in fields}
        nan = math.nan
        for slot, sample in rows:
            slots.append(slot)
            times.append(sample_time_s(sample.t))
            for f, col in cols.items():
                v = getattr(sample, f)
                col.append(nan if v is None else v)
        return cls.from_arrays(slots, times, **cols)

    @classmethod
    def concat(cls, batches: Sequence[SampleBatch]) -> SampleBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        names = sorted({k for b in batches for k in b.signals})
        return cls(
            np.concatenate([b.slot for b in batches]),
            np.concatenate([b.t_s for b in batches]),
            {k: np.concatenate([b.signal(k) for b in batches]) for k in names},
        )

    def signal(self, name: str) -> F64:
        """The column for a wire field, all NaN if no sample in the batch carried it."""
        col = self.signals.get(name)
        if col is None:
            return np.full(len(self), np.nan)
        return col

    def take(self, index: npt.ArrayLike, fields: Sequence[str] | None = None) -> SampleBatch:
        """Rows ``index``; only the ``fields`` columns when given (absent ones stay absent)."""
        idx = np.asarray(index)
        names = self.signals.keys() if fields is None else [f for f in fields if f in self.signals]
        return SampleBatch(self.slot[idx], self.t_s[idx], {k: self.signals[k][idx] for k in names})


# Severity 1..5 by CategoryCode (0 = no alert); a detector may add one for urgency.
SEVERITY_BY_CATEGORY: Final = np.array([0, 2, 3, 4, 5], dtype=np.int8)


def fmt_time(t: float | None) -> str:
    """An event time for a sentence a technician reads."""
    if t is None or not math.isfinite(t):
        return "an unknown time"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    days = seconds / 86_400.0
    if days >= 2:
        return f"{days:.0f} days"
    return f"{seconds / 3600.0:.0f} h"


def sample_time_s(t: float) -> float:
    """A wire event time (Unix s, or ms when >= 1e11) as Unix seconds."""
    return t / 1000.0 if t >= 1e11 else float(t)


class DeviceTable:
    """Registry attributes detectors need, as arrays indexed by slot (0/NaN-free: 0 = unknown)."""

    def __init__(self) -> None:
        self.kind = np.zeros(0, np.int8)  # index into ("", "valve", "pump")
        self.dn_mm = np.zeros(0, np.float64)
        self.pn_bar = np.zeros(0, np.float64)
        self.leakage_class = np.zeros(0, np.int8)  # iso5208.LEAKAGE_CLASSES index

    _COLUMNS: ClassVar = ("kind", "dn_mm", "pn_bar", "leakage_class")

    def __len__(self) -> int:
        return len(self.kind)

    def ensure_capacity(self, n: int) -> None:
        if n > len(self.kind):
            cap = _new_capacity(len(self.kind), n)
            for name in self._COLUMNS:
                setattr(self, name, _grow(getattr(self, name), cap, 0))

    def set(self, slot: int, device: Device) -> None:
        self.ensure_capacity(slot + 1)
        self.kind[slot] = _KINDS.index(device.kind) if device.kind in _KINDS else 0
        self.dn_mm[slot] = device.dn or 0
        self.pn_bar[slot] = device.pn or 0
        try:
            self.leakage_class[slot] = iso5208.class_code(device.leakage_class or "")
        except ValueError:
            # A class the table does not know cannot be checked; say nothing rather than guess.
            self.leakage_class[slot] = 0

    def column(self, name: str, slots: I64) -> np.ndarray:
        """Values for ``slots``, 0 for slots beyond the table."""
        col: np.ndarray = getattr(self, name)
        out = np.zeros(len(slots), col.dtype)
        inside = slots < len(col)
        out[inside] = col[slots[inside]]
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in self._COLUMNS}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        for name in self._COLUMNS:
            cur: np.ndarray = getattr(self, name)
            setattr(self, name, np.asarray(state[name], dtype=cur.dtype).copy())


def kind_code(kind: str) -> int:
    return _KINDS.index(kind)


@dataclass(frozen=True, slots=True)
class Verdicts:
    """A read-only snapshot: one row per slot of a detector's current verdict.

    ``changed_s`` is the event time of the last category change (what an alert carries);
    ``since_s`` the onset of the active condition (NaN when none); ``evidence`` the numbers
    that explain it (NaN where not applicable); ``confidence`` how sure the detector is
    of the raised condition, 0..1 (NaN when none is raised).
    """

    cause: str
    signal: str
    status: npt.NDArray[np.int8]
    category: npt.NDArray[np.int8]
    severity: npt.NDArray[np.int8]
    since_s: F64
    changed_s: F64
    evidence: Mapping[str, F64]
    confidence: F64 | None = None  # in [0, 1], NaN where no condition is raised

    def __post_init__(self) -> None:
        if self.confidence is None:
            conf = np.where(self.category > 0, 1.0, np.nan)
            object.__setattr__(self, "confidence", conf)
        # Copies, so a snapshot never moves when the detector learns on.
        for name in ("status", "category", "severity", "since_s", "changed_s", "confidence"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "evidence", {k: _readonly(a) for k, a in self.evidence.items()})

    def __len__(self) -> int:
        return len(self.status)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


class Gate(Protocol):
    """A detector that judges the sensors themselves, run before the ``gated`` ones.

    ``screen`` learns from a batch like ``update`` and returns it with the readings it
    does not trust replaced by NaN; ``faulty`` says which slots (0..n-1) have an active
    fault on any of ``signals``, so verdicts resting on those signals are held back.
    """

    def screen(self, batch: SampleBatch, devices: DeviceTable | None = None) -> SampleBatch: ...

    def faulty(self, signals: Collection[str], n: int) -> npt.NDArray[np.bool_]: ...


class Detector:
    """Base of the streaming detectors.

    Subclasses set ``cause`` (the alert cause), ``signals`` (wire fields they read) and
    ``kinds`` (asset kinds they apply to), declare per-slot state in ``_state_spec`` and
    implement ``_update`` (called with rows sorted by (slot, t), late rows removed) and
    ``verdicts``. ``summary`` turns one verdict row into a sentence a technician can act on.

    Gating: a ``gated`` detector's verdicts depend on its ``signals`` being trusted. The
    service runs the detector whose ``as_gate()`` returns a ``Gate`` first, feeds the
    gated ones the readings it screened, and holds a gated verdict back where ``held``
    says so (the sensor fault is the alert, not the seal).
    """

    cause: ClassVar[str] = ""
    signals: ClassVar[tuple[str, ...]] = ()
    kinds: ClassVar[frozenset[str]] = frozenset({"valve", "pump"})
    # True: this detector sees readings after the gate's screen (readings of a sensor
    # judged faulty are withheld) and its verdicts are held while its signals are not
    # trusted, so a bad sensor is not a bad seal.
    gated: ClassVar[bool] = False
    # one row per keyword of ``__init__``: default, range, unit, meaning (``params.py``)
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init__(self) -> None:
        self._reset()

    # -- state ---------------------------------------------------------------------------

    def _state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        """name -> (dtype, per-slot shape, initial value). Keep values finite (no NaN)."""
        return {}

    def _full_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        spec: dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]] = {
            "last_t": (np.dtype(np.float64), (), -np.inf),
        }
        spec.update(self._state_spec())
        return spec

    def _reset(self) -> None:
        self._spec = self._full_spec()
        self._n_slots = 0
        self._state: dict[str, np.ndarray] = {
            name: np.full((0, *shape), fill, dtype=dtype)
            for name, (dtype, shape, fill) in self._spec.items()
        }
        self.late_samples = 0
        self.duplicate_samples = 0
        self.samples_seen = 0

    def reset(self) -> None:
        """Forget everything learned, for every device."""
        self._reset()

    @property
    def n_slots(self) -> int:
        return self._n_slots

    def last_event_s(self, slot: int) -> float:
        """Newest event time processed for ``slot`` (0.0 if none)."""
        t = float(self._state["last_t"][slot]) if slot < self._n_slots else -math.inf
        return t if math.isfinite(t) else 0.0

    def ensure_capacity(self, n: int) -> None:
        """Make room for slots 0..n-1."""
        cap = len(self._state["last_t"])
        if n > cap:
            cap = _new_capacity(cap, n)
            for name, (_, _, fill) in self._spec.items():
                self._state[name] = _grow(self._state[name], cap, fill)
        self._n_slots = max(self._n_slots, n)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: arr[: self._n_slots].copy() for name, arr in self._state.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the learned state; raises ValueError if it does not fit this detector."""
        if set(state) != set(self._spec):
            raise ValueError(
                f"{type(self).__name__}: state keys {sorted(state)} != {sorted(self._spec)}"
            )
        lengths = {len(state[name]) for name in self._spec}
        if len(lengths) != 1:
            raise ValueError(f"{type(self).__name__}: state arrays differ in length")
        loaded: dict[str, np.ndarray] = {}
        for name, (dtype, shape, _) in self._spec.items():
            arr = np.asarray(state[name])
            if arr.shape[1:] != shape or not np.can_cast(arr.dtype, dtype, "same_kind"):
                raise ValueError(
                    f"{type(self).__name__}: state {name!r} has {arr.dtype}{arr.shape[1:]}, "
                    f"expected {dtype}{shape} (hyper-parameters changed?)"
                )
            loaded[name] = arr.astype(dtype, copy=True)
        self._state = loaded
        self._n_slots = lengths.pop()

    # -- learning ------------------------------------------------------------------------

    def update(self, batch: SampleBatch, devices: DeviceTable | None = None) -> None:
        """Learn from a batch of samples of any number of devices, in any row order."""
        if not len(batch):
            return
        self.ensure_capacity(int(batch.slot.max()) + 1)
        order = slot_time_order(batch.slot, batch.t_s)
        slot = batch.slot[order]
        t = batch.t_s[order]
        first = np.empty(len(slot), dtype=bool)
        first[0] = True
        np.not_equal(slot[1:], slot[:-1], out=first[1:])
        last_t = self._state["last_t"]
        late = ~(t > last_t[slot])  # NaN times count as late: they cannot be ordered
        dup = np.zeros(len(slot), dtype=bool)
        dup[1:] = ~first[1:] & (t[1:] == t[:-1])
        dup &= ~late
        fresh = ~(late | dup)
        self.late_samples += int(late.sum())
        self.duplicate_samples += int(dup.sum())
        keep = order[fresh]
        if devices is not None and self.kinds != frozenset(_KINDS[1:]):
            kind = devices.column("kind", batch.slot[keep])
            allowed = [kind_code(k) for k in self.kinds] + [0]  # unknown kind: let it through
            keep = keep[np.isin(kind, allowed)]
        # Sorted, so the last fresh row of each device run holds its newest time.
        fs, ft = slot[fresh], t[fresh]
        if len(fs):
            ends = np.flatnonzero(np.r_[fs[1:] != fs[:-1], True])
            last_t[fs[ends]] = ft[ends]
        self.samples_seen += len(keep)
        self._last_keep = keep  # rows of ``batch`` that reached ``_update``, in its order
        if len(keep):
            # Only the columns this detector reads: the copy is the costly part of a take.
            self._update(batch.take(keep, self.signals or None), devices)

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        """Rows are sorted by (slot, t), strictly increasing t per slot."""
        raise NotImplementedError

    # -- gating --------------------------------------------------------------------------

    def as_gate(self) -> Gate | None:
        """This detector as the gate of the others, if it judges sensors (default: no)."""
        return None

    def held(self, gate: Gate | None, n: int) -> npt.NDArray[np.bool_]:
        """Slots (0..n-1) whose verdicts are held back: a gated detector's, where the gate
        distrusts any signal it reads."""
        if not self.gated or gate is None:
            return np.zeros(n, dtype=bool)
        return gate.faulty(self.signals, n)

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        raise NotImplementedError

    def summary(self, v: Verdicts, i: int) -> str:
        """One sentence for slot ``i``'s alert; subclasses say what to do about it."""
        name = CATEGORY_NAMES[int(v.category[i])] or "normal"
        return f"{self.cause}: {name.replace('_', ' ')}"

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        """JSON-ready explanation of slot ``i`` (NaN becomes None)."""
        out: dict[str, Any] = {"signal": v.signal}
        for k, arr in v.evidence.items():
            x = float(arr[i])
            out[k] = x if math.isfinite(x) else None
        since = float(v.since_s[i])
        out["since"] = since if math.isfinite(since) else None
        conf = float(v.confidence[i]) if v.confidence is not None else math.nan
        out["confidence"] = round(conf, 3) if math.isfinite(conf) else None
        return out


def slot_time_order(slot: I64, t: F64) -> npt.NDArray[np.intp]:
    """``np.lexsort((t, slot))`` (rows by slot, then time, ties and NaN times in input
    order, NaN last), faster: rows already in that order (a service flushes them sorted)
    are taken as they are; otherwise a compiled counting pass over the slots sorts each
    device's run (``row_order``), or, where the slots run far above the rows, one sort of
    distinct integer keys (slot, rank of the time, row), as a lexsort pays two stable sorts."""
    n = len(slot)
    ds = np.diff(slot)
    # NaN compares False: a NaN time within a device's rows takes the sorting path
    if n < 2 or ((ds > 0) | ((ds == 0) & (t[1:] >= t[:-1]))).all():
        return np.arange(n)
    lo, hi = int(slot.min()), int(slot.max())
    if lo >= 0 and hi < 4 * n + 65_536:  # a counting pass over the slots stays cheap
        from analytics.row_order import by_slot_then_time  # numba loads on first use

        return by_slot_then_time(slot, t, hi + 1)
    by_t = np.argsort(t)  # not stable: equal times get one rank, the row breaks ties
    ts = t[by_t]
    nan = np.isnan(ts)
    new_rank = (ts[1:] != ts[:-1]) & ~(nan[1:] & nan[:-1])
    rank = np.empty(n, np.int64)
    rank[by_t] = np.concatenate(([0], np.cumsum(new_rank)))
    ranks = int(rank[by_t[-1]]) + 1
    if lo < 0 or (hi + 1) * ranks * n >= 1 << 62:  # the key would overflow
        return np.lexsort((t, slot))
    key = (slot.astype(np.int64) * ranks + rank) * n + np.arange(n)
    return np.argsort(key)


def step_groups(slot: I64) -> list[npt.NDArray[np.intp]]:
    """Split rows sorted by slot into steps: step j holds the j-th row of every device run.

    Each step has at most one row per slot, so per-slot state can be updated with fancy
    indexing; a recursive statistic then loops over steps (the longest run in the batch),
    vectorised across devices, instead of over samples.
    """
    n = len(slot)
    if n == 0:
        return []
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(slot[1:], slot[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    order = np.argsort(rank, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    return [order[bounds[j] : bounds[j + 1]] for j in range(len(bounds) - 1)]
