"""A channel's resolution (its quantum) and a spread that cannot fall below it.

Real sensors report levels: ADC steps, a pressure transmitter in 0.1 bar, a flow meter
with integer output. When most readings of such a channel sit on one level, the median
absolute deviation is zero and the standard deviation tiny, so a one-step change looks
like tens of sigmas and the channel drowns every other one. Two estimates stop that:

* ``resolution``: the smallest step between distinct values (ignoring float noise below
  1e-9 of the values' magnitude); 0 for a channel that never changes.
* ``robust_scale``: the largest of 1.4826 x MAD, the 90th percentile of the absolute
  deviation over its normal value 1.645 (a channel whose readings sit on one level 85 % of
  the time still has a spread from the other 15 %), the noise seen in first differences,
  and half a quantum (the largest noise that can still hide on one level).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["resolution", "robust_scale"]

F64 = npt.NDArray[np.float64]

_MAD_TO_SIGMA: Final = 1.4826
_Q90_TO_SIGMA: Final = 1.0 / 1.6449
_MAX_DISTINCT: Final = 100_000


def resolution(x: npt.ArrayLike) -> float:
    """The smallest step between the distinct finite values of ``x`` (0 if one value)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) > _MAX_DISTINCT:
        v = v[:: len(v) // _MAX_DISTINCT + 1]
    u = np.unique(v)
    if len(u) < 2:
        return 0.0
    steps = np.diff(u)
    tiny = 1e-9 * max(float(np.max(np.abs(u))), 1e-300)
    steps = steps[steps > tiny]
    return float(steps.min()) if len(steps) else 0.0


def robust_scale(x: npt.ArrayLike, quantum: float | None = None) -> tuple[float, float]:
    """(median, spread) of the finite values of ``x`` with the floors above."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 0.0
    q = resolution(v) if quantum is None else quantum
    med = float(np.median(v))
    dev = np.abs(v - med)
    mad = _MAD_TO_SIGMA * float(np.median(dev))
    q90 = _Q90_TO_SIGMA * float(np.quantile(dev, 0.9))
    d = np.diff(v)
    noise = (
        _MAD_TO_SIGMA * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2) if len(d) else 0.0
    )
    return med, max(mad, q90, noise, 0.5 * q)
