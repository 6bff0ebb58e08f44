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
   baseline, median of log C, and a robust spread, 1.4826 * MAD with a floor
   (``sigma_floor``) so that a very tight valve with quantised readings does not get a
   spread of zero. The baseline is then frozen: it is never updated from later samples,
   so slow wear is not learned as normal.
2. Degradation (``maintenance_required``): a robust EWMA of z = log(C / baseline). Each
   step is clipped to ±max(log alarm_ratio, 3 sigma) around the current EWMA, so one spike
   moves it by at most ``alpha`` times that while a real step still passes through after a
   few samples. The alarm is raised when the EWMA ratio exceeds ``alarm_ratio`` (raised to
   ``guard_sigmas`` EWMA standard deviations for a noisy device), and cleared once it has
   stayed below ``clear_ratio`` for ``clear_samples`` samples in a row.
3. Class (``out_of_specification``): the smoothed C scaled to the ISO 5208 liquid seat
   test pressure (1.1 * PN) is compared with the allowable rate of the device's leakage
   class for its DN; cleared once below ``spec_clear_fraction`` of it for
   ``clear_samples`` samples. Skipped when the device has no class, DN or PN. Both checks
   start once the baseline exists; a valve that is already out of its class at
   commissioning is flagged at the end of commissioning.

The verdict category is the more severe of the two. ``since`` is the event time at which
the active condition was first met.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import numpy as np

from analytics import iso5208
from analytics.base import (
    F64,
    I64,
    CategoryCode,
    Detector,
    DeviceTable,
    SampleBatch,
    Status,
    Verdicts,
    step_groups,
)

__all__ = ["SeatLeakDetector"]

_SEVERITY: Final = np.array([0, 2, 3, 4, 5], dtype=np.int8)  # by CategoryCode
_MAD_TO_SIGMA: Final = 1.4826  # MAD of a normal distribution -> its standard deviation


