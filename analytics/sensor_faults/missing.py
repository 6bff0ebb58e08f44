"""Missing: a channel that was always there, absent from samples that carry others.

A channel present in (nearly) every training sample, absent from ``run`` samples in a
row that carry other readings and for at least ``min_duration_s``, the run length found
from how often its gaps continued (``log(alpha) / log(p_cont)``, learned like the stuck
screen's repeats, from gaps that ended). Channels that come and go with the process
(``exempt``: a seat-leak sensor is read only while the valve is closed, and a valve may
stay open for days) or never seen in training are not expected. NAMUR NE 107:
``failure``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from analytics.base import F64, I64, SampleBatch
from analytics.sensor_faults.screen import MISSING, Bool, Spec, State, Step, count_dtype

__all__ = ["MissingScreen"]


class MissingScreen:
    name: ClassVar[str] = "missing"
    code: ClassVar[int] = MISSING

    def __init__(
        self,
        *,
        channels: tuple[str, ...],
        alpha: float = 1e-8,
        min_run: int = 6,
        min_duration_s: float = 3600.0,
        exempt: tuple[str, ...] = ("leak_mm3s",),
        train_samples: int = 96,
    ) -> None:
        if not 0 < alpha < 1 or min_run < 2 or min_duration_s < 0:
            raise ValueError("need alpha in (0, 1), min_run >= 2, min_duration_s >= 0")
        self.n_channels = len(channels)
        self.alpha = alpha
        self.min_run = min_run
        self.min_duration_s = min_duration_s
        self.train_samples = train_samples
        self._watch = np.array([c not in exempt for c in channels])

    def state_spec(self) -> Spec:
        f64, f32, i32 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int32)
        c = (self.n_channels,)
        return {
            # training samples carrying the channel
            "pres_n": (count_dtype(self.train_samples), c, 0),
            "gap_n": (f32, c, 0.0),  # learned on, like the stuck screen's pairs
            "gap_cont_n": (f32, c, 0.0),
            "miss_run": (i32, c, 0),
            "miss_t0": (f64, c, 0.0),  # first sample of the current gap
        }

    def prepare(self, batch: SampleBatch) -> None:
        return None

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> Bool:
        slots, present, any_present = st.slots, st.present, st.any_present
        miss_run = s["miss_run"][slots]
        was_gap = miss_run > 0
        # A gap is learned from when it ends (its ``m`` samples: ``m - 1`` continued, one
        # did not), so a gap in progress never teaches that gaps go on.
        ended = st.learning & was_gap & present
        if ended.any():  # (gaps are rare: the decay only where one ended)
            er, ec = np.nonzero(ended)
            m = miss_run[er, ec].astype(np.float32)
            keep = st.decay**m
            s["gap_n"][slots][er, ec] = s["gap_n"][slots][er, ec] * keep + m
            s["gap_cont_n"][slots][er, ec] = s["gap_cont_n"][slots][er, ec] * keep + (m - 1)
        if st.tr.any():
            s["pres_n"][slots] += st.tr & present
        if present.all():  # (the usual sample: every channel read, no gap)
            miss_run = np.zeros_like(miss_run)
        else:
            gr, gc = np.nonzero(~present & any_present[:, None] & ~was_gap)
            s["miss_t0"][slots][gr, gc] = st.t[gr]  # a gap starts
            miss_run = np.where(present, 0, np.where(any_present[:, None], miss_run + 1, miss_run))
        s["miss_run"][slots] = miss_run
        if not (miss_run >= self.min_run).any():  # no run long enough to judge
            return np.zeros(present.shape, dtype=bool)
        # Only sensors that were always there in training: a channel that comes and goes
        # with the process (leak readings only while closed) has gaps of its own.
        always = s["pres_n"][slots] >= 0.99 * s["rows_n"][slots][:, None]
        always &= self._watch
        return (
            st.trained
            & always
            & (miss_run >= self.run_needed(s, slots))
            & (st.t[:, None] - s["miss_t0"][slots] >= self.min_duration_s)
        )

    def withheld(self, st: Step) -> Bool:
        return (st.latched == MISSING) & st.present

    def run_needed(self, s: State, slots: I64 | slice) -> F64:
        p_cont = (s["gap_cont_n"][slots] + 1.0) / (s["gap_n"][slots] + 2.0)
        return np.maximum(self.min_run, np.ceil(math.log(self.alpha) / np.log(p_cont)))

    def explain(self, s: State, rows: I64, channel: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        run = np.where(shown, s["miss_run"][rows, channel], np.nan)
        need = np.where(shown, self.run_needed(s, rows)[rows, channel], np.nan)
        return run / np.maximum(need, 1), {"run_samples": run, "run_needed": need}

    def describe(self, e: dict[str, Any], since: str) -> str:
        return (
            f"Sensor {e['channel']} missing from {e['run_samples']:.0f} samples in a row "
            f"since {since}: check wiring and the instrument"
        )
