"""The sequential change test every detector shares: CUSUM to raise, EWMA level to clear.

Input is a deviation ``z`` from a learned baseline, in units where ``delta`` is the
smallest shift worth a technician's visit (log ratio for leakage, seconds of log stroke
time, degrees for temperature). Per element (slot, or (slot, channel)):

* one-sided CUSUM ``S = max(0, S + clip(z) - k)`` with ``k = delta / 2``, raised when
  ``S > h``. Page's CUSUM is the optimal test for a step of size ``delta`` (it minimises
  the worst-case delay for a given false alarm rate), so it catches both a step and a
  slow drift earlier than a threshold on a smoothed level, and it dates the change: the
  onset is the last time ``S`` left zero, which is what ``since`` reports;
* each increment is clipped to ``clip`` (at least ``delta``, at least 3 sigma), so one
  absurd reading moves ``S`` by a bounded amount and a short burst of spikes cannot raise
  it (``h`` is a few clipped increments);
* ``h = max(h_shifts * delta, h_sigmas * sigma)``: for a noisy device the in-control
  drift ``-k`` is small against the noise, and ``h`` grows with sigma to keep the
  in-control run length far beyond a device's life;
* a robust EWMA of ``z`` (each step clipped around the current level) tracks the current
  level. It is what clears the alarm (below ``clear_level`` for ``clear_samples``
  samples in a row: hysteresis, so one low reading never clears) and what explanations
  report as the current value. While raised ``S`` is capped at ``h``; clearing resets it.

Everything is vectorised over the index it is given; the state lives in the detector's
state dict under ``prefix``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.params import Param

__all__ = ["ChangeTest", "RiseTest", "StepResult", "change_test_params", "confidence"]

F64 = npt.NDArray[np.float64]
Index = Any  # an index array, or a tuple of them for (slot, channel) state


@dataclass(frozen=True, slots=True)
class StepResult:
    on: npt.NDArray[np.bool_]
    rose: npt.NDArray[np.bool_]
    fell: npt.NDArray[np.bool_]


def change_test_params(
    *, alpha: float, clear_samples: int, unit: str = "samples"
) -> tuple[Param, ...]:
    """The ``PARAMS`` rows of a detector's change test, with that detector's defaults
    (the ranges ``ChangeTest`` accepts)."""
    return (
        Param("alpha", alpha, "(0, 1]", "",
              "EWMA weight of the level that clears and explains"),
        Param("clear_samples", clear_samples, "[1, inf)", unit,
              "in a row below the clear level to clear"),
        Param("h_shifts", 2.5, "(0.5, inf)", "shifts",
              "CUSUM decision interval, in relevant shifts"),
        Param("h_sigmas", 8.0, "[0, inf)", "sigmas",
              "CUSUM decision interval floor, in baseline spreads"),
    )  # fmt: skip


class ChangeTest:
    """Hyper-parameters of one CUSUM/EWMA pair; state is kept by the caller."""

    def __init__(
        self,
        prefix: str,
        *,
        h_shifts: float = 2.5,
        h_sigmas: float = 8.0,
        alpha: float = 0.1,
        clear_fraction: float = 0.4,
        clear_samples: int = 12,
    ) -> None:
        if h_shifts <= 0.5 or h_sigmas < 0:
            raise ValueError("h_shifts must be > 0.5 and h_sigmas >= 0")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if not 0 <= clear_fraction < 1:
            raise ValueError("clear_fraction must be in [0, 1)")
        if clear_samples < 1:
            raise ValueError("clear_samples must be >= 1")
        self.prefix = prefix
        self.h_shifts = h_shifts
        self.h_sigmas = h_sigmas
        self.alpha = alpha
        self.clear_fraction = clear_fraction
        self.clear_samples = clear_samples
        # stationary sd of an EWMA of unit-variance white noise
        self.ewma_sd = math.sqrt(alpha / (2 - alpha))

    def spec(
        self, shape: tuple[int, ...] = ()
    ) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64 = np.dtype(np.float64)
        p = self.prefix
        return {
            f"{p}cusum": (f64, shape, 0.0),
            f"{p}start": (f64, shape, 0.0),  # event time the current excursion began
            f"{p}level": (f64, shape, 0.0),
            f"{p}on": (np.dtype(np.bool_), shape, False),
            f"{p}clear_n": (np.dtype(np.int32), shape, 0),
            f"{p}since": (f64, shape, 0.0),  # onset of the raised condition, 0 when off
        }

    def thresholds(self, delta: F64 | float, sigma: F64) -> tuple[F64, F64, F64]:
        """(k, h, clip) for a relevant shift ``delta`` and a baseline spread ``sigma``."""
        d = np.broadcast_to(np.asarray(delta, dtype=np.float64), np.shape(sigma))
        k = 0.5 * d
        h = np.maximum(self.h_shifts * d, self.h_sigmas * sigma)
        clip = np.maximum(d, 3.0 * sigma)
        return k, h, clip

    def step(
        self,
        s: dict[str, np.ndarray],
        ix: Index,
        z: F64,
        t: F64,
        *,
        delta: F64 | float,
        sigma: F64,
        valid: npt.NDArray[np.bool_] | None = None,
    ) -> StepResult:
        """Advance elements ``ix`` (distinct) by one deviation each; ``valid`` False skips."""
        p = self.prefix
        k, h, clip = self.thresholds(delta, sigma)
        cus = s[f"{p}cusum"][ix]
        lvl = s[f"{p}level"][ix]
        on = s[f"{p}on"][ix]
        n = s[f"{p}clear_n"][ix]
        start = s[f"{p}start"][ix]
        since = s[f"{p}since"][ix]

        # Every element valid (the usual call) skips the masking: the same values, a
        # third fewer passes over the arrays.
        def pick(a: Any, b: Any) -> Any:
            return a if valid is None else np.where(valid, a, b)

        def only(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
            return mask if valid is None else valid & mask

        zc = pick(z, 0.0)
        u = np.clip(zc, -clip, clip)
        new = np.maximum(cus + u - k, 0.0)
        start = np.where(only((cus <= 0) & (new > 0)), t, start)
        lvl_new = lvl + self.alpha * np.clip(zc - lvl, -clip, clip)
        clear_level = self.clear_fraction * 2.0 * k  # a share of delta
        rose = only(~on & (new > h))
        n = pick(np.where(on & (lvl_new < clear_level), n + 1, 0), n)
        fell = only(on & (n >= self.clear_samples))
        on2 = (on | rose) & ~fell
        new = np.where(fell, 0.0, np.where(on2, np.minimum(new, h), new))
        s[f"{p}cusum"][ix] = pick(new, cus)
        s[f"{p}level"][ix] = pick(lvl_new, lvl)
        s[f"{p}start"][ix] = start
        s[f"{p}on"][ix] = on2
        s[f"{p}clear_n"][ix] = np.where(on2, n, 0)
        s[f"{p}since"][ix] = np.where(rose, start, np.where(on2, since, 0.0))
        return StepResult(on2, rose, fell)

    def force_off(self, s: dict[str, np.ndarray], ix: Index) -> None:
        """Drop a raised condition without its clear run (e.g. the check no longer applies)."""
        p = self.prefix
        for name, value in (("cusum", 0.0), ("on", False), ("clear_n", 0), ("since", 0.0)):
            s[f"{p}{name}"][ix] = value

    def confidence(
        self, s: dict[str, np.ndarray], ix: Index, delta: F64 | float, sigma: F64
    ) -> F64:
        """How sure the raised condition is real and relevant, in [0, 1] (NaN when off)."""
        p = self.prefix
        _, h, _ = self.thresholds(delta, sigma)
        d = np.broadcast_to(np.asarray(delta, dtype=np.float64), np.shape(sigma))
        m = s[f"{p}cusum"][ix] / h + np.maximum(s[f"{p}level"][ix], 0.0) / d
        return np.where(s[f"{p}on"][ix], confidence(m), np.nan)


def confidence(margin: F64) -> F64:
    """Map a margin (0 at nothing, 1 at a threshold, more beyond) to (0, 1).

    ``1 - exp(-margin)``: ~0.63 at exactly one threshold's worth of evidence, 0.86 at two,
    0.95 at three. Detectors feed it the sum of their test statistics over thresholds.
    """
    return 1.0 - np.exp(-np.maximum(np.asarray(margin, dtype=np.float64), 0.0))


_DAY_S = 86_400.0
RISE_LEARN_POINTS = 21  # points (days) that give a device's own spread and level


class RiseTest:
    """A one-sided test for sustained *growth* of ``z`` (a log ratio), not for its level.

    ``ChangeTest`` raises once ``z`` has moved by a relevant shift; a gradual degradation
    gets there late. This test raises on the rate. ``z`` is averaged into points of
    ``bucket_s`` of event time (a day: daily cycles average out), as the log of the mean
    ratio ``exp(z)``: averaging the ratio, not its log, keeps a point honest on a coarse
    sensor whose readings sit on a few quantisation steps (the mean of rounded readings
    follows the true mean; the mean of their logs swings with the share on each step).
    A CUSUM runs on the point-to-point increments against an allowed growth ``k_per_day``:
    ``S = max(0, S + clip(dz) - k * dt)``. ``S`` telescopes to the largest rise from any
    earlier point beyond ``k`` per elapsed day, so growth slower than ``k`` (wear creep,
    seasons) never accumulates however long it goes on, and the point the excursion rose
    from dates where the growth began (``since``) and gives its rate.

    Guards: the device's first ``RISE_LEARN_POINTS`` points give its own spread ``sigma``
    and reference level ``m0`` (median absolute deviation and median: one odd day does not
    move them), both then frozen like a baseline; ``sigma`` is floored by the point's own
    standard error (its samples' spread over their count: a few learning points can look
    quieter than the device is); ``h = max(h_sigmas * sigma, h_min)``; an
    increment is clipped to ``h``, so one jump (a step, a burst of spikes) cannot raise
    the test alone: it needs growth over at least two points; and the point
    must be above ``m0 + level_min`` by three of its spreads: an oscillation or a noisy
    device that goes up and down around its level is not a rising leak. The test clears
    once ``S`` is back at zero (no growth beyond ``k`` for about ``h / k`` days); while
    raised ``S`` is capped at ``h``.
    """

    def __init__(
        self,
        prefix: str,
        *,
        k_per_day: float,
        level_min: float,
        h_sigmas: float = 8.0,
        h_min: float = 0.05,
        bucket_s: float = _DAY_S,
        bucket_min_samples: int = 4,
    ) -> None:
        if not (k_per_day > 0 and h_min > 0 and h_sigmas >= 0 and bucket_s > 0):
            raise ValueError("need k_per_day > 0, h_min > 0, h_sigmas >= 0, bucket_s > 0")
        self.prefix = prefix
        self.k_per_day = k_per_day
        self.level_min = level_min
        self.h_sigmas = h_sigmas
        self.h_min = h_min
        self.bucket_s = bucket_s
        self.bucket_min_samples = bucket_min_samples

    def spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64, i32 = np.dtype(np.float64), np.dtype(np.int32)
        p = self.prefix
        return {
            # the point being filled: samples, first time, sums of time offsets and exp(z)
            f"{p}bn": (i32, (), 0),
            f"{p}bt0": (f64, (), 0.0),
            f"{p}bsum_dt": (f64, (), 0.0),
            f"{p}bsum_e": (f64, (), 0.0),
            f"{p}bsum_e2": (f64, (), 0.0),
            f"{p}points": (i32, (), 0),  # closed points, counted up to learning's end
            f"{p}m": (f64, (), 0.0),  # newest point: log mean ratio and mean time
            f"{p}mt": (f64, (), 0.0),
            f"{p}learn": (np.dtype(np.float32), (RISE_LEARN_POINTS,), 0.0),
            f"{p}sigma": (f64, (), 0.0),  # 0 while learning
            f"{p}m0": (f64, (), 0.0),  # reference level
            f"{p}h": (f64, (), 0.0),  # decision interval at the newest point
            f"{p}cusum": (f64, (), 0.0),
            f"{p}ref_m": (f64, (), 0.0),  # the point the current excursion rises from
            f"{p}ref_t": (f64, (), 0.0),
            f"{p}on": (np.dtype(np.bool_), (), False),
            f"{p}since": (f64, (), 0.0),
        }

    def threshold(self, sigma: F64) -> F64:
        return np.maximum(self.h_sigmas * sigma, self.h_min)

    def testing(self, s: dict[str, np.ndarray], ix: Index) -> npt.NDArray[np.bool_]:
        """Spread and reference learnt: the test runs."""
        return s[f"{self.prefix}points"][ix] >= RISE_LEARN_POINTS

    def step(self, s: dict[str, np.ndarray], ix: npt.NDArray[np.int64], z: F64, t: F64) -> None:
        """Add one sample to each of ``ix`` (distinct); test the points that close."""
        p = self.prefix
        n = s[f"{p}bn"][ix] + 1
        t0 = np.where(n == 1, t, s[f"{p}bt0"][ix])
        sum_dt = s[f"{p}bsum_dt"][ix] + (t - t0)
        e = np.exp(z)
        sum_e = s[f"{p}bsum_e"][ix] + e
        sum_e2 = s[f"{p}bsum_e2"][ix] + e * e
        close = (t - t0 >= self.bucket_s) & (n >= self.bucket_min_samples)
        s[f"{p}bn"][ix] = np.where(close, 0, n)
        s[f"{p}bt0"][ix] = t0
        s[f"{p}bsum_dt"][ix] = np.where(close, 0.0, sum_dt)
        s[f"{p}bsum_e"][ix] = np.where(close, 0.0, sum_e)
        s[f"{p}bsum_e2"][ix] = np.where(close, 0.0, sum_e2)
        if close.any():
            c = ix[close]
            nc = n[close]
            mean = sum_e[close] / nc
            var = np.maximum(sum_e2[close] / nc - mean * mean, 0.0) / (nc - 1)
            # the point's own standard error, relative: a floor for the device's spread
            se = np.sqrt(var) / mean
            self._point(s, c, np.log(mean), t0[close] + sum_dt[close] / nc, se)

    def _point(
        self, s: dict[str, np.ndarray], c: npt.NDArray[np.int64], m: F64, mt: F64, floor: F64
    ) -> None:
        p = self.prefix
        k_learn = RISE_LEARN_POINTS
        pts = s[f"{p}points"][c]
        learning = pts < k_learn
        if learning.any():
            lc, lp = c[learning], pts[learning]
            s[f"{p}learn"][lc, lp] = m[learning]
            done = lp == k_learn - 1
            if done.any():
                dc = lc[done]
                buf = s[f"{p}learn"][dc].astype(np.float64)
                med = np.median(buf, axis=1)
                s[f"{p}m0"][dc] = med
                s[f"{p}sigma"][dc] = np.median(np.abs(buf - med[:, None]), axis=1) / 0.6745
        testing = ~learning
        if testing.any():
            tc = c[testing]
            mt_ = m[testing]
            sigma = np.maximum(s[f"{p}sigma"][tc], floor[testing])
            h = self.threshold(sigma)
            dz = mt_ - s[f"{p}m"][tc]
            dt_days = np.maximum(mt[testing] - s[f"{p}mt"][tc], 0.0) / _DAY_S
            cus = s[f"{p}cusum"][tc]
            on = s[f"{p}on"][tc]
            new = np.maximum(cus + np.clip(dz, -h, h) - self.k_per_day * dt_days, 0.0)
            started = (cus <= 0) & (new > 0)
            s[f"{p}ref_m"][tc] = np.where(started, s[f"{p}m"][tc], s[f"{p}ref_m"][tc])
            s[f"{p}ref_t"][tc] = np.where(started, s[f"{p}mt"][tc], s[f"{p}ref_t"][tc])
            high = mt_ - s[f"{p}m0"][tc] > self.level_min + 3.0 * sigma
            rose = ~on & (new > h) & high
            fell = on & (new <= 0)
            on2 = (on | rose) & ~fell
            s[f"{p}cusum"][tc] = np.where(on2, np.minimum(new, h), new)
            s[f"{p}on"][tc] = on2
            s[f"{p}h"][tc] = h
            since = s[f"{p}since"][tc]
            s[f"{p}since"][tc] = np.where(rose, s[f"{p}ref_t"][tc], np.where(on2, since, 0.0))
        s[f"{p}points"][c] = np.minimum(pts + 1, k_learn)
        s[f"{p}m"][c] = m
        s[f"{p}mt"][c] = mt

    def rate_per_day(self, s: dict[str, np.ndarray], ix: Index) -> F64:
        """Growth of ``z`` per day since the current excursion began (NaN outside one)."""
        p = self.prefix
        days = (s[f"{p}mt"][ix] - s[f"{p}ref_t"][ix]) / _DAY_S
        active = (s[f"{p}cusum"][ix] > 0) & (days > 0)
        return np.where(
            active, (s[f"{p}m"][ix] - s[f"{p}ref_m"][ix]) / np.where(active, days, 1.0), np.nan
        )
