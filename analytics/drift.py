"""A location that follows slow normal drifts of a fitted model, and not faults.

Fluid and casing temperatures rise a degree or two over a test run with nothing wrong;
a model fitted at the start reads that as a fault on every later row. The location of
each channel therefore follows an exponentially weighted mean with a time constant of
``tau_rows`` rows, fed only with rows that score below the alarm threshold: a step fault
scores above it from its first row and is never learned. The adaptation rate is bounded
by construction: an accepted row is within sqrt(threshold) sigmas of the location, so the
location moves at most sqrt(threshold) / tau_rows sigmas per row. A fault slower than
that is absorbed; ``offset_sigma`` says how far each channel was followed, so a reader
sees it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DriftTracker"]

F64 = npt.NDArray[np.float64]


class DriftTracker:
    """``update(x_block, score_block)`` after scoring each block at ``location``."""

    def __init__(
        self, location: F64, scale: F64, *, tau_rows: float, accept_below: float = 1.0
    ) -> None:
        if tau_rows < 1:
            raise ValueError("tau_rows >= 1")
        self.start = np.array(location, dtype=np.float64)
        self.location = self.start.copy()
        self.scale = np.asarray(scale, dtype=np.float64)
        self.keep = 1.0 - 1.0 / tau_rows
        self.accept_below = accept_below

    def update(self, x: F64, score: F64) -> None:
        ok = np.isfinite(score) & (score < self.accept_below)
        if not ok.any():
            return
        xs = x[ok]
        present = np.isfinite(xs)
        m = present.sum(axis=0)
        mean = np.where(present, xs, 0.0).sum(axis=0) / np.maximum(m, 1)
        # m rows at once: the weight the block's mean would get row by row
        weight = 1.0 - self.keep**m
        self.location = np.where(m > 0, self.location + weight * (mean - self.location),
                                 self.location)  # fmt: skip

    @property
    def offset_sigma(self) -> F64:
        return (self.location - self.start) / self.scale
