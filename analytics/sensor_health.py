"""Sensor faults are not seal faults: stuck, missing, spiking and drifting instruments.

Each monitored channel (a wire field) of each device learns, during its first
``train_samples`` samples, how its own readings normally behave, and is then judged
against that, not against a fixed rule that a quantised or idle sensor would break:

* **stuck**: the same non-zero reading ``run`` times in a row while another channel of the
  device changed meanwhile (the process moved, the sensor did not), for at least
  ``min_duration_s``. The run must be implausible for this sensor in its current operating
  state (idle: a closed valve or a stopped pump, whose sensors sit on their noise floor;
  or active): the posterior predictive probability of such a run, ``E[p**run]`` with the
  repeat share ``p ~ Beta`` of the repeats and pairs seen in that state, below ``alpha``.
  A plug-in ``p`` from a few hours of training made runs of six or so "implausible" for
  any sensor that happened to repeat little in training, e.g. a running pump's vibration,
  which then sat on its noise floor whenever the pump stopped. The counts go on learning
  after training (not while the channel is faulty; a run counts once it ended, so a stuck
  run never teaches that runs are long), decayed to ``learn_samples``. Exact zero is left
  alone: a stopped pump or a tight seat legitimately reads 0;
* **missing**: a channel present in (nearly) every training sample, absent from ``run``
  samples in a row that carry other readings and for at least ``min_duration_s``, the run
  length found from how often its gaps continued (``log(alpha) / log(p_cont)``, learned
  like the repeats, from gaps that ended). Channels that come and go with the process
  (``missing_exempt``: a seat-leak sensor is read only while the valve is closed, and a
  valve may stay open for days) or never seen in training are not expected;
* **spiking**: a Hampel filter over the last ``hampel_window`` readings taken in the same
  operating state (valve position, pump running or not: an opening is not a p_out
  spike) marks a reading more than ``hampel_k`` robust sigmas from their median (the
  sigma floored by the lower quartile of the steps in the window, so a ramp is not a
  spike, and by the typical step learned in training, so a quantised sensor is not); the
  sensor is faulty when the rate of such readings (EWMA) exceeds both ``spike_rate``
  and three times its training rate. Single spikes are not a fault (the seal detectors
  clip them); the outliers of a spiking sensor are withheld from the seal detectors;
* **drifting**: physics the pressure pair must obey. A wide-open valve (position at or
  above ``open_min_pct``) or a stopped pump (speed 0) has p_in ≈ p_out + its usual
  small difference, and a closed valve's downstream pressure sits at its usual level.
  Their commissioning baselines (robust, like the seat's) are watched by a two-sided
  CUSUM (``changepoint.ChangeTest``) for a shift of ``max(drift_kpa, 3 sigma)``. A seat
  leak does not move either, a drifting gauge does; which of the two gauges drifts is
  not knowable from these two alone, so both are withheld.
* **drifting leak sensor**: the zero of a leak sensor drifting (an additive offset ``b``)
  reads as a growing leak, but a real seat or seal leak scales with pressure (Q = C·ΔPⁿ)
  and an offset does not. So the *elasticity* of the reading, ``β = d log Q / d log P``
  (P: ΔP across a closed valve, or the mean of p_in and p_out of a running pump), is
  fitted per block of ``leak_block`` such samples (least squares of log Q on log P and
  time, so a leak growing within the block does not bend the slope) and compared with
  its commissioning value ``β0`` (the first ``leak_commission_blocks`` blocks). When the
  level of the reading has risen by a ratio ``R`` (from the same blocks), a real leak
  keeps ``β = β0``; an offset dilutes it to ``β0 / R`` (``b / Q = 1 - 1/R``). Each block
  adds the log-likelihood ratio of the two (clipped, less ``leak_llr_k``) to a CUSUM;
  above ``leak_h`` the leak sensor is drifting (it falls back when the evidence sum
  returns to zero). With ``R`` near 1 the hypotheses coincide and nothing accrues, so a
  healthy device cannot raise it by noise; a device whose reading never responded to
  pressure at commissioning (``β0`` not clearly positive) is not judged. Its readings
  are withheld like a drifting pair's.

NAMUR NE 107 for the instrument: stuck and missing are ``failure`` (its signal is
invalid), drift is ``out_of_specification``, spiking ``maintenance_required``. A fault
clears after ``clear_samples`` healthy samples in a row.

``screen(batch)`` updates the detector and returns the batch with every reading judged
faulty at its event time replaced by NaN; the ``DetectionService`` feeds that to the
seal detectors (``Detector.gated``), and ``faulty(signals)`` tells it which devices have
an active fault on the signals a seal detector reads, so their seal verdicts are held.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from analytics.base import (
    F64,
    I64,
    CategoryCode,
    Detector,
    DeviceTable,
    SampleBatch,
    Status,
    Verdicts,
    fmt_time,
    step_groups,
)
from analytics.baseline import robust_level
from analytics.changepoint import ChangeTest, confidence

__all__ = ["FAULT_NAMES", "SensorFaultDetector"]

# fault codes, by increasing precedence when a device has several
FAULT_NAMES: Final = ("", "spiking", "drifting", "missing", "stuck")
_SPIKING, _DRIFTING, _MISSING, _STUCK = 1, 2, 3, 4
_CATEGORY_OF_FAULT: Final = np.array(
    [
        CategoryCode.NONE,
        CategoryCode.MAINTENANCE_REQUIRED,
        CategoryCode.OUT_OF_SPECIFICATION,
        CategoryCode.FAILURE,
        CategoryCode.FAILURE,
    ],
    dtype=np.int8,
)
_SEVERITY_OF_FAULT: Final = np.array([0, 2, 2, 3, 3], dtype=np.int8)
_DRIFT_NAMES: Final = (
    "p_in_kpa - p_out_kpa while open or stopped",
    "p_out_kpa while closed",
    "leak_mm3s elasticity to pressure",
)
_LEAK_RESIDUAL: Final = 2
_PRESSURES: Final = ("p_in_kpa", "p_out_kpa")


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


def _stuck_log_p(rep: np.ndarray, pairs: np.ndarray, run: np.ndarray) -> np.ndarray:
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


def _median_last(a: np.ndarray) -> np.ndarray:
    """Median along the last axis by partition (np.median sorts; this is the hot path)."""
    k = a.shape[-1]
    h = k // 2
    if k % 2:
        return np.partition(a, h, axis=-1)[..., h]
    part = np.partition(a, (h - 1, h), axis=-1)
    return 0.5 * (part[..., h - 1] + part[..., h])


class SensorFaultDetector(Detector):
    cause: ClassVar[str] = "sensor_fault"
    signals: ClassVar[tuple[str, ...]] = (
        "p_in_kpa",
        "p_out_kpa",
        "leak_mm3s",
        "temp_c",
        "vib_mms",
        "flow_m3h",
        "position_pct",
        "speed_rpm",
    )

    def __init__(
        self,
        *,
        channels: tuple[str, ...] = (
            "p_in_kpa",
            "p_out_kpa",
            "leak_mm3s",
            "temp_c",
            "vib_mms",
            "flow_m3h",
        ),
        train_samples: int = 96,
        alpha: float = 1e-8,
        min_run: int = 6,
        hampel_window: int = 7,
        hampel_k: float = 8.0,
        spike_rate: float = 0.15,
        spike_alpha: float = 0.02,
        open_min_pct: float = 90.0,
        closed_max_pct: float = 2.0,
        drift_kpa: float = 30.0,
        drift_baseline: int = 24,
        clear_samples: int = 12,
        learn_samples: int = 2016,
        min_duration_s: float = 3600.0,
        missing_exempt: tuple[str, ...] = ("leak_mm3s",),
        leak_block: int = 576,
        leak_commission_blocks: int = 3,
        leak_min_dp_kpa: float = 100.0,
        leak_min_speed_rpm: float = 100.0,
        leak_min_mm3s: float = 1e-3,
        leak_h: float = 6.0,
        leak_llr_k: float = 0.1,
        leak_llr_clip: float = 4.0,
        leak_se_floor: float = 0.02,
    ) -> None:
        unknown = set(channels) - set(self.signals)
        if unknown or not channels:
            raise ValueError(f"channels must be a non-empty subset of {self.signals}")
        if train_samples < 8 or min_run < 2 or hampel_window < 3 or drift_baseline < 3:
            raise ValueError("need train_samples >= 8, min_run >= 2, windows >= 3")
        if not 0 < alpha < 1 or not 0 < spike_rate < 1 or not 0 < spike_alpha <= 1:
            raise ValueError("alpha, spike_rate and spike_alpha must be in (0, 1)")
        if hampel_k <= 0 or drift_kpa <= 0 or clear_samples < 1:
            raise ValueError("hampel_k and drift_kpa must be > 0, clear_samples >= 1")
        if learn_samples < train_samples or min_duration_s < 0:
            raise ValueError("need learn_samples >= train_samples and min_duration_s >= 0")
        if leak_block < 12 or leak_commission_blocks < 1:
            raise ValueError("need leak_block >= 12 and leak_commission_blocks >= 1")
        if leak_h <= 0 or leak_llr_k < 0 or leak_llr_clip <= 0 or leak_se_floor <= 0:
            raise ValueError("need leak_h, leak_llr_clip, leak_se_floor > 0, leak_llr_k >= 0")
        self.channels = tuple(channels)
        self.train_samples = train_samples
        self.alpha = alpha
        self.min_run = min_run
        self.hampel_window = hampel_window
        self.hampel_k = hampel_k
        self.spike_rate = spike_rate
        self.spike_alpha = spike_alpha
        self.open_min_pct = open_min_pct
        self.closed_max_pct = closed_max_pct
        self.drift_kpa = drift_kpa
        self.drift_baseline = drift_baseline
        self.clear_samples = clear_samples
        self.learn_samples = learn_samples
        self.min_duration_s = min_duration_s
        self._drift = ChangeTest("drift_", clear_fraction=0.3, clear_samples=clear_samples)
        self._pressure_ix = [self.channels.index(p) for p in _PRESSURES if p in self.channels]
        self.missing_exempt = tuple(missing_exempt)
        self.leak_block = leak_block
        self.leak_commission_blocks = leak_commission_blocks
        self.leak_min_dp_kpa = leak_min_dp_kpa
        self.leak_min_speed_rpm = leak_min_speed_rpm
        self.leak_min_mm3s = leak_min_mm3s
        self.leak_h = leak_h
        self.leak_llr_k = leak_llr_k
        self.leak_llr_clip = leak_llr_clip
        self.leak_se_floor = leak_se_floor
        self._leak_j = self.channels.index("leak_mm3s") if "leak_mm3s" in self.channels else -1
        # the readings a leak fit rests on: the leak and the pressures
        self._leak_fit_ix = [
            self.channels.index(c) for c in ("leak_mm3s", *_PRESSURES) if c in self.channels
        ]
        self._missing_watch = np.array([c not in missing_exempt for c in self.channels])
        super().__init__()

    def _state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64, f32, i32 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int32)
        c = (len(self.channels),)
        spec: dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]] = {
            "rows_n": (i32, (), 0),  # samples carrying any channel, up to train_samples
            # training counts, per channel
            "pres_n": (i32, c, 0),
            "hampel_n": (i32, c, 0),
            "hampel_out_n": (i32, c, 0),
            # learned on, past training too (decayed counts, none while a fault is on)
            "pair_n": (f32, (*c, 2), 0.0),  # comparable pairs, per (channel, idle/active)
            "rep_n": (f32, (*c, 2), 0.0),  # of them repeats
            "gap_n": (f32, c, 0.0),
            "gap_cont_n": (f32, c, 0.0),
            # running state, per channel
            "last_v": (f32, c, 0.0),
            "run_n": (i32, c, 0),
            "run_t0": (f64, c, 0.0),  # first sample of the current value; 0 = none yet
            "miss_run": (i32, c, 0),
            "miss_t0": (f64, c, 0.0),  # first sample of the current gap
            "ring": (f32, (*c, self.hampel_window), 0.0),
            "ring_n": (i32, c, 0),
            "spike_ewma": (f32, c, 0.0),
            "step_scale": (f32, c, 0.0),  # typical |step| between readings, from training
            "regime": (i32, (), -1),  # operating state of the newest sample
            "idle": (np.dtype(np.int8), (), 0),  # valve closed or pump stopped (newest)
            "fault": (np.dtype(np.int8), c, 0),
            "fault_since": (f64, c, 0.0),
            "ok_n": (i32, c, 0),
            # pressure-pair drift: two residuals, two directions
            "drift_n": (i32, (2,), 0),
            "drift_buf": (f32, (2, self.drift_baseline), 0.0),
            "drift_med": (f64, (2,), 0.0),
            "drift_sigma": (f64, (2,), 0.0),
            "drift_value": (f64, (2,), 0.0),
            # leak-sensor drift: the current block's sums of [1, log P - lk_u0, days] x
            # log Q, the commissioning elasticity and level, and the evidence CUSUM
            "lk_xtx": (f64, (3, 3), 0.0),
            "lk_xty": (f64, (3,), 0.0),
            "lk_yy": (f64, (), 0.0),
            "lk_n": (i32, (), 0),
            "lk_t0": (f64, (), 0.0),
            "lk_u0": (f64, (), 0.0),
            "lk_blocks": (i32, (), 0),  # blocks fitted, up to leak_commission_blocks
            "lk_cw": (f64, (), 0.0),  # commissioning: sum of 1/SE², of beta/SE²
            "lk_cwb": (f64, (), 0.0),
            "lk_cy": (f64, (), 0.0),  # and of the blocks' mean log Q and log P
            "lk_cu": (f64, (), 0.0),
            "lk_beta0": (f64, (), 0.0),  # set once commissioned
            "lk_se0": (f64, (), 0.0),  # set once commissioned
            "lk_level0": (f64, (), 0.0),
            "lk_beta": (f64, (), 0.0),  # newest block
            "lk_ratio": (f64, (), 0.0),
            "lk_cusum": (f64, (), 0.0),
            "lk_start": (f64, (), 0.0),
            "lk_on": (np.dtype(np.bool_), (), False),
            "lk_since": (f64, (), 0.0),
            "category": (np.dtype(np.int8), (), 0),
            "changed_t": (f64, (), 0.0),
        }
        spec.update(self._drift.spec((4,)))
        return spec

    # -- learning ------------------------------------------------------------------------

    def screen(self, batch: SampleBatch, devices: DeviceTable | None = None) -> SampleBatch:
        """Update, then return ``batch`` with readings judged faulty replaced by NaN."""
        self._bad = np.zeros((0, len(self.channels)), dtype=bool)
        self._last_keep = np.empty(0, np.int64)
        self.update(batch, devices)
        keep = self._last_keep
        if not len(batch) or not len(keep) or not self._bad.any():
            return batch
        signals = dict(batch.signals)
        for j, name in enumerate(self.channels):
            col = signals.get(name)
            bad = keep[self._bad[:, j]]
            if col is None or not len(bad):
                continue
            col = col.copy()
            col[bad] = np.nan
            signals[name] = col
        return SampleBatch(batch.slot, batch.t_s, signals)

    def faulty(self, signals: tuple[str, ...], n: int) -> npt.NDArray[np.bool_]:
        """Slots (0..n-1) with a fault other than spiking on any of ``signals``."""
        out = np.zeros(n, dtype=bool)
        m = min(n, self._n_slots)
        cols = [j for j, c in enumerate(self.channels) if c in signals]
        if cols and m:
            out[:m] = (self._state["fault"][:m][:, cols] >= _DRIFTING).any(axis=1)
        if m and any(p in signals for p in _PRESSURES):
            out[:m] |= self._state["drift_on"][:m].any(axis=1)
        if m and self._leak_j >= 0 and "leak_mm3s" in signals:
            out[:m] |= self._state["lk_on"][:m]
        return out

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        x = np.stack([batch.signal(c) for c in self.channels], axis=1)
        self._bad = np.zeros(x.shape, dtype=bool)
        pos = batch.signal("position_pct")
        speed = batch.signal("speed_rpm")
        p_in, p_out = batch.signal("p_in_kpa"), batch.signal("p_out_kpa")
        dp = p_in - p_out
        # residual 0: pressure difference across a wide-open valve or a stopped pump
        # residual 1: downstream pressure of a closed valve
        open_or_stopped = (pos >= self.open_min_pct) | (speed == 0)
        r = np.stack(
            [
                np.where(open_or_stopped, dp, np.nan),
                np.where(pos <= self.closed_max_pct, p_out, np.nan),
            ],
            axis=1,
        )
        # Operating state: valve position in 5 % steps, pump stopped/running. A Hampel
        # window never straddles a change of it (an opening is not a p_out spike).
        # -1 / 2: not in this sample, the previous state holds
        pos_code = np.where(np.isfinite(pos), np.round(np.nan_to_num(pos) / 5.0), -1)
        run_code = np.where(np.isnan(speed), 2, (speed > 0).astype(np.int64))
        # idle (1): a closed valve or a stopped pump, whose sensors sit still more often;
        # active (0); -1: not in this sample, the previous state holds
        idle = np.where(
            (pos <= self.closed_max_pct) | (speed == 0),
            1,
            np.where(np.isfinite(pos) | np.isfinite(speed), 0, -1),
        )
        regime = np.stack([pos_code, run_code, idle], axis=1).astype(np.int64)
        # leak-sensor drift: log leak against log pressure, on a closed valve under
        # pressure or a running pump (NaN: the sample says nothing about it)
        flow = batch.signal("flow_m3h")
        running = np.where(np.isnan(speed), ~(flow <= 0), speed >= self.leak_min_speed_rpm)
        closed = (pos <= self.closed_max_pct) & (dp >= self.leak_min_dp_kpa)
        with np.errstate(invalid="ignore", divide="ignore"):
            press = np.where(closed, dp, np.where(running, 0.5 * (p_in + p_out), np.nan))
            lq = np.log(batch.signal("leak_mm3s"))
            lp = np.log(press)
        lk = np.stack([lq, lp], axis=1)
        lk[~(np.isfinite(lk).all(axis=1) & (lq >= math.log(self.leak_min_mm3s)))] = np.nan
        for rows in step_groups(batch.slot):
            self._step(
                rows, batch.slot[rows], batch.t_s[rows], x[rows], r[rows], regime[rows], lk[rows]
            )

    def _step(
        self,
        rows: npt.NDArray[np.intp],
        slots: I64,
        t: F64,
        x: F64,
        r: F64,
        regime: I64,
        lk: F64,
    ) -> None:
        s = self._state
        present = np.isfinite(x)
        any_present = present.any(axis=1)
        training = s["rows_n"][slots] < self.train_samples
        s["rows_n"][slots] += any_present & training
        tr = training[:, None] & any_present[:, None]
        # The rates a run is judged by keep being learned after training, on a channel
        # without a fault, with counts decayed to ``learn_samples``: a week of samples
        # estimates a repeat share far better than the first few hours, and follows it
        # through the seasons.
        fault = s["fault"][slots]
        lr = any_present[:, None] & (fault == 0)
        decay = np.float32(1.0 - 1.0 / self.learn_samples)
        idle_prev = s["idle"][slots]
        idle = np.where(regime[:, 2] >= 0, regime[:, 2], idle_prev).astype(np.int8)
        s["idle"][slots] = idle

        # missing: runs of absence among samples that carry other readings
        miss_run = s["miss_run"][slots]
        was_gap = miss_run > 0
        # A gap is learned from when it ends (its ``m`` samples: ``m - 1`` continued, one
        # did not), so a gap in progress never teaches that gaps go on.
        ended = lr & was_gap & present
        m = miss_run.astype(np.float32)
        keep = np.where(ended, decay**m, np.float32(1.0))
        s["gap_n"][slots] = s["gap_n"][slots] * keep + np.where(ended, m, 0)
        s["gap_cont_n"][slots] = s["gap_cont_n"][slots] * keep + np.where(ended, m - 1, 0)
        s["pres_n"][slots] += tr & present
        gap_starts = ~present & any_present[:, None] & ~was_gap
        s["miss_t0"][slots] = np.where(gap_starts, t[:, None], s["miss_t0"][slots])
        miss_run = np.where(present, 0, np.where(any_present[:, None], miss_run + 1, miss_run))
        s["miss_run"][slots] = miss_run

        # stuck: identical non-zero readings
        x32 = np.where(present, x, 0.0).astype(np.float32)
        last = s["last_v"][slots]
        run_t0 = s["run_t0"][slots]
        had = run_t0 > 0
        comparable = present & had & (last != 0)
        same = comparable & (x32 == last)
        # Likewise a run of equal readings is learned when it ends (``m`` repeats, then a
        # change), in the operating state it ended in.
        run_prev = s["run_n"][slots]
        ended = lr & comparable & ~same
        m = run_prev.astype(np.float32)
        keep = np.where(ended, decay ** (m + 1), np.float32(1.0))
        s["pair_n"][slots, :, idle] = s["pair_n"][slots, :, idle] * keep + np.where(ended, m + 1, 0)
        s["rep_n"][slots, :, idle] = s["rep_n"][slots, :, idle] * keep + np.where(ended, m, 0)
        run_n = np.where(present, np.where(same, run_prev + 1, 0), run_prev)
        run_t0 = np.where(present & ~same, t[:, None], run_t0)
        s["run_n"][slots] = run_n
        s["run_t0"][slots] = run_t0
        s["last_v"][slots] = np.where(present, x32, last)

        # spikes: Hampel over the last readings in the same operating state
        last = s["regime"][slots]
        pos_code = np.where(regime[:, 0] >= 0, regime[:, 0], last // 3)
        run_code = np.where(regime[:, 1] < 2, regime[:, 1], last % 3)
        code = (pos_code * 3 + run_code).astype(np.int32)
        moved = code != last
        s["regime"][slots] = code
        ring = s["ring"][slots]
        ring_n = np.where(moved[:, None], 0, s["ring_n"][slots])
        full = ring_n >= self.hampel_window
        med = _median_last(ring)
        mad = _median_last(np.abs(ring - med[:, :, None]))
        # The lower quartile of the steps between consecutive readings floors the scale,
        # so a sensor on a steady ramp (a daily temperature swing) is not read as spiking.
        kw = self.hampel_window
        steps = np.abs(ring - np.roll(ring, 1, axis=2))
        oldest = (ring_n % kw)[:, :, None]
        np.put_along_axis(steps, oldest, np.inf, axis=2)  # the wrap-around pair
        q = (kw - 2) // 4
        mean_step = np.partition(steps, q, axis=2)[:, :, q]
        # and the step size learned in training floors it, so a quantised sensor whose
        # window happens to hold one value is not read as spiking on its next tick
        floor = np.maximum(s["step_scale"][slots], 1e-3 * np.abs(med) + 1e-9)
        scale = np.maximum(np.maximum(1.4826 * mad, mean_step), floor)
        spike = present & full & (np.abs(x32 - med) > self.hampel_k * scale)
        judged = present & full
        s["hampel_n"][slots] += tr & judged
        s["hampel_out_n"][slots] += tr & spike
        ch = np.broadcast_to(np.arange(len(self.channels)), present.shape)
        pr, pc = np.nonzero(present)
        newest = np.take_along_axis(ring, ((ring_n - 1) % kw)[:, :, None], axis=2)[:, :, 0]
        step = np.abs(x32 - newest)
        has_prev = present & (ring_n > 0)
        sc = s["step_scale"][slots]
        learn = tr & has_prev
        # EWMA of the step, each step clipped at 5x the current estimate (spikes in
        # training do not inflate it)
        clipped = np.where(sc > 0, np.minimum(step, 5.0 * sc), step)
        s["step_scale"][slots] = np.where(learn, sc + 0.1 * (clipped - sc), sc).astype(np.float32)
        s["ring"][slots[pr], pc, ring_n[pr, pc] % self.hampel_window] = x32[pr, pc]
        s["ring_n"][slots] = np.where(present, np.minimum(ring_n + 1, 2**30), ring_n)
        ewma = s["spike_ewma"][slots]
        s["spike_ewma"][slots] = np.where(
            judged, ewma + self.spike_alpha * (spike - ewma), ewma
        ).astype(np.float32)

        trained = ~training[:, None]
        # A run must be implausible for this sensor in this operating state (see
        # ``_stuck_log_p``) and must also last ``min_duration_s``: at a sample a minute a
        # dozen equal readings are a quiet quarter of an hour, not a frozen instrument.
        t_now = t[:, None]
        stuck_now = trained & (run_n >= self.min_run) & (t_now - run_t0 >= self.min_duration_s)
        # the process moved while this sensor did not: another channel changed since
        others = (run_t0[:, None, :] > run_t0[:, :, None]) & (ch[:, None, :] != ch[:, :, None])
        stuck_now &= others.any(axis=2)
        cand_r, cand_c = np.nonzero(stuck_now)
        if len(cand_r):
            cs, ci = slots[cand_r], idle[cand_r]
            log_p = _stuck_log_p(
                s["rep_n"][cs, cand_c, ci], s["pair_n"][cs, cand_c, ci], run_n[cand_r, cand_c]
            )
            stuck_now[cand_r, cand_c] = log_p < math.log(self.alpha)
        # Only sensors that were always there in training: a channel that comes and goes
        # with the process (leak readings only while closed) has gaps of its own.
        always = s["pres_n"][slots] >= 0.99 * s["rows_n"][slots][:, None]
        always &= self._missing_watch
        missing_now = (
            trained
            & always
            & (miss_run >= self._missing_run(slots))
            & (t_now - s["miss_t0"][slots] >= self.min_duration_s)
        )
        base_rate = (s["hampel_out_n"][slots] + 1.0) / (s["hampel_n"][slots] + 2.0)
        spiky_thr = np.maximum(self.spike_rate, 3.0 * base_rate)
        spiky_now = trained & (
            s["spike_ewma"][slots] > np.where(fault == _SPIKING, 0.5, 1.0) * spiky_thr
        )
        now = np.where(
            stuck_now, _STUCK, np.where(missing_now, _MISSING, np.where(spiky_now, _SPIKING, 0))
        ).astype(np.int8)
        ok_n = np.where(now > 0, 0, np.where(present, s["ok_n"][slots] + 1, s["ok_n"][slots]))
        rise = now > fault
        keep = (fault > 0) & (now <= fault) & (ok_n < self.clear_samples)
        new = np.where(rise, now, np.where(keep, np.maximum(fault, now), 0)).astype(np.int8)
        s["fault_since"][slots] = np.where(
            (new > 0) & (fault == 0), t[:, None], np.where(new > 0, s["fault_since"][slots], 0.0)
        )
        s["fault"][slots] = new
        s["ok_n"][slots] = np.where(new > 0, ok_n, 0)
        # Single spikes stay: every seal detector clips its increments, and withholding
        # them would also withhold the first samples of a real step. A spiking sensor's
        # outliers, a stuck sensor's readings and a drifting pair's are withheld.
        bad = (spike & (new == _SPIKING)) | ((new >= _MISSING) & present)

        self._drift_step(slots, t, r)
        pair_drift = s["drift_on"][slots].any(axis=1)
        if self._pressure_ix:
            bad[:, self._pressure_ix] |= pair_drift[:, None]
        if self._leak_j >= 0:
            # a fit only on readings the screen trusts: no outlier of the leak or the
            # pressures, no stuck or missing leak sensor, no drifting pressure pair
            # (a water hammer is a pressure outlier but a fine lever for the fit: only a
            # spiking pressure gauge's outliers are left out)
            use = np.isfinite(lk[:, 0]) & ~spike[:, self._leak_j]
            use &= ~(spike & (new == _SPIKING))[:, self._leak_fit_ix].any(axis=1)
            use &= (new[:, self._leak_j] < _MISSING) & ~pair_drift
            if use.any():
                self._leak_step(slots[use], t[use], lk[use])
            bad[:, self._leak_j] |= s["lk_on"][slots] & present[:, self._leak_j]
        self._bad[rows] = bad
        self._set_category(slots, t)

    def _drift_step(self, slots: I64, t: F64, r: F64) -> None:
        s = self._state
        for j in range(2):
            have = np.isfinite(r[:, j])
            if not have.any():
                continue
            hs, ht, hr = slots[have], t[have], r[have, j]
            n = s["drift_n"][hs, j]
            learning = n < self.drift_baseline
            if learning.any():
                ls = hs[learning]
                s["drift_buf"][ls, j, n[learning]] = hr[learning]
                s["drift_n"][ls, j] += 1
                done = ls[n[learning] == self.drift_baseline - 1]
                if len(done):
                    med, sig = robust_level(s["drift_buf"][done, j], 1.0)
                    s["drift_med"][done, j] = med
                    s["drift_sigma"][done, j] = sig
            live = ~learning
            if not live.any():
                continue
            ls, lt, lr = hs[live], ht[live], hr[live]
            dev = lr - s["drift_med"][ls, j]
            s["drift_value"][ls, j] = dev
            sigma = s["drift_sigma"][ls, j]
            delta = np.maximum(self.drift_kpa, 3.0 * sigma)
            for sign, col in ((1.0, 2 * j), (-1.0, 2 * j + 1)):
                idx = (ls, np.full(len(ls), col))
                self._drift.step(s, idx, sign * dev, lt, delta=delta, sigma=sigma)

    def _leak_step(self, slots: I64, t: F64, lk: F64) -> None:
        """Add one (log Q, log P) sample to each slot's block; judge the blocks completed."""
        s = self._state
        first = s["lk_n"][slots] == 0
        s["lk_t0"][slots] = np.where(first, t, s["lk_t0"][slots])
        s["lk_u0"][slots] = np.where(first, lk[:, 1], s["lk_u0"][slots])
        f = np.stack(
            [
                np.ones(len(slots)),
                lk[:, 1] - s["lk_u0"][slots],
                (t - s["lk_t0"][slots]) / 86_400.0,
            ],
            axis=1,
        )
        y = lk[:, 0]
        s["lk_xtx"][slots] += f[:, :, None] * f[:, None, :]
        s["lk_xty"][slots] += f * y[:, None]
        s["lk_yy"][slots] += y * y
        s["lk_n"][slots] += 1
        full = s["lk_n"][slots] >= self.leak_block
        if full.any():
            self._leak_block_done(slots[full], t[full])

    def _leak_block_done(self, slots: I64, t: F64) -> None:
        s = self._state
        n = s["lk_n"][slots].astype(np.float64)
        xtx, xty = s["lk_xtx"][slots], s["lk_xty"][slots]
        # a touch of ridge on log P and time: a block without pressure spread gets a
        # slope of 0 with a huge standard error, not a singular solve
        reg = np.zeros((3, 3))
        reg[1, 1] = reg[2, 2] = 1e-9
        a = xtx + reg * n[:, None, None]
        inv = np.linalg.inv(a)
        coef = np.einsum("ijk,ik->ij", inv, xty)
        rss = s["lk_yy"][slots] - 2 * np.einsum("ij,ij->i", coef, xty)
        rss += np.einsum("ij,ijk,ik->i", coef, xtx, coef)
        s2 = np.maximum(rss, 0.0) / np.maximum(n - 3, 1.0)
        beta = coef[:, 1]
        se = np.sqrt(s2 * np.maximum(inv[:, 1, 1], 0.0))
        se = np.maximum(se, self.leak_se_floor)
        y_mean = xty[:, 0] / n
        u_mean = xtx[:, 0, 1] / n + s["lk_u0"][slots]
        for key in ("lk_xtx", "lk_xty", "lk_yy", "lk_n"):
            s[key][slots] = 0
        s["lk_beta"][slots] = beta
        k = s["lk_blocks"][slots]
        comm = k < self.leak_commission_blocks
        if comm.any():
            cs = slots[comm]
            w = 1.0 / se[comm] ** 2
            s["lk_cw"][cs] += w
            s["lk_cwb"][cs] += w * beta[comm]
            s["lk_cy"][cs] += y_mean[comm]
            s["lk_cu"][cs] += u_mean[comm]
            s["lk_blocks"][cs] += 1
            fin = cs[s["lk_blocks"][cs] == self.leak_commission_blocks]
            if len(fin):
                b0 = s["lk_cwb"][fin] / s["lk_cw"][fin]
                m = float(self.leak_commission_blocks)
                s["lk_beta0"][fin] = b0
                s["lk_se0"][fin] = 1.0 / np.sqrt(s["lk_cw"][fin])
                s["lk_level0"][fin] = (s["lk_cy"][fin] - b0 * s["lk_cu"][fin]) / m
        live = ~comm
        if not live.any():
            return
        ls, lt = slots[live], t[live]
        b0, se0 = s["lk_beta0"][ls], s["lk_se0"][ls]
        log_r = y_mean[live] - b0 * u_mean[live] - s["lk_level0"][ls]
        ratio = np.exp(np.clip(log_r, -30.0, 30.0))
        s["lk_ratio"][ls] = ratio
        # judged only where the commissioning reading clearly responded to pressure
        judged = (b0 > 0.1) & (b0 > 3.0 * se0)
        var = se[live] ** 2 + se0**2
        b = beta[live]
        llr = ((b - b0) ** 2 - (b - b0 / ratio) ** 2) / (2.0 * var)
        llr = np.where(judged, np.clip(llr, -self.leak_llr_clip, self.leak_llr_clip), 0.0)
        cus = s["lk_cusum"][ls]
        new = np.maximum(cus + llr - self.leak_llr_k, 0.0)
        s["lk_start"][ls] = np.where((cus <= 0) & (new > 0), lt, s["lk_start"][ls])
        on = s["lk_on"][ls]
        rose = ~on & (new > self.leak_h)
        fell = on & (new <= 0)
        on2 = (on | rose) & ~fell
        s["lk_cusum"][ls] = np.where(on2, np.minimum(new, self.leak_h), new)
        s["lk_on"][ls] = on2
        s["lk_since"][ls] = np.where(rose, s["lk_start"][ls], np.where(on2, s["lk_since"][ls], 0))

    def _stuck_run(self, slots: I64) -> F64:
        """Repeats in a row that make each (slot, channel) stuck in its current state."""
        s = self._state
        idle = s["idle"][slots].astype(np.intp)
        k = np.take_along_axis(s["rep_n"][slots], idle[:, None, None], axis=2)[:, :, 0]
        n = np.take_along_axis(s["pair_n"][slots], idle[:, None, None], axis=2)[:, :, 0]
        # log P is decreasing in the run: bisect for the shortest run below alpha
        lo = np.full(k.shape, self.min_run - 1, dtype=np.float64)  # not enough
        hi = np.full(k.shape, float(_MAX_RUN))
        log_alpha = math.log(self.alpha)
        for _ in range(_MAX_RUN.bit_length() + 1):
            mid = np.minimum(np.maximum(np.floor(0.5 * (lo + hi)), lo + 1), hi)
            ok = _stuck_log_p(k, n, mid) < log_alpha
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
        return hi

    def _missing_run(self, slots: I64) -> F64:
        s = self._state
        p_cont = (s["gap_cont_n"][slots] + 1.0) / (s["gap_n"][slots] + 2.0)
        return np.maximum(self.min_run, np.ceil(math.log(self.alpha) / np.log(p_cont)))

    def _worst(self, slots: I64 | slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fault code, channel index or -1 for drift, since) of each slot's worst fault."""
        s = self._state
        fault = s["fault"][slots]
        worst_ch = np.argmax(fault, axis=1)
        worst = np.take_along_axis(fault, worst_ch[:, None], axis=1)[:, 0]
        since = np.take_along_axis(s["fault_since"][slots], worst_ch[:, None], axis=1)[:, 0]
        drift_on = s["drift_on"][slots].any(axis=1)
        use_drift = drift_on & (worst < _DRIFTING)
        drift_since = np.where(s["drift_on"][slots], s["drift_since"][slots], np.inf).min(axis=1)
        # a drifting leak sensor, where nothing worse (or the pressure pair) is named
        use_leak = s["lk_on"][slots] & (worst < _DRIFTING) & ~use_drift
        code = np.where(use_drift | use_leak, _DRIFTING, worst).astype(np.int8)
        ch = np.where(use_drift, -1, np.where(use_leak, self._leak_j, worst_ch))
        since = np.where(use_leak, s["lk_since"][slots], since)
        return code, ch, np.where(use_drift, drift_since, since)

    def _set_category(self, slots: I64, t: F64) -> None:
        s = self._state
        code, _, _ = self._worst(slots)
        cat = _CATEGORY_OF_FAULT[code]
        changed = cat != s["category"][slots]
        s["category"][slots] = cat
        s["changed_t"][slots[changed]] = t[changed]

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        n = self._n_slots
        s = {k: v[:n] for k, v in self._state.items()}
        code, ch, since = self._worst(slice(0, n))
        cat = _CATEGORY_OF_FAULT[code]
        rows = np.arange(n)
        chi = np.maximum(ch, 0)
        run = np.where(
            code == _STUCK,
            s["run_n"][rows, chi] + 1.0,
            np.where(code == _MISSING, s["miss_run"][rows, chi], np.nan),
        )
        stuck_need = np.full(n, np.nan)
        miss_need = np.full(n, np.nan)
        if n:
            miss_need = self._missing_run(rows)[rows, chi]
            stuck = np.flatnonzero(code == _STUCK)  # a bisection: only where it is shown
            stuck_need[stuck] = self._stuck_run(stuck)[np.arange(len(stuck)), chi[stuck]]
        need = np.where(code == _STUCK, stuck_need, np.where(code == _MISSING, miss_need, np.nan))
        drift_col = np.argmax(np.abs(s["drift_cusum"]), axis=1)
        leak_drift = (code == _DRIFTING) & (ch >= 0)
        drift_j = np.where(leak_drift, _LEAK_RESIDUAL, drift_col // 2)
        pair_j = np.minimum(drift_j, 1)
        drift_dev = s["drift_value"][rows, pair_j]
        drift_sigma = s["drift_sigma"][rows, pair_j]
        spike_rate = s["spike_ewma"][rows, chi].astype(np.float64)
        margin = np.where(
            code == _DRIFTING,
            np.where(
                leak_drift,
                s["lk_cusum"] / self.leak_h,
                np.abs(drift_dev) / np.maximum(self.drift_kpa, 3 * drift_sigma),
            ),
            np.where(code == _SPIKING, spike_rate / self.spike_rate, run / np.maximum(need, 1)),
        )
        status = np.where(
            s["rows_n"] == 0,
            Status.NO_DATA,
            np.where(
                s["rows_n"] < self.train_samples,
                Status.LEARNING,
                np.where(cat > 0, Status.ALARM, Status.NORMAL),
            ),
        ).astype(np.int8)
        return Verdicts(
            cause=self.cause,
            signal="sensor readings",
            status=status,
            category=cat,
            severity=_SEVERITY_OF_FAULT[code],
            since_s=np.where(code > 0, since, np.nan),
            changed_s=np.where(s["changed_t"] > 0, s["changed_t"], np.nan),
            confidence=np.where(code > 0, confidence(1.0 + np.maximum(margin - 1, 0)), np.nan),
            evidence={
                "fault": code.astype(np.float64),
                "channel": np.where(code > 0, ch, np.nan).astype(np.float64),
                "run_samples": run,
                "run_needed": need,
                "spike_rate": np.where(code == _SPIKING, spike_rate, np.nan),
                "spike_rate_limit": np.where(code == _SPIKING, self.spike_rate, np.nan),
                "drift_residual": np.where(code == _DRIFTING, drift_j, np.nan).astype(float),
                "drift_kpa": np.where((code == _DRIFTING) & ~leak_drift, drift_dev, np.nan),
                "drift_baseline_kpa": np.where(
                    (code == _DRIFTING) & ~leak_drift, s["drift_med"][rows, pair_j], np.nan
                ),
                # leak sensor: the reading's level over commissioning, and its elasticity
                # to pressure now (newest block) and at commissioning
                "leak_ratio": np.where(leak_drift, s["lk_ratio"], np.nan),
                "leak_elasticity": np.where(leak_drift, s["lk_beta"], np.nan),
                "leak_elasticity_baseline": np.where(leak_drift, s["lk_beta0"], np.nan),
                "leak_evidence": np.where(leak_drift, s["lk_cusum"], np.nan),
                "stuck_value": np.where(
                    code == _STUCK, s["last_v"][rows, chi].astype(np.float64), np.nan
                ),
            },
        )

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        out = super().evidence(v, i)
        code = int(v.evidence["fault"][i])
        out["fault"] = FAULT_NAMES[code] or None
        ch = v.evidence["channel"][i]
        if code == _DRIFTING and int(v.evidence["drift_residual"][i]) == _LEAK_RESIDUAL:
            out["signal"] = _DRIFT_NAMES[_LEAK_RESIDUAL]
            out["channel"] = "leak_mm3s"
        elif code == _DRIFTING:
            out["signal"] = _DRIFT_NAMES[int(v.evidence["drift_residual"][i])]
            out["channel"] = "p_in_kpa/p_out_kpa"
        elif math.isfinite(ch) and ch >= 0:
            out["channel"] = self.channels[int(ch)]
            out["signal"] = out["channel"]
        else:
            out["channel"] = None
        return out

    def summary(self, v: Verdicts, i: int) -> str:
        e = self.evidence(v, i)
        since = fmt_time(e["since"])
        fault = e["fault"]
        if fault == "stuck":
            return (
                f"Sensor {e['channel']} stuck at {e['stuck_value']:.4g} for "
                f"{e['run_samples']:.0f} samples while the process moved, since {since}: "
                "check or replace the instrument; its readings are withheld from seal checks"
            )
        if fault == "missing":
            return (
                f"Sensor {e['channel']} missing from {e['run_samples']:.0f} samples in a row "
                f"since {since}: check wiring and the instrument"
            )
        if fault == "drifting" and e["channel"] == "leak_mm3s":
            return (
                f"Leak sensor drifts: leak_mm3s reads {e['leak_ratio']:.1f}x its commissioning "
                f"level but follows pressure with elasticity {e['leak_elasticity']:.2f} "
                f"(commissioning {e['leak_elasticity_baseline']:.2f}), an offset rather than "
                f"a leak, since {since}: recalibrate the leak sensor; seal checks on its "
                "readings are held"
            )
        if fault == "drifting":
            return (
                f"Pressure gauges drift: {e['signal']} is {e['drift_kpa']:+.0f} kPa off its "
                f"commissioning level {e['drift_baseline_kpa']:.0f} kPa since {since}: "
                "recalibrate p_in/p_out; seal checks on these readings are held"
            )
        if fault == "spiking":
            return (
                f"Sensor {e['channel']} spiking: {100 * e['spike_rate']:.0f} % outliers since "
                f"{since}: check the instrument and its cabling"
            )
        return "Sensors healthy"
