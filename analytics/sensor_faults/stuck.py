"""Stuck: the same non-zero reading ``run`` times in a row while the process moved.

Another channel of the device changed meanwhile (the process moved, the sensor did
not), for at least ``min_duration_s``. The run must be implausible for this sensor in
its current operating state (idle: a closed valve or a stopped pump, whose sensors sit
on their noise floor; or active): the posterior predictive probability of such a run,
``E[p**run]`` with the repeat share ``p ~ Beta`` of the repeats and pairs seen in that
state, below ``alpha``. A plug-in ``p`` from a few hours of training made runs of six or
so "implausible" for any sensor that happened to repeat little in training, e.g. a
running pump's vibration, which then sat on its noise floor whenever the pump stopped.
The counts go on learning after training (not while the channel is faulty; a run counts
once it ended, so a stuck run never teaches that runs are long), decayed to
``learn_samples``. Exact zero is left alone: a stopped pump or a tight seat
legitimately reads 0. NAMUR NE 107: ``failure`` (the signal is invalid).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final

import numpy as np

from analytics.base import F64, I64, SampleBatch
from analytics.sensor_faults.screen import STUCK, Bool, Spec, State, Step, reduce_rows

__all__ = ["StuckScreen"]

_MAX_RUN: Final = 1 << 20


def _lgamma(x: np.ndarray) -> np.ndarray:
    """log Gamma(x) for x > 0, vectorised: Stirling's series after shifting x by 8."""
    x = np.asarray(x, dtype=np.float64)
    shift = np.zeros_like(x)
    for i in range(8):
        shift += np.log(x + i)
    z = x + 8.0
    zi = 1.0 / z
    z2 = zi * zi
    series = zi * (1 / 12 - z2 * (1 / 360 - z2 * (1 / 1260 - z2 / 1680)))
    return (z - 0.5) * np.log(z) - z + 0.5 * math.log(2 * math.pi) + series - shift


def stuck_log_p(rep: np.ndarray, pairs: np.ndarray, run: np.ndarray) -> np.ndarray:
    """log P(``run`` repeats in a row) for a sensor seen repeating ``rep`` of ``pairs`` times.

    Not the plug-in ``p**run``: the repeat share is only estimated, and a share estimated
    low by chance makes a plug-in run threshold far too short (most false "stuck" alarms).
    This is the posterior predictive ``E[p**run]`` under a uniform prior, ``p ~ Beta(a,
    b)`` with ``a = rep + 1``, ``b = pairs - rep + 1``: ``B(a + run, b) / B(a, b)``, which
    asks for longer runs the fewer pairs the share rests on.
    """
    a = np.asarray(rep, dtype=np.float64) + 1.0
    b = np.maximum(np.asarray(pairs, dtype=np.float64) - rep, 0.0) + 1.0
    r = np.asarray(run, dtype=np.float64)
    return _lgamma(a + r) - _lgamma(a) - _lgamma(a + b + r) + _lgamma(a + b)


