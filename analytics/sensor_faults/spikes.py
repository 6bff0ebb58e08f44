"""Spiking: a sensor whose outliers came too often, judged in its operating state.

A Hampel filter over the last ``window`` readings taken in the same operating state
(valve position in 5 % steps, pump running or not: an opening is not a p_out spike)
marks a reading more than ``k`` robust sigmas from their median (the sigma floored by
the lower quartile of the steps in the window, so a ramp is not a spike, and by the
typical step learned in training, so a quantised sensor is not); the sensor is faulty
when the rate of such readings (EWMA, weight ``alpha``) exceeds both ``rate`` and three
times its training rate (half that to stay on). Single spikes are not a fault (the seal
detectors clip them); the outliers of a spiking sensor are withheld from the seal
detectors. NAMUR NE 107: ``maintenance_required``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from analytics.base import F64, I64, SampleBatch
from analytics.sensor_faults.screen import SPIKING, Bool, Spec, State, Step, count_dtype

__all__ = ["SpikeScreen", "batcher"]


# Windows up to this many readings are ranked by a comparator network over whole
# (device, channel) columns; np.partition along a short last axis pays a call per row.
_NETWORK_MAX = 15


def batcher(n: int) -> list[tuple[int, int]]:
    """Comparators of Batcher's odd-even merge sort for ``n`` inputs (padded to a power
    of two; a comparator touching the padding is dropped, as the padding is +inf)."""
    p = 1 << max(n - 1, 0).bit_length()
    out: list[tuple[int, int]] = []
    k = 1
    while k < p:
        j = k
        while j >= 1:
            for i in range(j % k, p - j, 2 * j):
                for m in range(min(j, p - i - j)):
                    a, b = i + m, i + m + j
                    if a // (2 * k) == b // (2 * k) and b < n:
                        out.append((a, b))
            j //= 2
        k *= 2
    return out


def _kth_of_two(lo: list[np.ndarray], hi: list[np.ndarray], k: int) -> np.ndarray:
    """The ``k``-th smallest (1-based) of two ascending lists of equal-shape arrays."""
    best: np.ndarray | None = None
    tmp = np.empty_like(lo[0])
    for i in range(max(0, k - len(hi)), min(k, len(lo)) + 1):
        if i == 0:
            cand = hi[k - 1]
        elif i == k:
            cand = lo[k - 1]
        else:
            cand = np.maximum(lo[i - 1], hi[k - i - 1], out=tmp)
        best = cand.copy() if best is None else np.minimum(best, cand, out=best)
    assert best is not None
    return best


def window_stats(ring: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, MAD, ``q``-th smallest step between consecutive readings) of each window
    along the last axis of ``ring``, oldest reading first."""
    w = ring.shape[-1]
    if w > _NETWORK_MAX:
        h = w // 2
        part = np.partition(ring, (h - 1, h), axis=-1)
        med = part[..., h] if w % 2 else 0.5 * (part[..., h - 1] + part[..., h])
        dev = np.partition(np.abs(ring - med[..., None]), (h - 1, h), axis=-1)
        mad = dev[..., h] if w % 2 else 0.5 * (dev[..., h - 1] + dev[..., h])
        steps = np.abs(np.diff(ring, axis=-1))
        return med, mad, np.partition(steps, q, axis=-1)[..., q]
    # One array per position in the window: at first views of ``ring`` (never written),
    # each replaced by a contiguous buffer of its own once a comparator touches it (no
    # transposed copy); ufuncs write into spare buffers, as allocating a fresh array per
    # comparator costs more than the comparison.
    col = [ring[..., i] for i in range(w)]
    own = [False] * w
    spare: list[np.ndarray] = []

    def buffer() -> np.ndarray:
        return spare.pop() if spare else np.empty(ring.shape[:-1], dtype=ring.dtype)

    # the q+1 smallest steps, kept ascending by insertion
    low = [np.full(ring.shape[:-1], np.inf, dtype=ring.dtype) for _ in range(q + 1)]
    d, tmp = buffer(), buffer()
    for i in range(w - 1):
        np.subtract(col[i + 1], col[i], out=d)
        np.abs(d, out=d)
        for j in range(q + 1):
            np.minimum(low[j], d, out=tmp)
            np.maximum(low[j], d, out=d)
            low[j], tmp = tmp, low[j]
    spare += [d, tmp]
    for a, b in batcher(w):
        lo = np.minimum(col[a], col[b], out=buffer())
        if own[b]:
            np.maximum(col[a], col[b], out=col[b])
        else:
            col[b], own[b] = np.maximum(col[a], col[b], out=buffer()), True
        if own[a]:
            spare.append(col[a])
        col[a], own[a] = lo, True
    h = w // 2
    # the deviations from the median, ascending on either side of it
    if w % 2:
        med = col[h]
        below = [np.subtract(med, col[i], out=col[i]) for i in range(h - 1, -1, -1)]
        above = [np.subtract(col[i], med, out=col[i]) for i in range(h + 1, w)]
        mad = _kth_of_two(below, above, h)  # the median deviation is 0 at col[h]: skip it
    else:
        med = 0.5 * (col[h - 1] + col[h])
        below = [np.subtract(med, col[i], out=col[i]) for i in range(h - 1, -1, -1)]
        above = [np.subtract(col[i], med, out=col[i]) for i in range(h, w)]
        mad = 0.5 * (_kth_of_two(below, above, h) + _kth_of_two(below, above, h + 1))
    return med, mad, low[q]


