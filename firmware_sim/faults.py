"""Sensor faults: drift, stuck value, spikes and dropouts, which are not seal failures.

Episodes are drawn per device up front (a Poisson process, ``MAX_EPISODES`` of them), so
the same seed gives the same faults however long the run. Each hits one sensor: the leak
sensor (``leak_mm3s``) or the line pressure sensor (``p_in_kpa``).

* drift: an additive offset growing linearly (zero drift of the sensor element) until
  recalibration, i.e. to the end of any run. On the leak sensor it does not scale with ΔP
  the way a real seat leak does (Q = C·ΔPⁿ), which is how a detector can tell.
* stuck: the reading freezes at its value when the fault started.
* spikes: single wild readings (EMI, air bubbles) on a share of samples.
* dropout: the reading is missing; the device notices and reports a ``sensor_fault``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["FAULT_KINDS", "MAX_EPISODES", "SENSORS", "FaultPlan", "apply_faults", "draw_faults"]

F64 = npt.NDArray[np.float64]

FAULT_KINDS: Final = ("drift", "stuck", "spikes", "dropout")
SENSORS: Final = ("leak", "pressure")
MAX_EPISODES: Final = 3
_YEAR_S: Final = 365.25 * 86_400.0
# episode length in days, by kind (drift lasts until recalibration)
_DURATION_DAYS: Final = {"stuck": (1.0, 14.0), "spikes": (1.0, 30.0), "dropout": (0.25, 5.0)}
_SPIKE_PROBABILITY: Final = 0.08


class FaultPlan:
    """Struct-of-arrays of fault episodes, shape (devices, MAX_EPISODES); start inf = none."""

    def __init__(self, n: int) -> None:
        self.start_t = np.full((n, MAX_EPISODES), np.inf)
        self.end_t = np.full((n, MAX_EPISODES), np.inf)
        self.kind = np.zeros((n, MAX_EPISODES), dtype=np.int8)  # index into FAULT_KINDS
        self.sensor = np.zeros((n, MAX_EPISODES), dtype=np.int8)  # index into SENSORS
        self.rate = np.zeros((n, MAX_EPISODES))  # drift: units per day; spikes: size
        self.stuck_value = np.full((n, MAX_EPISODES), np.nan)

    def episodes(self, i: int, until_t: float) -> list[tuple[str, str, float, float | None]]:
        out = []
        for k in range(MAX_EPISODES):
            if self.start_t[i, k] <= until_t:
                end = float(self.end_t[i, k])
                out.append(
                    (
                        SENSORS[self.sensor[i, k]],
                        FAULT_KINDS[self.kind[i, k]],
                        float(self.start_t[i, k]),
                        None if not np.isfinite(end) else end,
                    )
                )
        return out


def draw_faults(
    rng: np.random.Generator,
    *,
    n: int,
    start_t: float,
    per_year: float,
    leak_scale: F64,
    pressure_scale: F64,
) -> FaultPlan:
    """Draw episodes; ``*_scale`` set drift rates and spike sizes per device (its readings)."""
    plan = FaultPlan(n)
    gaps_s = rng.exponential(1.0, (n, MAX_EPISODES)) * (_YEAR_S / per_year if per_year else 1.0)
    kinds = rng.integers(0, len(FAULT_KINDS), (n, MAX_EPISODES))
    sensors = rng.integers(0, len(SENSORS), (n, MAX_EPISODES))
    lengths = rng.uniform(0.0, 1.0, (n, MAX_EPISODES))
    rates = rng.uniform(0.5, 1.5, (n, MAX_EPISODES))
    if per_year <= 0:
        return plan
    t = np.full(n, start_t)
    for k in range(MAX_EPISODES):
        start = t + gaps_s[:, k]
        kind = kinds[:, k]
        lo = np.array([_DURATION_DAYS.get(f, (0.0, 0.0))[0] for f in FAULT_KINDS])[kind]
        hi = np.array([_DURATION_DAYS.get(f, (0.0, 0.0))[1] for f in FAULT_KINDS])[kind]
        end = np.where(kind == 0, np.inf, start + (lo + (hi - lo) * lengths[:, k]) * 86_400.0)
        plan.start_t[:, k] = start
        plan.end_t[:, k] = end
        plan.kind[:, k] = kind
        plan.sensor[:, k] = sensors[:, k]
        scale = np.where(sensors[:, k] == 0, leak_scale, pressure_scale)
        # drift per day: a few % of the typical reading; spikes: 5-50x / +30-150 % of it
        plan.rate[:, k] = np.where(kind == 0, 0.03 * scale * rates[:, k], scale * rates[:, k])
        t = np.where(np.isfinite(end), end, start)
    return plan


def apply_faults(
    plan: FaultPlan,
    rng: np.random.Generator,
    t: F64,
    readings: dict[str, F64],
    *,
    rows: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.bool_]:
    """Corrupt measured readings (devices x samples) in place; True where a dropout hit.

    ``rows`` are the device slots the rows of ``t`` belong to (default: all, in order).
    """
    idx = np.arange(t.shape[0]) if rows is None else rows
    dropped = np.zeros(t.shape, dtype=bool)
    starts = plan.start_t[idx]
    if not np.isfinite(starts).any():
        return dropped
    t_lo, t_hi = t.min(axis=1), t.max(axis=1)
    for k in range(MAX_EPISODES):
        live = np.flatnonzero((starts[:, k] <= t_hi) & (plan.end_t[idx, k] > t_lo))
        if not live.size:
            continue
        dev = idx[live]
        tt = t[live]
        active = (tt >= plan.start_t[dev, k][:, None]) & (tt < plan.end_t[dev, k][:, None])
        for sensor_code, field in ((0, "leak_mm3s"), (1, "p_in_kpa")):
            column = readings.get(field)
            if column is None:
                continue
            for kind_code, kind in enumerate(FAULT_KINDS):
                sel = (plan.sensor[dev, k] == sensor_code) & (plan.kind[dev, k] == kind_code)
                if not sel.any():
                    continue
                rws, mask = live[sel], active[sel]
                block = column[rws]
                devs = dev[sel]
                if kind == "drift":
                    days = (tt[sel] - plan.start_t[devs, k][:, None]) / 86_400.0
                    offset = plan.rate[devs, k][:, None] * np.maximum(days, 0.0)
                    block = np.where(mask, block + offset, block)
                elif kind == "stuck":
                    block = _stuck(plan, devs, k, block, mask)
                elif kind == "spikes":
                    hit = mask & (rng.random(block.shape) < _SPIKE_PROBABILITY)
                    size = plan.rate[devs, k][:, None] * rng.uniform(5.0, 50.0, block.shape)
                    if field == "p_in_kpa":
                        size = size * 0.03  # +15 % to +150 % of the typical pressure
                    block = np.where(hit, block + size, block)
                else:  # dropout
                    dropped[rws] |= mask
                    block = np.where(mask, np.nan, block)
                column[rws] = block
    return dropped


def _stuck(
    plan: FaultPlan, devs: npt.NDArray[np.int64], k: int, block: F64, mask: npt.NDArray[np.bool_]
) -> F64:
    out = block.copy()
    for r in range(block.shape[0]):
        cols = np.flatnonzero(mask[r])
        if not cols.size:
            continue
        held = plan.stuck_value[devs[r], k]
        if np.isnan(held):
            # freeze at the last good reading before the fault (or the first one in it)
            before = block[r, : cols[0]]
            before = before[~np.isnan(before)]
            first = block[r, cols]
            first = first[~np.isnan(first)]
            held = before[-1] if before.size else (first[0] if first.size else np.nan)
            plan.stuck_value[devs[r], k] = held
        if not np.isnan(held):
            # a stuck sensor still answers when the firmware asks; where the field is not
            # measured at all (an open valve's seat leak) it stays absent
            out[r, cols] = np.where(np.isnan(block[r, cols]), np.nan, held)
    return out
