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

__all__ = ["ChangeTest", "StepResult", "change_test_params", "confidence"]

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
