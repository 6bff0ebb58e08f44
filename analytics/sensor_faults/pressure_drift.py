"""Pressure-pair drift: physics the two pressure gauges must obey.

A wide-open valve (position at or above ``open_min_pct``) or a stopped pump (speed 0)
has p_in ≈ p_out + its usual small difference, and a closed valve's downstream pressure
sits at its usual level. The commissioning baselines of those two residuals (robust,
like the seat's, from ``baseline`` samples) are watched by a two-sided CUSUM
(``changepoint.ChangeTest``) for a shift of ``max(drift_kpa, 3 sigma)``. A seat leak
moves neither, a drifting gauge does; which of the two gauges drifts is not knowable
from these two alone, so both are withheld. NAMUR NE 107: ``out_of_specification``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import numpy as np

from analytics.base import F64, I64, SampleBatch
from analytics.baseline import robust_level
from analytics.changepoint import ChangeTest
from analytics.sensor_faults.screen import (
    DRIFTING,
    Bool,
    Spec,
    State,
    Step,
    count_dtype,
    reduce_rows,
)

__all__ = ["PRESSURES", "PressureDriftScreen"]

PRESSURES: Final = ("p_in_kpa", "p_out_kpa")
RESIDUAL_NAMES: Final = (
    "p_in_kpa - p_out_kpa while open or stopped",
    "p_out_kpa while closed",
)


class PressureDriftScreen:
    name: ClassVar[str] = "pressure_drift"
    code: ClassVar[int] = DRIFTING
    signals: ClassVar[tuple[str, ...]] = PRESSURES
    residual: ClassVar[tuple[int, ...]] = (0, 1)
    channel: int = -1  # the pair, not one gauge

    def __init__(
        self,
        *,
        channels: tuple[str, ...],
        open_min_pct: float = 90.0,
        closed_max_pct: float = 2.0,
        drift_kpa: float = 30.0,
        baseline: int = 24,
        clear_samples: int = 12,
    ) -> None:
        if drift_kpa <= 0 or baseline < 3:
            raise ValueError("need drift_kpa > 0 and a drift baseline >= 3 samples")
        self.open_min_pct = open_min_pct
        self.closed_max_pct = closed_max_pct
        self.drift_kpa = drift_kpa
        self.baseline = baseline
        self._test = ChangeTest("drift_", clear_fraction=0.3, clear_samples=clear_samples)
        self._ix = [channels.index(p) for p in PRESSURES if p in channels]

    def state_spec(self) -> Spec:
        f64, f32 = np.dtype(np.float64), np.dtype(np.float32)
        spec: Spec = {
            # two residuals; the change test runs both directions of each
            "drift_n": (count_dtype(self.baseline), (2,), 0),
            "drift_buf": (f32, (2, self.baseline), 0.0),
            "drift_med": (f64, (2,), 0.0),
            "drift_sigma": (f64, (2,), 0.0),
            "drift_value": (f32, (2,), 0.0),  # newest deviation, shown only
        }
        spec.update(self._test.spec((4,)))
        return spec

    def prepare(self, batch: SampleBatch) -> np.ndarray:
        # residual 0: pressure difference across a wide-open valve or a stopped pump
        # residual 1: downstream pressure of a closed valve
        pos, speed = batch.signal("position_pct"), batch.signal("speed_rpm")
        p_in, p_out = batch.signal("p_in_kpa"), batch.signal("p_out_kpa")
        open_or_stopped = (pos >= self.open_min_pct) | (speed == 0)
        return np.stack(
            [
                np.where(open_or_stopped, p_in - p_out, np.nan),
                np.where(pos <= self.closed_max_pct, p_out, np.nan),
            ],
            axis=1,
        )

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> None:
        assert inputs is not None
        for j in range(2):
            have = np.isfinite(inputs[:, j])
            if not have.any():
                continue
            hs, ht, hr = np.flatnonzero(have), st.t[have], inputs[have, j]
            n = s["drift_n"][hs, j]
            learning = n < self.baseline
            if learning.any():
                ls = hs[learning]
                s["drift_buf"][ls, j, n[learning]] = hr[learning]
                s["drift_n"][ls, j] += 1
                done = ls[n[learning] == self.baseline - 1]
                if len(done):
                    med, sig = robust_level(s["drift_buf"][done, j], 1.0)
                    s["drift_med"][done, j] = med
                    s["drift_sigma"][done, j] = sig
            live = ~learning
            if not live.any():
                continue
            ls, lt, lr = hs[live], ht[live], hr[live]
            # every row of the step: views of the state, not gathers
            rows: Any = st.slots if len(ls) == len(st.t) else ls
            dev = lr - s["drift_med"][rows, j]
            s["drift_value"][rows, j] = dev
            sigma = s["drift_sigma"][rows, j]
            delta = np.maximum(self.drift_kpa, 3.0 * sigma)
            for sign, col in ((1.0, 2 * j), (-1.0, 2 * j + 1)):
                idx = (rows, col if rows is st.slots else np.full(len(ls), col))
                self._test.step(s, idx, sign * dev, lt, delta=delta, sigma=sigma)
        st.pair_drift = self.on(s, st.slots)

    def on(self, s: State, slots: I64 | slice) -> Bool:
        return reduce_rows(np.logical_or, s["drift_on"][slots])

    def since(self, s: State, slots: I64 | slice) -> F64:
        since = np.where(s["drift_on"][slots], s["drift_since"][slots], np.inf)
        return reduce_rows(np.minimum, since)

    def withheld(self, s: State, st: Step) -> Bool:
        out = np.zeros(st.present.shape, dtype=bool)
        out[:, self._ix] = st.pair_drift[:, None]
        return out

    def explain(self, s: State, rows: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        j = np.argmax(np.abs(s["drift_cusum"][rows]), axis=1) // 2
        dev = s["drift_value"][rows, j]
        sigma = s["drift_sigma"][rows, j]
        margin = np.abs(dev) / np.maximum(self.drift_kpa, 3 * sigma)
        return margin, {
            "drift_residual": np.where(shown, j, np.nan).astype(float),
            "drift_kpa": np.where(shown, dev, np.nan),
            "drift_baseline_kpa": np.where(shown, s["drift_med"][rows, j], np.nan),
        }

    def describe(self, e: dict[str, Any], since: str) -> str:
        return (
            f"Pressure gauges drift: {e['signal']} is {e['drift_kpa']:+.0f} kPa off its "
            f"commissioning level {e['drift_baseline_kpa']:.0f} kPa since {since}: "
            "recalibrate p_in/p_out; seal checks on these readings are held"
        )
