"""The screen contract: one sensor fault, judged per device slot, vectorised over devices.

A screen keeps only hyper-parameters. Like ``changepoint.ChangeTest``, its per-slot state
lives in the detector's state dict under names it declares (``state_spec``, unique
across screens), so ``SensorFaultDetector`` owns allocation, growth, event-time order and
save/restore for all of them. Per batch a screen derives its inputs from the batch
(``prepare``); then, step by step (one row per device per step, in event-time order),
``step`` advances its state. The state a step sees holds the batch's devices only, the
step's devices first and in its row order, so ``s[name][st.slots]`` is a view of theirs
(no gather or scatter per step) and ``np.flatnonzero(mask)`` indexes a subset of them.

Two kinds:

* a ``ChannelScreen`` (stuck, missing, spiking) judges every channel's reading *now*;
  the detector latches the worst of their judgements per channel (one fault per
  channel, cleared after ``clear_samples`` healthy readings), so they share the
  ``Step.fault`` they see and the latch they feed;
* a ``SignalScreen`` (pressure-pair drift, leak-sensor drift) latches a verdict of its
  own on the signals it names (``signals``), from physics those signals must obey.

Both say which readings to withhold (``withheld``) and explain themselves
(``explain``: a margin over their threshold and evidence columns, ``describe``: the
sentence a technician reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import numpy as np
import numpy.typing as npt

from analytics.base import F64, I64, SampleBatch

__all__ = [
    "DRIFTING",
    "FAULT_NAMES",
    "MISSING",
    "SPIKING",
    "STUCK",
    "ChannelScreen",
    "SignalScreen",
    "Spec",
    "State",
    "Step",
    "count_dtype",
    "reduce_rows",
]

Spec = dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]
State = dict[str, np.ndarray]
Bool = npt.NDArray[np.bool_]

# fault codes, by increasing precedence when a device has several
FAULT_NAMES: Final = ("", "spiking", "drifting", "missing", "stuck")
SPIKING, DRIFTING, MISSING, STUCK = 1, 2, 3, 4


def count_dtype(most: int) -> np.dtype[Any]:
    """The smallest unsigned integer that counts up to ``most`` + 1 (state per device is
    kept small: at 100,000 devices every byte is 100 kB)."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if most + 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def reduce_rows(ufunc: np.ufunc, a: np.ndarray) -> np.ndarray:
    """``ufunc`` reduced over the last (short) axis, a column at a time: numpy's reduce
    along a short inner axis costs a loop per row, ten times this."""
    out = a[..., 0].copy()
    for j in range(1, a.shape[-1]):
        ufunc(out, a[..., j], out=out)
    return out


@dataclass(slots=True, eq=False)
class Step:
    """One row per device (``slots`` distinct), with what every screen may read."""

    slots: slice  # the step's rows of the state the screens get (a leading block)
    t: F64
    x: F64  # (rows, channels) readings, NaN = not in this sample
    x32: npt.NDArray[np.float32]  # the readings as stored (0 where absent)
    present: Bool  # (rows, channels)
    any_present: Bool  # (rows,) the sample carries any channel
    training: Bool  # (rows,) the slot is still in its training samples
    fault: npt.NDArray[np.int8]  # (rows, channels) channel faults latched before this step
    decay: np.float32  # of the counts learned past training, per sample
    # derived once per step
    tr: Bool = field(init=False)  # (rows, channels) counted toward training statistics
    # Rates a run is judged by are learned past training on a channel without a fault,
    # counts decayed to ``learn_samples``: a week of samples estimates a repeat share far
    # better than the first few hours, and follows it through the seasons.
    learning: Bool = field(init=False)
    trained: Bool = field(init=False)  # (rows, 1)
    # filled in as the step proceeds
    outliers: Bool = field(init=False)  # Hampel outliers (all readings, fault or not)
    latched: npt.NDArray[np.int8] = field(init=False)  # channel faults after this step
    pair_drift: Bool = field(init=False)  # the pressure pair drifts after this step

    def __post_init__(self) -> None:
        self.tr = self.training[:, None] & self.any_present[:, None]
        self.learning = self.any_present[:, None] & (self.fault == 0)
        self.trained = ~self.training[:, None]
        self.outliers = np.zeros(self.present.shape, dtype=bool)
        self.latched = self.fault
        self.pair_drift = np.zeros(len(self.t), dtype=bool)


class ChannelScreen(Protocol):
    """Judges each channel's reading now; the detector latches the worst per channel."""

    name: ClassVar[str]
    code: ClassVar[int]  # the fault it raises (FAULT_NAMES index)

    def state_spec(self) -> Spec: ...

    def prepare(self, batch: SampleBatch) -> np.ndarray | None:
        """Per-row inputs for ``step`` (rows sorted by (slot, t)), or None."""
        ...

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> Bool:
        """Advance the slots of ``st``; (rows, channels) judged faulty at this reading."""
        ...

    def withheld(self, st: Step) -> Bool:
        """Readings of this step withheld from the seal detectors, given ``st.latched``."""
        ...

    def explain(self, s: State, rows: I64, channel: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        """(margin over the threshold, evidence columns) for ``rows`` whose shown fault,
        on ``channel``, is this screen's where ``shown``; NaN elsewhere."""
        ...

    def describe(self, e: dict[str, Any], since: str) -> str: ...


class SignalScreen(Protocol):
    """Latches a fault of its own on ``signals`` (raised as ``DRIFTING``)."""

    name: ClassVar[str]
    code: ClassVar[int]
    signals: ClassVar[tuple[str, ...]]  # whose seal verdicts it holds
    residual: ClassVar[tuple[int, ...]]  # ``drift_residual`` evidence values it shows
    channel: int  # channel index it names in verdicts, -1 for a pair

    def state_spec(self) -> Spec: ...

    def prepare(self, batch: SampleBatch) -> np.ndarray | None: ...

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> None: ...

    def on(self, s: State, slots: I64 | slice) -> Bool: ...

    def since(self, s: State, slots: I64 | slice) -> F64: ...

    def withheld(self, s: State, st: Step) -> Bool: ...

    def explain(self, s: State, rows: I64, shown: Bool) -> tuple[F64, dict[str, F64]]: ...

    def describe(self, e: dict[str, Any], since: str) -> str: ...