def _median_bounds(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) with lo <= median <= hi of each window along the last axis of ``ring``.

    Any k = w // 2 + 1 readings of a window of w hold one at or below the median's lower
    order statistic and one at or above its upper one, so the median lies within the span
    of the first k readings and within that of the last k: within their intersection.
    """
    w = ring.shape[-1]
    k = w // 2 + 1
    bounds = []
    for first in (0, w - k):
        lo = ring[..., first].copy()
        hi = lo.copy()
        for i in range(first + 1, first + k):
            np.minimum(lo, ring[..., i], out=lo)
            np.maximum(hi, ring[..., i], out=hi)
        bounds.append((lo, hi))
    (lo_a, hi_a), (lo_b, hi_b) = bounds
    return np.maximum(lo_a, lo_b, out=lo_a), np.minimum(hi_a, hi_b, out=hi_a)


class SpikeScreen:
    name: ClassVar[str] = "spiking"
    code: ClassVar[int] = SPIKING

    def __init__(
        self,
        *,
        channels: int,
        window: int = 7,
        k: float = 8.0,
        rate: float = 0.15,
        alpha: float = 0.02,
        train_samples: int = 96,
    ) -> None:
        if window < 3 or k <= 0 or not 0 < rate < 1 or not 0 < alpha <= 1:
            raise ValueError("need window >= 3, k > 0, rate in (0, 1), alpha in (0, 1]")
        self.n_channels = channels
        self.window = window
        self.k = k
        self.rate = rate
        self.alpha = alpha
        self.train_samples = train_samples

    def state_spec(self) -> Spec:
        f32, i32 = np.dtype(np.float32), np.dtype(np.int32)
        n_dt = count_dtype(self.train_samples)
        c = (self.n_channels,)
        return {
            "hampel_n": (n_dt, c, 0),  # training readings judged
            "hampel_out_n": (n_dt, c, 0),  # of them outliers
            # the window's readings, oldest first (renamed from ``ring``, which was
            # circular: state saved in that layout is refused)
            "spike_window": (f32, (*c, self.window), 0.0),
            "spike_window_n": (np.dtype(np.int8), c, 0),  # readings in it, up to window
            "spike_ewma": (f32, c, 0.0),
            "step_scale": (f32, c, 0.0),  # typical |step| between readings, from training
            "regime": (i32, (), -1),  # operating state of the newest sample
        }

    def prepare(self, batch: SampleBatch) -> np.ndarray:
        # Operating state: valve position in 5 % steps, pump stopped/running. A window
        # never straddles a change of it. -1 / 2: not in this sample, the previous holds.
        pos, speed = batch.signal("position_pct"), batch.signal("speed_rpm")
        pos_code = np.where(np.isfinite(pos), np.round(np.nan_to_num(pos) / 5.0), -1)
        run_code = np.where(np.isnan(speed), 2, (speed > 0).astype(np.int64))
        return np.stack([pos_code, run_code], axis=1).astype(np.int64)

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> Bool:
        assert inputs is not None
        slots, present, x32, tr = st.slots, st.present, st.x32, st.tr
        last = s["regime"][slots]
        pos_code = np.where(inputs[:, 0] >= 0, inputs[:, 0], last // 3)
        run_code = np.where(inputs[:, 1] < 2, inputs[:, 1], last % 3)
        code = (pos_code * 3 + run_code).astype(np.int32)
        moved = code != last
        s["regime"][slots] = code
        ring = s["spike_window"][slots]
        ring_n = s["spike_window_n"][slots]
        if moved.any():  # (rare: the operating state changed)
            ring_n = np.where(moved[:, None], 0, ring_n)
        full = ring_n >= self.window
        sc = s["step_scale"][slots]
        judged = present & full
        spike = np.zeros(present.shape, dtype=bool)
        # Only a reading farther than k x the learned step from where the window's median
        # can be is an outlier candidate (the scale is at least that step; the rounding
        # of the float32 arithmetic below keeps the order). Most readings are ruled out
        # by that alone; the order statistics are worked out for the rest.
        lo, hi = _median_bounds(ring)
        np.minimum(lo, x32, out=lo)
        np.maximum(hi, x32, out=hi)
        np.subtract(hi, lo, out=hi)
        # (row, channel) pairs as flat indices: one index array to gather with, not two
        cand = np.flatnonzero(judged & (hi > self.k * sc))
        if len(cand):
            # The lower quartile of the steps between consecutive readings floors the
            # scale, so a sensor on a steady ramp (a daily temperature swing) is not read
            # as spiking,
            windows = ring.reshape(-1, self.window)[cand]
            med, mad, low_step = window_stats(windows, (self.window - 2) // 4)
            # and the step size learned in training floors it, so a quantised sensor whose
            # window happens to hold one value is not read as spiking on its next tick
            csc = sc.reshape(-1)[cand]
            floor = np.maximum(csc, 1e-3 * np.abs(med) + 1e-9)
            scale = np.maximum(np.maximum(1.4826 * mad, low_step), floor)
            spike.reshape(-1)[cand] = np.abs(x32.reshape(-1)[cand] - med) > self.k * scale
        if tr.any():  # training: the outlier rate and the step size are learned
            s["hampel_n"][slots] += tr & judged
            s["hampel_out_n"][slots] += tr & spike
            step = np.abs(x32 - ring[:, :, -1])
            learn = tr & present & (ring_n > 0)
            # EWMA of the step, each step clipped at 5x the current estimate (spikes in
            # training do not inflate it)
            clipped = np.where(sc > 0, np.minimum(step, 5.0 * sc), step)
            sc_new = np.where(learn, sc + 0.1 * (clipped - sc), sc)
            s["step_scale"][slots] = sc_new.astype(np.float32)
        # shift in place (``ring`` is a view of the state): all readings present is usual
        all_present = bool(present.all())
        if all_present and ring.flags.c_contiguous:
            # the whole block one element to the left (one overlapping move): each window
            # gets its next reading, and its last slot, the next window's first, is
            # overwritten by the new reading
            flat = ring.reshape(-1)
            flat[:-1] = flat[1:]
            ring[:, :, -1] = x32
        elif all_present:
            for i in range(self.window - 1):
                ring[:, :, i] = ring[:, :, i + 1]
            ring[:, :, -1] = x32
        else:
            pr, pc = np.nonzero(present)
            ring[pr, pc, :-1] = ring[pr, pc, 1:]
            ring[pr, pc, -1] = x32[pr, pc]
        grown = np.minimum(ring_n + 1, self.window)
        s["spike_window_n"][slots] = grown if all_present else np.where(present, grown, ring_n)
        ewma = s["spike_ewma"][slots]
        s["spike_ewma"][slots] = np.where(judged, ewma + self.alpha * (spike - ewma), ewma).astype(
            np.float32
        )
        st.outliers = spike

        # the threshold is at least half ``rate``: worked out only above that
        ewma = s["spike_ewma"][slots]
        high = (ewma > 0.5 * self.rate) & st.trained
        out = np.zeros(present.shape, dtype=bool)
        if high.any():
            r, c = np.nonzero(high)
            base_rate = (s["hampel_out_n"][slots][r, c] + 1.0) / (s["hampel_n"][slots][r, c] + 2.0)
            threshold = np.maximum(self.rate, 3.0 * base_rate)
            on = np.where(st.fault[r, c] == SPIKING, 0.5, 1.0)  # hysteresis
            out[r, c] = ewma[r, c] > on * threshold
        return out

    def withheld(self, st: Step) -> Bool:
        # Single spikes stay: every seal detector clips its increments, and withholding
        # them would also withhold the first samples of a real step.
        return st.outliers & (st.latched == SPIKING)

    def explain(self, s: State, rows: I64, channel: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        rate = s["spike_ewma"][rows, channel].astype(np.float64)
        return rate / self.rate, {
            "spike_rate": np.where(shown, rate, np.nan),
            "spike_rate_limit": np.where(shown, self.rate, np.nan),
        }

    def describe(self, e: dict[str, Any], since: str) -> str:
        return (
            f"Sensor {e['channel']} spiking: {100 * e['spike_rate']:.0f} % outliers since "
            f"{since}: check the instrument and its cabling"
        )