class SeatLeakDetector(Detector):
    cause: ClassVar[str] = "seat_leak"
    signals: ClassVar[tuple[str, ...]] = ("p_in_kpa", "p_out_kpa", "leak_mm3s", "position_pct")
    kinds: ClassVar[frozenset[str]] = frozenset({"valve"})

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
        guard_sigmas: float = 5.0,
        spec_clear_fraction: float = 0.8,
    ) -> None:
        if not 0 < exponent <= 2:
            raise ValueError("exponent must be in (0, 2]")
        if min_dp_kpa <= 0 or leak_floor_mm3s <= 0 or sigma_floor <= 0:
            raise ValueError("min_dp_kpa, leak_floor_mm3s and sigma_floor must be > 0")
        if baseline_samples < 3 or clear_samples < 1:
            raise ValueError("baseline_samples must be >= 3 and clear_samples >= 1")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if not 1 < clear_ratio < alarm_ratio:
            raise ValueError("need 1 < clear_ratio < alarm_ratio")
        if not 0 < spec_clear_fraction <= 1:
            raise ValueError("spec_clear_fraction must be in (0, 1]")
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
        self.guard_sigmas = guard_sigmas
        self.spec_clear_fraction = spec_clear_fraction
        # Stationary sd of an EWMA of unit-variance noise.
        self._ewma_sd = math.sqrt(alpha / (2 - alpha))
        self._log_alarm = math.log(alarm_ratio)
        self._log_clear = math.log(clear_ratio)
        super().__init__()

    def _state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64, i32, i8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int8)
        return {
            "n_seen": (np.dtype(np.int64), (), 0),  # qualifying samples
            # float32 halves the commissioning buffer; log C needs no more precision
            "buf_logc": (np.dtype(np.float32), (self.baseline_samples,), 0.0),
            "base_logc": (f64, (), 0.0),
            "base_sigma": (f64, (), 0.0),
            "ewma_z": (f64, (), 0.0),
            "maint": (np.dtype(np.bool_), (), False),
            "maint_clear_n": (i32, (), 0),
            "maint_since": (f64, (), 0.0),
            "oos": (np.dtype(np.bool_), (), False),
            "oos_clear_n": (i32, (), 0),
            "oos_since": (f64, (), 0.0),
            "category": (i8, (), 0),
            "changed_t": (f64, (), 0.0),  # 0: never changed
            # last registry attributes seen, 0 = unknown
            "leakage_class": (i8, (), 0),
            "dn_mm": (f64, (), 0.0),
            "pn_bar": (f64, (), 0.0),
        }

    # -- learning ------------------------------------------------------------------------

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        s = self._state
        if devices is not None:
            for col in ("leakage_class", "dn_mm", "pn_bar"):
                s[col][batch.slot] = devices.column(col, batch.slot)
        leak = batch.signal("leak_mm3s")
        dp = batch.signal("p_in_kpa") - batch.signal("p_out_kpa")
        pos = batch.signal("position_pct")
        closed = pos <= self.closed_max_pct
        if not self.position_required:
            closed |= np.isnan(pos)
        # NaN compares False, so a sample missing leak or a pressure drops out here.
        ok = closed & (dp >= self.min_dp_kpa) & (leak >= 0) & np.isfinite(leak) & np.isfinite(dp)
        idx = np.flatnonzero(ok)
        if not len(idx):
            return
        slot = batch.slot[idx]
        t = batch.t_s[idx]
        logc = np.log(np.maximum(leak[idx], self.leak_floor_mm3s)) - self.exponent * np.log(dp[idx])
        for rows in step_groups(slot):
            self._step(slot[rows], t[rows], logc[rows])

    def _step(self, slots: I64, t: F64, logc: F64) -> None:
        """One sample for each of ``slots`` (distinct)."""
        s = self._state
        k = self.baseline_samples
        n_seen = s["n_seen"][slots]
        s["n_seen"][slots] = n_seen + 1
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
        ds = slots[d]
        z = logc[d] - s["base_logc"][ds]
        ewma = s["ewma_z"][ds]
        clip = np.maximum(self._log_alarm, 3.0 * s["base_sigma"][ds])
        s["ewma_z"][ds] = ewma + self.alpha * np.clip(z - ewma, -clip, clip)
        self._evaluate(ds, t[d])

    def _commission(self, slots: I64, t: F64) -> None:
        s = self._state
        buf = s["buf_logc"][slots].astype(np.float64)
        med = np.median(buf, axis=1)
        mad = np.median(np.abs(buf - med[:, None]), axis=1)
        s["base_logc"][slots] = med
        s["base_sigma"][slots] = np.maximum(_MAD_TO_SIGMA * mad, self.sigma_floor)
        s["ewma_z"][slots] = 0.0
        self._evaluate(slots, t)

    def _threshold_z(self, sigma: F64) -> F64:
        return np.maximum(self._log_alarm, self.guard_sigmas * self._ewma_sd * sigma)

    def _log_spec(self, slots: I64 | slice) -> tuple[F64, F64]:
        """log allowable rate and log test ΔP^n per slot (NaN when unknown)."""
        s = self._state
        allow = iso5208.allowable_mm3s(s["leakage_class"][slots], s["dn_mm"][slots])
        dp_test = iso5208.seat_test_dp_kpa(s["pn_bar"][slots])
        return np.log(allow), self.exponent * np.log(dp_test)

    def _evaluate(self, slots: I64, t: F64) -> None:
        """Advance both hysteresis state machines after the EWMA moved."""
        s = self._state
        ewma = s["ewma_z"][slots]
        maint = self._hysteresis(
            "maint",
            slots,
            t,
            over=ewma > self._threshold_z(s["base_sigma"][slots]),
            under=ewma < self._log_clear,
        )
        log_allow, log_dpn = self._log_spec(slots)
        known = np.isfinite(log_allow) & np.isfinite(log_dpn)
        log_leak_test = s["base_logc"][slots] + ewma + log_dpn
        oos = self._hysteresis(
            "oos",
            slots,
            t,
            over=known & (log_leak_test > log_allow),
            under=log_leak_test < log_allow + math.log(self.spec_clear_fraction),
            known=known,
        )
        cat = np.where(
            oos,
            CategoryCode.OUT_OF_SPECIFICATION,
            np.where(maint, CategoryCode.MAINTENANCE_REQUIRED, CategoryCode.NONE),
        ).astype(np.int8)
        changed = cat != s["category"][slots]
        s["category"][slots] = cat
        s["changed_t"][slots[changed]] = t[changed]

    def _hysteresis(
        self,
        name: str,
        slots: I64,
        t: F64,
        *,
        over: np.ndarray,
        under: np.ndarray,
        known: np.ndarray | None = None,
    ) -> np.ndarray:
        s = self._state
        flag = s[name][slots]
        n = s[f"{name}_clear_n"][slots]
        rise = ~flag & over
        n = np.where(flag & under, n + 1, 0)
        fall = flag & (n >= self.clear_samples)
        if known is not None:
            fall |= flag & ~known  # attributes withdrawn: the check no longer applies
        flag = (flag | rise) & ~fall
        s[name][slots] = flag
        s[f"{name}_clear_n"][slots] = np.where(flag, n, 0)
        s[f"{name}_since"][slots] = np.where(rise, t, np.where(flag, s[f"{name}_since"][slots], 0))
        return flag

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        n = self._n_slots
        s = {k: v[:n] for k, v in self._state.items()}
        est = s["n_seen"] >= self.baseline_samples
        cat = s["category"]
        base_c = np.where(est, np.exp(s["base_logc"]), np.nan)
        ratio = np.where(est, np.exp(s["ewma_z"]), np.nan)
        log_allow, log_dpn = self._log_spec(slice(0, n))
        thr_z = self._threshold_z(s["base_sigma"])
        since = np.where(
            s["maint"] & s["oos"],
            np.minimum(s["maint_since"], s["oos_since"]),
            np.where(s["oos"], s["oos_since"], np.where(s["maint"], s["maint_since"], np.nan)),
        )
        status = np.where(
            s["n_seen"] == 0,
            Status.NO_DATA,
            np.where(~est, Status.LEARNING, np.where(cat > 0, Status.ALARM, Status.NORMAL)),
        ).astype(np.int8)
        return Verdicts(
            cause=self.cause,
            signal=f"leak_mm3s / (p_in_kpa - p_out_kpa)^{self.exponent:g}",
            status=status,
            category=cat,
            severity=_SEVERITY[cat],
            since_s=since,
            changed_s=np.where(s["changed_t"] > 0, s["changed_t"], np.nan),
            evidence={
                "baseline_c": base_c,
                "baseline_spread": np.where(est, s["base_sigma"], np.nan),
                "current_c": base_c * ratio,
                "ratio": ratio,
                "threshold_ratio": np.where(est, np.exp(thr_z), np.nan),
                "clear_ratio": np.where(est, self.clear_ratio, np.nan),
                "leak_at_test_mm3s": base_c * ratio * np.exp(log_dpn),
                "allowable_mm3s": np.exp(log_allow),
                "test_dp_kpa": iso5208.seat_test_dp_kpa(s["pn_bar"]),
                "dn_mm": np.where(s["dn_mm"] > 0, s["dn_mm"], np.nan),
                "leakage_class": s["leakage_class"].astype(np.float64),
                "samples": s["n_seen"].astype(np.float64),
            },
        )

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        out = super().evidence(v, i)
        code = int(v.evidence["leakage_class"][i])
        out["leakage_class"] = iso5208.LEAKAGE_CLASSES[code] or None
        out["exponent"] = self.exponent
        return out

    def summary(self, v: Verdicts, i: int) -> str:
        e = self.evidence(v, i)
        since = _fmt_time(e["since"])
        if v.category[i] == CategoryCode.OUT_OF_SPECIFICATION:
            return (
                f"Seat leakage {e['leak_at_test_mm3s']:.3g} mm³/s at the ISO 5208 test pressure "
                f"({e['test_dp_kpa']:.0f} kPa) exceeds the rate {e['leakage_class']} limit of "
                f"{e['allowable_mm3s']:.3g} mm³/s for DN{e['dn_mm']:.0f} since {since}: "
                "plan seat repair or valve replacement"
            )
        if v.category[i] == CategoryCode.MAINTENANCE_REQUIRED:
            return (
                f"Seat leakage {e['ratio']:.1f}x its commissioning baseline "
                f"(C={e['current_c']:.3g}, baseline {e['baseline_c']:.3g} "
                f"mm³/s/kPa^{self.exponent:g}) since {since}: schedule seat inspection"
            )
        return "Seat leakage back within its baseline"


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "an unknown time"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")
