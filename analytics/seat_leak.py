"""Valve seat leakage, normalised by differential pressure, against two references.

Only samples of a closed valve under pressure say anything about its seat: position at or
below ``closed_max_pct`` and ΔP = p_in_kpa - p_out_kpa at or above ``min_dp_kpa``. A
sample with a leak reading but no position is used too (``position_required=False``):
``leak_mm3s`` is a seat-leak measurement by contract, not through-flow (that is
``flow_m3h``), and the ΔP floor already screens out a wide-open valve. Valves without
trustworthy leak-only readings can set ``position_required=True``.

Leak coefficient C = leak / ΔP^n. Flow through the small gap of a worn seat behaves like
a sharp-edged orifice (Q ∝ √ΔP, n = 0.5); a laminar capillary path gives n = 1, so
n is a hyper-parameter. Normalising this way lets samples taken at different line
pressures (demand cycles, transients) be compared with each other and with the test
pressure.

1. Commissioning: the first ``baseline_samples`` qualifying samples of a device give its
   baseline, median of log C, and a robust spread (``baseline.robust_level``, floored at
   ``sigma_floor``). The baseline is then frozen: slow wear is never learned as normal.
2. Degradation onset (``maintenance_required``): a one-sided CUSUM on z = log(C /
   baseline) tuned to a shift of log ``alarm_ratio`` (``changepoint.ChangeTest``). It
   replaces the earlier threshold on a smoothed ratio as the *raise* test because it is
   the optimal sequential test for a step of that size: a 10x step raises after five
   samples instead of ten, a slow drift at ~1.9x baseline instead of 3x (weeks of extra
   lead time before the class limit), and it dates the onset (the last time the
   statistic left zero) instead of reporting when a lagging average happened to cross a
   line. It keeps the EWMA's strengths: increments are clipped so spikes and short
   bursts cannot raise it, the decision interval grows with the device's own noise, and
   the robust EWMA of z is still the current level that clears the alarm (below
   ``clear_ratio`` for ``clear_samples`` samples in a row) and that the explanation shows.
   Growth onset (also ``maintenance_required``, opt-in ``rise_test``: on the field
   simulator it gained 2-3 d of median lead but raised on leak sensors drifting before
   the sensor screen flagged them, 1.7 false alarms per 1,000 device-months on one
   seed, over the aim of 1): the level's CUSUM, tuned
   to 3x, sees a gradual onset once the leak is ~1.8x its baseline. A ``RiseTest`` on the
   same clipped z raises on the *rate* instead: daily points (log of the mean ratio), a
   CUSUM on their increments against ``rise_min_growth`` per week, a decision interval of
   ``rise_sigmas`` of the device's own day-to-day spread, and the point already
   ``rise_ratio`` over the device's first three weeks. Onsets (the simulator's 30x over
   20-120 days: 22 %/week and faster) raise at ~1.3-1.5x, about a tenth of their span
   before the level's test; wear creep (a few %/yr, ~25 %/yr in a bad batch) and seasonal
   swings grow far slower than 7 %/week and never accumulate. Its evidence: the growth
   per week since the point the rise began (``growth_per_week``, ``rise_start_t``), read
   as "leak coefficient rising 22 %/week since 2026-03-02"; ``since`` is that start.
3. Class (``out_of_specification``): the smoothed C scaled to the ISO 5208 liquid seat
   test pressure (1.1 * PN) is compared with the allowable rate of the device's leakage
   class for its DN; cleared once below ``spec_clear_fraction`` of it for
   ``clear_samples`` samples. Skipped when the device has no class, DN or PN. A valve
   that is already out of its class at commissioning is flagged at the end of it.
4. Remaining life: every ``trend_every`` qualifying samples the mean of z (each sample
   clipped around the current level, so spikes do not bend the line) goes into a ring of
   ``trend_points`` points. Points wholly after the onset are fitted by least squares;
   when the slope is significantly positive (t > ``trend_t_min``) the line is
   extrapolated to the class limit: ``rul_s`` and ``limit_eta_s`` in the evidence, and
   ``rul_late_s`` from the slope two standard errors lower. A maintenance alarm whose
   late-bound crossing is closer than ``urgent_days`` is escalated one severity step
   (latched until it clears, so the alert is updated once, not on every wobble of the
   fit).

The verdict category is the more severe of 2 and 3. ``since`` is the event time at which
the active condition began (the CUSUM's change-point estimate for 2, the start of the
growth for the rise test).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final

import numpy as np

from analytics.base import (
    F64,
    I64,
    SEVERITY_BY_CATEGORY,
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
from analytics.changepoint import (
    ChangeTest,
    RiseTest,
    change_test_params,
    confidence,
)
from analytics.evidence import fmt_date, fmt_growth_per_week, fmt_rul, tidy_evidence
from analytics.params import Param, check_params
from sealscope import iso5208

__all__ = ["SeatLeakDetector"]

_DAY_S: Final = 86_400.0


class SeatLeakDetector(Detector):
    cause: ClassVar[str] = "seat_leak"
    signals: ClassVar[tuple[str, ...]] = ("p_in_kpa", "p_out_kpa", "leak_mm3s", "position_pct")
    kinds: ClassVar[frozenset[str]] = frozenset({"valve"})
    gated: ClassVar[bool] = True
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("exponent", 0.5, "(0, 2]", "",
              "n in C = leak / ΔP^n: 0.5 orifice, 1 laminar"),
        Param("closed_max_pct", 2.0, "[0, 100]", "%",
              "position at or below which the valve counts as closed"),
        Param("position_required", False, "", "",
              "ignore samples that carry no position"),
        Param("min_dp_kpa", 100.0, "(0, inf)", "kPa",
              "ΔP a sample needs to say anything about the seat"),
        Param("leak_floor_mm3s", 1e-3, "(0, inf)", "mm³/s",
              "readings below it (0 included) are taken as it"),
        Param("baseline_samples", 48, "[3, 4096]", "samples",
              "qualifying samples that form the commissioning baseline"),
        Param("sigma_floor", 0.05, "(0, inf)", "log C",
              "floor of the baseline's robust spread"),
        Param("alarm_ratio", 3.0, "(1, inf)", "x baseline",
              "the shift the CUSUM is tuned to"),
        *change_test_params(alpha=0.1, clear_samples=12),
        Param("clear_ratio", 1.5, "(1, inf)", "x baseline",
              "clears below it (less than `alarm_ratio`)"),
        Param("spec_clear_fraction", 0.8, "(0, 1]", "of the limit",
              "out of specification clears below this share"),
        Param("trend_every", 12, "[1, inf)", "samples",
              "qualifying samples per trend point"),
        Param("trend_points", 16, "[3, 256]", "points",
              "trend ring size"),
        Param("trend_min_points", 6, "[3, 256]", "points",
              "post-onset points a RUL needs (at most `trend_points`)"),
        Param("trend_t_min", 3.0, "(0, inf)", "",
              "t statistic of the slope a RUL needs"),
        Param("urgent_days", 30.0, "[0, inf)", "days",
              "escalate once the late-bound RUL is below this"),
        Param("rise_test", False, "", "",
              "raise on sustained growth of C too, before its level does"),
        Param("rise_min_growth", 7.0, "(0, inf)", "%/week",
              "growth the rise test ignores (wear creep, seasons)"),
        Param("rise_ratio", 1.3, "(1, inf)", "x first weeks",
              "level C must also have reached (over its first three weeks) to raise"),
        Param("rise_sigmas", 8.0, "[0, inf)", "sigmas",
              "rise decision interval, in the spread of the device's daily points"),
        Param("rise_min", 0.05, "(0, inf)", "log C",
              "rise decision interval floor"),
        Param("rise_point_hours", 24.0, "(0, inf)", "h",
              "event time averaged into one point of the rise test"),
    )  # fmt: skip

    def __init__(
        self,
        *,
        exponent: float = 0.5,
        closed_max_pct: float = 2.0,
        position_required: bool = False,
        min_dp_kpa: float = 100.0,
        leak_floor_mm3s: float = 1e-3,
        baseline_samples: int = 48,
        sigma_floor: float = 0.05,
        alpha: float = 0.1,
        alarm_ratio: float = 3.0,
        clear_ratio: float = 1.5,
        clear_samples: int = 12,
        h_shifts: float = 2.5,
        h_sigmas: float = 8.0,
        spec_clear_fraction: float = 0.8,
        trend_every: int = 12,
        trend_points: int = 16,
        trend_min_points: int = 6,
        trend_t_min: float = 3.0,
        urgent_days: float = 30.0,
        rise_test: bool = False,
        rise_min_growth: float = 7.0,
        rise_ratio: float = 1.3,
        rise_sigmas: float = 8.0,
        rise_min: float = 0.05,
        rise_point_hours: float = 24.0,
    ) -> None:
        check_params(type(self).__name__, self.PARAMS, locals())
        if not clear_ratio < alarm_ratio:
            raise ValueError("need clear_ratio < alarm_ratio")
        if not trend_min_points <= trend_points:
            raise ValueError("need trend_min_points <= trend_points")
        self.exponent = exponent
        self.closed_max_pct = closed_max_pct
        self.position_required = position_required
        self.min_dp_kpa = min_dp_kpa
        self.leak_floor_mm3s = leak_floor_mm3s
        self.baseline_samples = baseline_samples
        self.sigma_floor = sigma_floor
        self.alpha = alpha
        self.alarm_ratio = alarm_ratio
        self.clear_ratio = clear_ratio
        self.clear_samples = clear_samples
        self.h_shifts = h_shifts
        self.h_sigmas = h_sigmas
        self.spec_clear_fraction = spec_clear_fraction
        self.trend_every = trend_every
        self.trend_points = trend_points
        self.trend_min_points = trend_min_points
        self.trend_t_min = trend_t_min
        self.urgent_days = urgent_days
        self.rise_test = rise_test
        self.rise_min_growth = rise_min_growth
        self.rise_ratio = rise_ratio
        self.rise_sigmas = rise_sigmas
        self.rise_min = rise_min
        self.rise_point_hours = rise_point_hours
        self._rise = RiseTest(
            "rise_",
            k_per_day=math.log1p(rise_min_growth / 100.0) / 7.0,
            level_min=math.log(rise_ratio),
            h_sigmas=rise_sigmas,
            h_min=rise_min,
            bucket_s=rise_point_hours * 3600.0,
        )
        self._delta = math.log(alarm_ratio)
        self._test = ChangeTest(
            "maint_",
            h_shifts=h_shifts,
            h_sigmas=h_sigmas,
            alpha=alpha,
            clear_fraction=math.log(clear_ratio) / self._delta,
            clear_samples=clear_samples,
        )
        super().__init__()

    def _state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64, i32, i8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int8)
        spec: dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]] = {
            "n_seen": (np.dtype(np.int64), (), 0),  # qualifying samples
            # float32 halves the commissioning buffer; log C needs no more precision
            "buf_logc": (np.dtype(np.float32), (self.baseline_samples,), 0.0),
            "base_logc": (f64, (), 0.0),
            "base_sigma": (f64, (), 0.0),
            "oos": (np.dtype(np.bool_), (), False),
            "oos_clear_n": (i32, (), 0),
            "oos_since": (f64, (), 0.0),
            "urgent": (np.dtype(np.bool_), (), False),
            "category": (i8, (), 0),
            "changed_t": (f64, (), 0.0),  # 0: never changed
            "last_qual_t": (f64, (), 0.0),  # newest qualifying sample
            # trend ring: bucket first time, mean time, mean clipped z
            "bucket_n": (i32, (), 0),
            "bucket_t0": (f64, (), 0.0),
            "bucket_sum_dt": (f64, (), 0.0),
            "bucket_sum_z": (f64, (), 0.0),
            "trend_n": (np.dtype(np.int64), (), 0),
            "trend_t0": (f64, (self.trend_points,), 0.0),
            "trend_t": (f64, (self.trend_points,), 0.0),
            "trend_z": (np.dtype(np.float32), (self.trend_points,), 0.0),
            # last registry attributes seen, 0 = unknown
            "leakage_class": (i8, (), 0),
            "dn_mm": (f64, (), 0.0),
            "pn_bar": (f64, (), 0.0),
        }
        spec.update(self._test.spec())
        spec.update(self._rise.spec())
        return spec

    # -- learning ------------------------------------------------------------------------

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        s = self._state
        if devices is not None:
            for col in ("leakage_class", "dn_mm", "pn_bar"):
                s[col][batch.slot] = devices.column(col, batch.slot)
        idx, logc = self.log_coefficient(batch)
        if not len(idx):
            return
        slot = batch.slot[idx]
        t = batch.t_s[idx]
        for rows in step_groups(slot):
            self._step(slot[rows], t[rows], logc[rows])

    def log_coefficient(self, batch: SampleBatch) -> tuple[np.ndarray, F64]:
        """The rows of ``batch`` that say something about the seat, and their log C (also
        what a device page charts)."""
        leak = batch.signal("leak_mm3s")
        dp = batch.signal("p_in_kpa") - batch.signal("p_out_kpa")
        pos = batch.signal("position_pct")
        closed = pos <= self.closed_max_pct
        if not self.position_required:
            closed |= np.isnan(pos)
        # NaN compares False, so a sample missing leak or a pressure drops out here.
        ok = closed & (dp >= self.min_dp_kpa) & (leak >= 0) & np.isfinite(leak) & np.isfinite(dp)
        idx = np.flatnonzero(ok)
        logc = np.log(np.maximum(leak[idx], self.leak_floor_mm3s)) - self.exponent * np.log(dp[idx])
        return idx, logc

    def _step(self, slots: I64, t: F64, logc: F64) -> None:
        """One sample for each of ``slots`` (distinct)."""
        s = self._state
        k = self.baseline_samples
        n_seen = s["n_seen"][slots]
        s["n_seen"][slots] = n_seen + 1
        s["last_qual_t"][slots] = t
        learning = n_seen < k
        if learning.any():
            ls = slots[learning]
            pos = n_seen[learning]
            s["buf_logc"][ls, pos] = logc[learning]
            done = pos == k - 1
            if done.any():
                self._commission(ls[done], t[learning][done])
        if learning.all():
            return
        d = ~learning
        ds, dt = slots[d], t[d]
        z = logc[d] - s["base_logc"][ds]
        sigma = s["base_sigma"][ds]
        lvl = s["maint_level"][ds]
        clip = np.maximum(self._delta, 3.0 * sigma)
        zc = lvl + np.clip(z - lvl, -clip, clip)
        self._trend_add(ds, dt, zc)
        res = self._test.step(s, ds, z, dt, delta=self._delta, sigma=sigma)
        if self.rise_test:
            self._rise.step(s, ds, zc, dt)
        s["urgent"][ds] &= res.on | s["rise_on"][ds]
        self._evaluate(ds, dt)

    def _commission(self, slots: I64, t: F64) -> None:
        s = self._state
        med, sigma = robust_level(s["buf_logc"][slots], self.sigma_floor)
        s["base_logc"][slots] = med
        s["base_sigma"][slots] = sigma
        self._evaluate(slots, t)

    def _trend_add(self, slots: I64, t: F64, z: F64) -> None:
        s = self._state
        n = s["bucket_n"][slots]
        t0 = np.where(n == 0, t, s["bucket_t0"][slots])
        s["bucket_t0"][slots] = t0
        sum_dt = s["bucket_sum_dt"][slots] + (t - t0)
        sum_z = s["bucket_sum_z"][slots] + z
        n = n + 1
        full = n >= self.trend_every
        if full.any():
            fs = slots[full]
            j = s["trend_n"][fs] % self.trend_points
            s["trend_t0"][fs, j] = t0[full]
            s["trend_t"][fs, j] = t0[full] + sum_dt[full] / n[full]
            s["trend_z"][fs, j] = sum_z[full] / n[full]
            s["trend_n"][fs] += 1
        s["bucket_n"][slots] = np.where(full, 0, n)
        s["bucket_sum_dt"][slots] = np.where(full, 0.0, sum_dt)
        s["bucket_sum_z"][slots] = np.where(full, 0.0, sum_z)

    def _log_spec(self, slots: I64 | slice) -> tuple[F64, F64]:
        """log allowable rate and log test ΔP^n per slot (NaN when unknown)."""
        s = self._state
        allow = iso5208.allowable_mm3s(s["leakage_class"][slots], s["dn_mm"][slots])
        dp_test = iso5208.seat_test_dp_kpa(s["pn_bar"][slots])
        return np.log(allow), self.exponent * np.log(dp_test)

    def _evaluate(self, slots: I64, t: F64) -> None:
        """Advance the class check and the verdict after the level moved."""
        s = self._state
        level = s["maint_level"][slots]
        log_allow, log_dpn = self._log_spec(slots)
        known = np.isfinite(log_allow) & np.isfinite(log_dpn)
        log_leak_test = s["base_logc"][slots] + level + log_dpn
        oos = self._hysteresis(
            slots,
            t,
            over=known & (log_leak_test > log_allow),
            under=log_leak_test < log_allow + math.log(self.spec_clear_fraction),
            known=known,
        )
        maint = self._maint_on(slots)
        flipped = np.zeros(len(slots), dtype=bool)
        if maint.any() and self.urgent_days > 0:
            ms = slots[maint]
            _, rul_late, _, _ = self._rul(ms)
            was = s["urgent"][ms]
            s["urgent"][ms] = was | (rul_late < self.urgent_days * _DAY_S)
            flipped[maint] = s["urgent"][ms] & ~was
        cat = np.where(
            oos,
            CategoryCode.OUT_OF_SPECIFICATION,
            np.where(maint, CategoryCode.MAINTENANCE_REQUIRED, CategoryCode.NONE),
        ).astype(np.int8)
        changed = (cat != s["category"][slots]) | flipped
        s["category"][slots] = cat
        s["changed_t"][slots[changed]] = t[changed]

    def _hysteresis(
        self, slots: I64, t: F64, *, over: np.ndarray, under: np.ndarray, known: np.ndarray
    ) -> np.ndarray:
        s = self._state
        flag = s["oos"][slots]
        n = s["oos_clear_n"][slots]
        rise = ~flag & over
        n = np.where(flag & under, n + 1, 0)
        fall = flag & (n >= self.clear_samples)
        fall |= flag & ~known  # attributes withdrawn: the check no longer applies
        flag = (flag | rise) & ~fall
        s["oos"][slots] = flag
        s["oos_clear_n"][slots] = np.where(flag, n, 0)
        s["oos_since"][slots] = np.where(rise, t, np.where(flag, s["oos_since"][slots], 0))
        return flag

    def _maint_on(self, slots: I64 | slice) -> np.ndarray:
        """Maintenance asked for: the level's CUSUM or the rise test is raised."""
        return self._state["maint_on"][slots] | self._state["rise_on"][slots]

    def _maint_since(self, slots: I64 | slice) -> F64:
        """Onset of the raised maintenance condition: the earlier of the two tests'."""
        s = self._state
        return np.minimum(
            np.where(s["maint_on"][slots], s["maint_since"][slots], np.inf),
            np.where(s["rise_on"][slots], s["rise_since"][slots], np.inf),
        )

    # -- trend ---------------------------------------------------------------------------

    def _rul(self, slots: I64 | slice) -> tuple[F64, F64, F64, F64]:
        """(remaining s to the class limit, its late bound, slope of z per day, t) per slot.

        Remaining time is inf without a significant upward trend, NaN without a class
        limit or enough points after the onset, 0 once the fitted line is over the limit.
        """
        s = self._state
        tt = s["trend_t"][slots]
        tt0 = s["trend_t0"][slots]
        zz = s["trend_z"][slots].astype(np.float64)
        n_pts = np.minimum(s["trend_n"][slots], self.trend_points)
        valid = np.arange(self.trend_points)[None, :] < n_pts[:, None]
        onset = np.where(self._maint_on(slots), self._maint_since(slots), s["maint_start"][slots])
        valid &= tt0 >= onset[:, None]
        m = valid.sum(axis=1).astype(np.float64)
        w = valid.astype(np.float64)
        msafe = np.maximum(m, 1.0)
        ref = s["last_qual_t"][slots]
        x = np.where(valid, (tt - ref[:, None]) / _DAY_S, 0.0)
        xm = (w * x).sum(axis=1) / msafe
        zm = (w * zz).sum(axis=1) / msafe
        dx = np.where(valid, x - xm[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        enough = (m >= self.trend_min_points) & (sxx > 0)
        sxx_safe = np.where(enough, sxx, 1.0)
        slope = (dx * (zz - zm[:, None])).sum(axis=1) / sxx_safe
        resid = np.where(valid, zz - zm[:, None] - slope[:, None] * dx, 0.0)
        s2 = (resid * resid).sum(axis=1) / np.maximum(m - 2, 1.0)
        # The bucket means scatter at least as much as the baseline noise allows.
        s2 = np.maximum(s2, (s["base_sigma"][slots] ** 2) / self.trend_every)
        tstat = slope / np.sqrt(np.maximum(s2, 1e-18) / sxx_safe)
        level_now = zm - slope * xm  # fitted z at the newest qualifying sample
        log_allow, log_dpn = self._log_spec(slots)
        limit_z = log_allow - log_dpn - s["base_logc"][slots]
        rising = enough & (tstat > self.trend_t_min) & (slope > 0)
        # slope two standard errors lower: the late end of the crossing time
        slope_lo = slope * (1.0 - 2.0 / np.where(rising, tstat, 1.0))
        days, days_late = (
            np.where(rising, (limit_z - level_now) / np.where(rising, b, 1.0), np.inf)
            for b in (slope, slope_lo)
        )
        known = enough & np.isfinite(limit_z)
        rul = np.where(known, np.maximum(days, 0.0) * _DAY_S, np.nan)
        rul_late = np.where(known, np.maximum(days_late, 0.0) * _DAY_S, np.nan)
        return (
            rul,
            rul_late,
            np.where(enough, slope, np.nan),
            np.where(enough, tstat, np.nan),
        )

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        n = self._n_slots
        s = {k: v[:n] for k, v in self._state.items()}
        est = s["n_seen"] >= self.baseline_samples
        cat = s["category"]
        base_c = np.where(est, np.exp(s["base_logc"]), np.nan)
        ratio = np.where(est, np.exp(s["maint_level"]), np.nan)
        log_allow, log_dpn = self._log_spec(slice(0, n))
        _, h, _ = self._test.thresholds(self._delta, s["base_sigma"])
        every = slice(0, n)
        maint_on, maint_since = self._maint_on(every), self._maint_since(every)
        since = np.where(
            maint_on & s["oos"],
            np.minimum(maint_since, s["oos_since"]),
            np.where(s["oos"], s["oos_since"], np.where(maint_on, maint_since, np.nan)),
        )
        status = np.where(
            s["n_seen"] == 0,
            Status.NO_DATA,
            np.where(~est, Status.LEARNING, np.where(cat > 0, Status.ALARM, Status.NORMAL)),
        ).astype(np.int8)
        rul, rul_late, slope, tstat = self._rul(slice(0, n))
        sigma_lvl = np.maximum(s["base_sigma"] * self._test.ewma_sd, 1e-9)
        over_spec = (s["base_logc"] + s["maint_level"] + log_dpn - log_allow) / sigma_lvl
        rise_h = s["rise_h"]
        rise_known = self._rise.testing(s, every)
        # only the rise test raised: its statistic over threshold, plus the level's share
        # of a relevant shift (~0.65 at the raise, more as the leak keeps growing)
        rise_conf = confidence(
            s["rise_cusum"] / np.where(rise_h > 0, rise_h, np.inf)
            + np.maximum(s["rise_m"] - s["rise_m0"] - self._rise.level_min, 0.0) / self._delta
        )
        conf = np.where(
            s["oos"],
            confidence(1.0 + np.maximum(over_spec, 0.0)),
            np.where(
                s["maint_on"],
                self._test.confidence(s, every, self._delta, s["base_sigma"]),
                rise_conf,
            ),
        )
        rate = self._rise.rate_per_day(s, every)
        severity = SEVERITY_BY_CATEGORY[cat] + (s["urgent"] & (cat > 0)).astype(np.int8)
        return Verdicts(
            cause=self.cause,
            signal=f"leak_mm3s / (p_in_kpa - p_out_kpa)^{self.exponent:g}",
            status=status,
            category=cat,
            severity=severity,
            since_s=since,
            changed_s=np.where(s["changed_t"] > 0, s["changed_t"], np.nan),
            confidence=np.where(cat > 0, conf, np.nan),
            evidence={
                "baseline_c": base_c,
                "baseline_spread": np.where(est, s["base_sigma"], np.nan),
                "current_c": base_c * ratio,
                "ratio": ratio,
                "threshold_ratio": np.where(est, self.alarm_ratio, np.nan),
                "clear_ratio": np.where(est, self.clear_ratio, np.nan),
                "cusum": np.where(est, s["maint_cusum"], np.nan),
                "cusum_threshold": np.where(est, h, np.nan),
                "leak_at_test_mm3s": base_c * ratio * np.exp(log_dpn),
                "allowable_mm3s": np.exp(log_allow),
                "test_dp_kpa": iso5208.seat_test_dp_kpa(s["pn_bar"]),
                "dn_mm": np.where(s["dn_mm"] > 0, s["dn_mm"], np.nan),
                "leakage_class": s["leakage_class"].astype(np.float64),
                "growth_per_30d": np.exp(np.clip(30.0 * slope, -7.0, 7.0)),  # tidied to <= 1000x
                # the rise test: growth since the point its excursion rose from
                "growth_per_week": np.exp(np.clip(7.0 * rate, -7.0, 7.0)),
                "rise_start_t": np.where(np.isfinite(rate), s["rise_ref_t"], np.nan),
                "rise_cusum": np.where(rise_known, s["rise_cusum"], np.nan),
                "rise_threshold": np.where(rise_known, rise_h, np.nan),
                "rise_raised": s["rise_on"].astype(np.float64),
                "level_raised": s["maint_on"].astype(np.float64),
                "trend_t": tstat,
                "rul_s": rul,
                "rul_late_s": rul_late,
                "limit_eta_s": s["last_qual_t"] + rul,
                "samples": s["n_seen"].astype(np.float64),
            },
        )

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        out = super().evidence(v, i)
        code = int(v.evidence["leakage_class"][i])
        out["leakage_class"] = iso5208.LEAKAGE_CLASSES[code] or None
        out["exponent"] = self.exponent
        rul = float(v.evidence["rul_s"][i])
        if rul == math.inf:
            out["rul_s"] = None
            out["rul"] = "no significant upward trend"
        elif math.isfinite(rul):
            oos = int(v.category[i]) == CategoryCode.OUT_OF_SPECIFICATION
            out["rul"] = fmt_rul(rul, alarm_confirmed=oos)
        for k in ("rise_raised", "level_raised"):
            out[k] = bool(out[k])
        growth, start = out.get("growth_per_week"), out.get("rise_start_t")
        out = tidy_evidence(out)
        out["trend"] = (
            f"leak coefficient rising {fmt_growth_per_week(growth)} since {fmt_date(start)}"
            if growth is not None and start is not None and growth > 1.0
            else None
        )
        return out

    def summary(self, v: Verdicts, i: int) -> str:
        e = self.evidence(v, i)
        since = fmt_time(e["since"])
        rul = e.get("rul_s")
        tail = ""
        if rul is not None and e.get("limit_eta_s") is not None:
            tail = (
                f"; at the current trend it reaches the class limit in {e['rul']}"
                f" ({fmt_time(e['limit_eta_s'])})"
            )
        if v.category[i] == CategoryCode.OUT_OF_SPECIFICATION:
            return (
                f"Seat leakage {e['leak_at_test_mm3s']:.3g} mm³/s at the ISO 5208 test pressure "
                f"({e['test_dp_kpa']:.0f} kPa) exceeds the rate {e['leakage_class']} limit of "
                f"{e['allowable_mm3s']:.3g} mm³/s for DN{e['dn_mm']:.0f} since {since}: "
                "plan seat repair or valve replacement"
            )
        if v.category[i] == CategoryCode.MAINTENANCE_REQUIRED and not e["level_raised"]:
            # raised by the rise test alone: the growth is the finding, the level context
            return (
                f"Seat {e['trend'] or 'leak coefficient rising'}, now {e['ratio']:.2g}x its "
                f"commissioning baseline (C={e['current_c']:.3g}, baseline "
                f"{e['baseline_c']:.3g} mm³/s/kPa^{self.exponent:g}){tail}: "
                "schedule seat inspection"
            )
        if v.category[i] == CategoryCode.MAINTENANCE_REQUIRED:
            return (
                f"Seat leakage {e['ratio']:.1f}x its commissioning baseline "
                f"(C={e['current_c']:.3g}, baseline {e['baseline_c']:.3g} "
                f"mm³/s/kPa^{self.exponent:g}) since {since}{tail}: schedule seat inspection"
            )
        return "Seat leakage back within its baseline"