class StuckScreen:
    name: ClassVar[str] = "stuck"
    code: ClassVar[int] = STUCK

    def __init__(
        self,
        *,
        channels: int,
        alpha: float = 1e-8,
        min_run: int = 6,
        min_duration_s: float = 3600.0,
        closed_max_pct: float = 2.0,
    ) -> None:
        if not 0 < alpha < 1 or min_run < 2 or min_duration_s < 0:
            raise ValueError("need alpha in (0, 1), min_run >= 2, min_duration_s >= 0")
        self.n_channels = channels
        self.alpha = alpha
        self.min_run = min_run
        self.min_duration_s = min_duration_s
        self.closed_max_pct = closed_max_pct

    def state_spec(self) -> Spec:
        f64, f32, i32 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int32)
        c = (self.n_channels,)
        return {
            # learned on, past training too (decayed counts, none while a fault is on)
            "pair_n": (f32, (*c, 2), 0.0),  # comparable pairs, per (channel, idle/active)
            "rep_n": (f32, (*c, 2), 0.0),  # of them repeats
            "last_v": (f32, c, 0.0),
            "run_n": (i32, c, 0),
            "run_t0": (f64, c, 0.0),  # first sample of the current value; 0 = none yet
            "idle": (np.dtype(np.int8), (), 0),  # valve closed or pump stopped (newest)
        }

    def prepare(self, batch: SampleBatch) -> np.ndarray:
        # idle (1): a closed valve or a stopped pump, whose sensors sit still more often;
        # active (0); -1: not in this sample, the previous state holds
        pos, speed = batch.signal("position_pct"), batch.signal("speed_rpm")
        return np.where(
            (pos <= self.closed_max_pct) | (speed == 0),
            1,
            np.where(np.isfinite(pos) | np.isfinite(speed), 0, -1),
        ).astype(np.int64)

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> Bool:
        assert inputs is not None
        slots, present, t = st.slots, st.present, st.t
        idle = np.where(inputs >= 0, inputs, s["idle"][slots]).astype(np.int8)
        s["idle"][slots] = idle
        x32 = st.x32
        last = s["last_v"][slots]
        run_t0 = s["run_t0"][slots]
        had = run_t0 > 0
        comparable = present & had & (last != 0)
        same = comparable & (x32 == last)
        # A run of equal readings is learned when it ends (``m`` repeats, then a change),
        # in the operating state it ended in.
        run_prev = s["run_n"][slots]
        ended = st.learning & comparable & ~same
        m = run_prev.astype(np.float32)
        keep = np.where(ended, st.decay ** (m + 1), np.float32(1.0))
        for v in (0, 1):  # the plane of each row's operating state
            here = idle == v
            if not here.any():  # (usually every row is in one state: one plane to do)
                continue
            pn, rn = s["pair_n"][slots, :, v], s["rep_n"][slots, :, v]
            new_pn = pn * keep + np.where(ended, m + 1, 0)
            new_rn = rn * keep + np.where(ended, m, 0)
            if here.all():
                pn[...], rn[...] = new_pn, new_rn
            else:
                np.copyto(pn, new_pn, where=here[:, None])
                np.copyto(rn, new_rn, where=here[:, None])
        all_present = bool(present.all())
        run_n = np.where(same, run_prev + 1, 0)
        if not all_present:
            run_n = np.where(present, run_n, run_prev)
        run_t0 = np.where(present & ~same, t[:, None], run_t0)
        s["run_n"][slots] = run_n
        s["run_t0"][slots] = run_t0
        s["last_v"][slots] = x32 if all_present else np.where(present, x32, last)

        # A run must be implausible for this sensor in this operating state (see
        # ``stuck_log_p``) and must also last ``min_duration_s``: at a sample a minute a
        # dozen equal readings are a quiet quarter of an hour, not a frozen instrument.
        now = st.trained & (run_n >= self.min_run)
        if not now.any():  # the usual step: no run long enough
            return now
        now &= t[:, None] - run_t0 >= self.min_duration_s
        # the process moved while this sensor did not: another channel changed since
        # (a channel's own value never started after itself, so the newest start will do)
        now &= reduce_rows(np.maximum, run_t0)[:, None] > run_t0
        cand_r, cand_c = np.nonzero(now)
        if len(cand_r):
            cs, ci = cand_r, idle[cand_r]
            log_p = stuck_log_p(
                s["rep_n"][cs, cand_c, ci], s["pair_n"][cs, cand_c, ci], run_n[cand_r, cand_c]
            )
            now[cand_r, cand_c] = log_p < math.log(self.alpha)
        return now

    def withheld(self, st: Step) -> Bool:
        return (st.latched == STUCK) & st.present

    def run_needed(self, s: State, slots: I64) -> F64:
        """Repeats in a row that make each (slot, channel) stuck in its current state."""
        idle = s["idle"][slots].astype(np.intp)
        k = np.take_along_axis(s["rep_n"][slots], idle[:, None, None], axis=2)[:, :, 0]
        n = np.take_along_axis(s["pair_n"][slots], idle[:, None, None], axis=2)[:, :, 0]
        # log P is decreasing in the run: bisect for the shortest run below alpha
        lo = np.full(k.shape, self.min_run - 1, dtype=np.float64)  # not enough
        hi = np.full(k.shape, float(_MAX_RUN))
        log_alpha = math.log(self.alpha)
        for _ in range(_MAX_RUN.bit_length() + 1):
            mid = np.minimum(np.maximum(np.floor(0.5 * (lo + hi)), lo + 1), hi)
            ok = stuck_log_p(k, n, mid) < log_alpha
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
        return hi

    def explain(self, s: State, rows: I64, channel: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        run = np.where(shown, s["run_n"][rows, channel] + 1.0, np.nan)
        need = np.full(len(rows), np.nan)
        at = np.flatnonzero(shown)  # a bisection: only where it is shown
        need[at] = self.run_needed(s, rows[at])[np.arange(len(at)), channel[at]]
        value = s["last_v"][rows, channel].astype(np.float64)
        return run / np.maximum(need, 1), {
            "run_samples": run,
            "run_needed": need,
            "stuck_value": np.where(shown, value, np.nan),
        }

    def describe(self, e: dict[str, Any], since: str) -> str:
        return (
            f"Sensor {e['channel']} stuck at {e['stuck_value']:.4g} for "
            f"{e['run_samples']:.0f} samples while the process moved, since {since}: "
            "check or replace the instrument; its readings are withheld from seal checks"
        )
