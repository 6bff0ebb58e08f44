"""Warm-up at the start of a recording: filters settling, a temperature reading 0 at first.

Rows are cut into blocks; each channel's block means over a settled reference stretch (the
blocks from ``max_share`` to twice that of the file) get a straight line, so a slow drift
is not taken for warm-up, and a tolerance of four robust spreads of the block means about
that line (at least one quantum of the channel). A channel is warming up while its blocks
from the first one on lie outside the tolerance of the line extended back; its warm-up
ends at the first block from which every block up to ``max_share`` is inside. A channel
whose first block is already inside has none. The recording's warm-up is the longest.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.resolution import resolution

__all__ = ["Warmup", "detect_warmup"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Warmup:
    rows: int  # rows from the start that are warm-up
    by_channel: dict[str, int]  # channels with a warm-up -> its rows


def detect_warmup(
    x: F64,
    names: list[str],
    *,
    max_share: float = 0.25,
    blocks: int = 400,
    total_rows: int | None = None,
) -> Warmup:
    """Warm-up rows of ``x`` (rows in time order, one column per channel); ``x`` may be
    the head of a recording of ``total_rows`` rows that covers ``2 * max_share`` of it."""
    p = x.shape[1]
    n = x.shape[0] if total_rows is None else total_rows
    size = max(5, n // blocks)
    nb = n // size
    b_max = int(max_share * nb)
    if b_max < 2 or len(x) < 2 * b_max * size:
        return Warmup(0, {})
    head = x[: 2 * b_max * size].reshape(2 * b_max, size, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-empty block is NaN
        means = np.nanmean(head, axis=1)  # (blocks, channels)
    by_channel: dict[str, int] = {}
    ref_b = np.arange(b_max, 2 * b_max, dtype=np.float64)
    for j, name in enumerate(names):
        m = means[:, j]
        ref = m[b_max:]
        ok = np.isfinite(ref)
        if ok.sum() < 3 or not np.isfinite(m[0]):
            continue
        slope, icpt = np.polyfit(ref_b[ok], ref[ok], 1)
        resid = ref[ok] - (icpt + slope * ref_b[ok])
        spread = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        tol = max(4.0 * spread, resolution(x[: 2 * b_max * size, j]), 1e-12)
        line = icpt + slope * np.arange(b_max)
        off = ~(np.abs(m[:b_max] - line) <= tol)  # NaN blocks count as off
        if not off[0]:
            continue
        # the first block from which every block up to b_max is inside
        by_channel[name] = (int(np.flatnonzero(off).max()) + 1) * size
    return Warmup(max(by_channel.values(), default=0), by_channel)
