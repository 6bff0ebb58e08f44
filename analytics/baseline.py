"""Learning a device's own normal, vectorised over devices: robust levels and regressions.

* ``robust_level`` turns a commissioning buffer (one row per device) into a median and a
  robust spread. The spread is the larger of 1.4826 * MAD and 1.2533 * the mean absolute
  deviation of the central 90 %: both estimate sigma for normal data, and the second does
  not collapse to zero for quantised readings (a tight seat reading 0.00 or 0.01 mm³/s),
  where the MAD does and would make every other reading look like a huge change.
* ``Regression`` learns y = x . beta per device (and channel) from running sums of the
  normal equations during commissioning: O(p²) floats per device however long the
  commissioning lasts, solved once for all devices that finish in a step. It is how
  actuation and pump readings are compared at a comparable operating point (differential
  pressure, speed) instead of against one number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Regression", "robust_level"]

F64 = npt.NDArray[np.float64]
Index = Any

_MAD_TO_SIGMA = 1.4826
_MEANAD_TO_SIGMA = 1.2533  # sqrt(pi / 2)


def robust_level(buf: np.ndarray, floor: float | F64) -> tuple[F64, F64]:
    """Median and robust spread of each row of ``buf`` (rows are devices)."""
    x = np.asarray(buf, dtype=np.float64)
    med = np.median(x, axis=1)
    dev = np.sort(np.abs(x - med[:, None]), axis=1)
    mad = dev[:, (x.shape[1] - 1) // 2]
    central = dev[:, : max(1, round(0.9 * x.shape[1]))]
    sigma = np.maximum(_MAD_TO_SIGMA * mad, _MEANAD_TO_SIGMA * central.mean(axis=1))
    return med, np.maximum(sigma, floor)


class Regression:
    """Per-element linear regression from normal-equation sums (state under ``prefix``)."""

    def __init__(self, prefix: str, n_features: int, *, ridge: float = 1e-3) -> None:
        self.prefix = prefix
        self.p = n_features
        self.ridge = ridge

    def spec(
        self, shape: tuple[int, ...] = ()
    ) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64, p = np.dtype(np.float64), self.p
        return {
            f"{self.prefix}xtx": (f64, (*shape, p, p), 0.0),
            f"{self.prefix}xty": (f64, (*shape, p), 0.0),
            f"{self.prefix}yy": (f64, shape, 0.0),
            f"{self.prefix}n": (np.dtype(np.int32), shape, 0),
            f"{self.prefix}beta": (f64, (*shape, p), 0.0),
            f"{self.prefix}sigma": (f64, shape, 0.0),
        }

    def accumulate(self, s: dict[str, np.ndarray], ix: Index, x: F64, y: F64) -> None:
        """Add one observation (row of ``x``, value of ``y``) to each element ``ix``."""
        p = self.prefix
        s[f"{p}xtx"][ix] += x[:, :, None] * x[:, None, :]
        s[f"{p}xty"][ix] += x * y[:, None]
        s[f"{p}yy"][ix] += y * y
        s[f"{p}n"][ix] += 1

    def solve(self, s: dict[str, np.ndarray], ix: Index, sigma_floor: float | F64) -> None:
        """Fit beta and the residual spread for elements ``ix`` from their sums."""
        p = self.prefix
        xtx = s[f"{p}xtx"][ix]
        xty = s[f"{p}xty"][ix]
        n = s[f"{p}n"][ix].astype(np.float64)
        # Ridge on the slopes only (not the intercept, column 0), scaled with n, so a
        # covariate that never varied during commissioning gets slope 0, not a blow-up.
        reg = np.eye(self.p) * (self.ridge * np.maximum(n, 1.0))[:, None, None]
        reg[:, 0, 0] = 1e-12
        beta = np.linalg.solve(xtx + reg, xty[..., None])[..., 0]
        rss = s[f"{p}yy"][ix] - 2 * np.einsum("ij,ij->i", beta, xty)
        rss += np.einsum("ij,ijk,ik->i", beta, xtx, beta)
        dof = np.maximum(n - self.p, 1.0)
        s[f"{p}beta"][ix] = beta
        s[f"{p}sigma"][ix] = np.maximum(np.sqrt(np.maximum(rss, 0.0) / dof), sigma_floor)

    def predict(self, s: dict[str, np.ndarray], ix: Index, x: F64) -> F64:
        return np.einsum("ij,ij->i", s[f"{self.prefix}beta"][ix], x)
