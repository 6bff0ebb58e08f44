"""Pressure hold / pressure decay of a closed valve, from recorded readings (offline).

The pressure-decay method of valve seat testing (as publicly described for ISO 5208 and
EN 12266-1 closure tests): a volume on one side of the closed seat (upstream, or the
body cavity between two seats) is pressurised and isolated; whatever leaks through the
seat leaves the volume and its pressure falls. Over a hold the decay rate ``-dp/dt``
turns into a leak rate through the volume's stiffness:

* gas, isothermal: ``Q = V · (-dp/dt) / p_atm``, the leak as a volume of gas at
  atmospheric pressure per second (ideal gas, p·V = n·R·T);
* liquid: ``Q = V · (-dp/dt) / K``, ``K`` the effective bulk modulus of the trapped
  liquid and its enclosure (water alone is about 2.2 GPa; pipe compliance and trapped air
  make the effective value lower, so it is a parameter).

A recording holds many holds (a test bench cycles, a plant valve closes and its line is
blocked in); this module finds them and judges each one:

1. A hold is a run of rows with the valve closed (position at or below
   ``closed_max_pct``) lasting ``settle_s + min_hold_s`` or more, at a pressure of at
   least ``min_dp_kpa`` across the seat, with ``min_samples`` readings or more. The first
   ``settle_s`` are left out (the gas just compressed is warm, the transmitter's filter
   settles), and it ends at the first pressure step far outside its own (the volume
   refilled or vented while the valve was still shut).
2. Isolated or not: the pressure over the hold is fitted by a quadratic in time (a leak
   decays a volume exponentially, not linearly). A pressure that is still being driven
   (a pump, a regulator cycling) leaves a residual far above the transmitter's noise and
   resolution: such a run is reported as not isolated and not judged. A hold that lost
   more than half its pressure is a gross leak whatever the fit.
3. Temperature: a trapped volume that warms raises its pressure, one that cools lowers
   it, and either can hide or fake a leak. With ``temp_c`` mapped, a gas hold's pressure
   is brought to the hold's mean temperature by the ideal-gas law (absolute pressure
   ∝ absolute temperature at constant volume). A liquid's thermal pressure coefficient
   (kPa/K) depends on the liquid and its enclosure: it is given
   (``thermal_kpa_per_k``) or learned across the training holds (their decay rates
   regressed on their warming rates); without it, a liquid hold whose temperature moved
   is not judged and the report says why.
4. The decay rate (slope at the middle of the hold, compensated) is compared with the
   training holds'. Those must agree with each other (their scatter within
   ``consistency_factor`` x their fits' standard errors): a controlled hold repeats its
   decay, a line pressure that happens to move smoothly while a valve is shut does not,
   and then the test does not run. The baseline is their median, with a spread from
   their scatter and each fit's standard error: a seat leak is a rate significantly
   (``z_alarm``) and materially (``alarm_ratio`` x the baseline) above it. A pressure
   that *rises* is no leak of this seat (an upstream block valve passing, or heat), and
   is said so.
5. With the volume given, the rate becomes a leak rate in mm³/s; for a liquid hold and a
   declared ISO 5208 class, DN and PN it is scaled to the liquid seat-test pressure (1.1
   PN, as ΔP^``exponent``) and compared with the class limit (``sealscope.iso5208``).
   The gas-test table of ISO 5208 is not in sealscope, so a gas hold is compared with its
   baseline only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from analytics.resolution import resolution
from sealscope import iso5208

__all__ = ["Hold", "HoldBaseline", "PressureHoldTest"]

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

P_ATM_KPA: Final = 101.325
_KELVIN: Final = 273.15
_MM3_PER_L: Final = 1e6
_KPA_PER_MPA: Final = 1000.0

Verdict = Literal[
    "training", "normal", "leak", "out_of_specification", "rising", "not_isolated",
    "not_judged",
]  # fmt: skip


@dataclass(slots=True)
class Hold:
    """One closed-valve hold: where it is, what it did, what it means."""

    start: int  # sorted rows [start, stop) of the fit (after settling)
    stop: int
    t0: float
    t1: float
    p_start_kpa: float
    p_end_kpa: float
    dp_mean_kpa: float  # across the seat
    raw_rate_kpa_s: float  # decay rate, -dp/dt at mid-hold, positive = falling
    rate_kpa_s: float  # the same after temperature compensation
    se_kpa_s: float
    resid_kpa: float  # residual of the quadratic fit
    noise_kpa: float  # what the residual may be for an isolated volume
    warming_k_s: float  # NaN without a temperature
    verdict: Verdict = "not_judged"
    why: str = ""
    ratio: float = math.nan  # rate / baseline rate
    z: float = math.nan  # excess over the baseline in standard errors
    score: float = math.nan  # 1.0 = the alarm threshold
    leak_mm3s: float = math.nan  # with the volume
    leak_at_test_mm3s: float = math.nan
    allowable_mm3s: float = math.nan

    @property
    def duration_s(self) -> float:
        return self.t1 - self.t0

    @property
    def flagged(self) -> bool:
        return self.verdict in ("leak", "out_of_specification")


@dataclass(slots=True)
class HoldBaseline:
    rate_kpa_s: float
    spread_kpa_s: float
    holds: int
    thermal_kpa_per_k: float | None = None  # liquid: learned or given
    thermal_learned: bool = False
    notes: list[str] = field(default_factory=list)


class PressureHoldTest:
    """Finds and judges pressure holds; see the module docstring for the steps."""

    def __init__(
        self,
        *,
        medium: Literal["gas", "liquid"] = "gas",
        volume_l: float | None = None,
        bulk_modulus_mpa: float = 2200.0,
        thermal_kpa_per_k: float | None = None,
        closed_max_pct: float = 2.0,
        min_dp_kpa: float = 100.0,
        settle_s: float = 30.0,
        min_hold_s: float = 60.0,
        z_alarm: float = 4.0,
        alarm_ratio: float = 3.0,
        exponent: float = 0.5,
        isolation_factor: float = 4.0,
        min_samples: int = 30,
        consistency_factor: float = 3.0,
    ) -> None:
        if medium not in ("gas", "liquid"):
            raise ValueError(f"medium must be gas or liquid, got {medium!r}")
        if volume_l is not None and not volume_l > 0:
            raise ValueError("the hold volume must be > 0 litres")
        if not bulk_modulus_mpa > 0:
            raise ValueError("the bulk modulus must be > 0 MPa")
        if settle_s < 0 or min_hold_s <= 0 or z_alarm <= 0 or alarm_ratio <= 1:
            raise ValueError("need settle_s >= 0, min_hold_s > 0, z_alarm > 0, alarm_ratio > 1")
        self.medium = medium
        self.volume_l = volume_l
        self.bulk_modulus_mpa = bulk_modulus_mpa
        self.thermal_kpa_per_k = thermal_kpa_per_k
        self.closed_max_pct = closed_max_pct
        self.min_dp_kpa = min_dp_kpa
        self.settle_s = settle_s
        self.min_hold_s = min_hold_s
        self.z_alarm = z_alarm
        self.alarm_ratio = alarm_ratio
        self.exponent = exponent
        self.isolation_factor = isolation_factor
        self.min_samples = min_samples
        self.consistency_factor = consistency_factor
        self.refused = ""  # why the training holds gave no baseline

    # -- finding -------------------------------------------------------------------------

    def find(
        self, t: F64, p_hold: F64, p_out: F64 | None, pos: F64, temp: F64 | None = None
    ) -> tuple[list[Hold], int]:
        """Holds in time-sorted rows, and how many closed runs were too short or unpressurised."""
        closed = (pos <= self.closed_max_pct) & np.isfinite(p_hold)
        edges = np.diff(np.r_[0, closed.astype(np.int8), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        q = resolution(p_hold[np.isfinite(p_hold)])
        holds: list[Hold] = []
        skipped = 0
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            a = int(np.searchsorted(t, t[a] + self.settle_s, side="left"))
            b = _until_jump(p_hold, a, b, q)
            if b - a < self.min_samples or t[b - 1] - t[a] < self.min_hold_s:
                skipped += 1
                continue
            dp = p_hold[a:b] - (np.nan_to_num(p_out[a:b]) if p_out is not None else 0.0)
            if not np.nanmedian(dp) >= self.min_dp_kpa:
                skipped += 1
                continue
            holds.append(self._fit(t, p_hold, dp, temp, a, b, q))
        return holds, skipped

    def _fit(self, t: F64, p: F64, dp: F64, temp: F64 | None, a: int, b: int, q: float) -> Hold:
        tt, pp = t[a:b], p[a:b]
        ok = np.isfinite(pp)
        tc = tt - 0.5 * (tt[0] + tt[-1])
        raw, se, resid = _slope_at_middle(tc[ok], pp[ok], q)
        noise = _noise(pp[ok], q)
        warming = math.nan
        rate, rate_se = raw, se
        if temp is not None:
            tk = temp[a:b]
            okt = ok & np.isfinite(tk)
            if okt.sum() >= 8:
                warming = -_slope_at_middle(tc[okt], tk[okt], resolution(tk[okt]))[0]
                if self.medium == "gas":
                    # isochoric ideal gas: p_abs / T_abs is what a leak changes
                    t_ref = float(np.mean(tk[okt])) + _KELVIN
                    comp = (pp[okt] + P_ATM_KPA) * t_ref / (tk[okt] + _KELVIN) - P_ATM_KPA
                    rate, rate_se, _ = _slope_at_middle(tc[okt], comp, q)
        h = Hold(
            start=a, stop=b, t0=float(tt[0]), t1=float(tt[-1]),
            p_start_kpa=float(np.nanmedian(pp[:8])), p_end_kpa=float(np.nanmedian(pp[-8:])),
            dp_mean_kpa=float(np.nanmean(dp)), raw_rate_kpa_s=raw, rate_kpa_s=rate,
            se_kpa_s=rate_se, resid_kpa=resid, noise_kpa=noise, warming_k_s=warming,
        )  # fmt: skip
        drop = h.p_start_kpa - h.p_end_kpa
        if drop > 0.5 * (h.p_start_kpa + (P_ATM_KPA if self.medium == "gas" else 0.0)):
            # drained: a gross leak, whatever shape the decay took
            h.rate_kpa_s = max(h.rate_kpa_s, drop / max(h.duration_s, 1e-9))
        elif resid > self.isolation_factor * noise:
            h.verdict = "not_isolated"
            h.why = (
                f"pressure moved {resid:.3g} kPa about a smooth decay (an isolated volume: "
                f"about {noise:.2g} kPa): still driven, not a hold"
            )
        return h

    # -- judging -------------------------------------------------------------------------

    def learn(self, holds: list[Hold], in_train: list[bool]) -> HoldBaseline | None:
        """The training holds' decay rate and its spread (None, the reason in ``refused``:
        no isolated training hold, or training holds that disagree)."""
        train = [
            h for h, tr in zip(holds, in_train, strict=True) if tr and h.verdict != "not_isolated"
        ]
        notes: list[str] = []
        thermal, learned = self.thermal_kpa_per_k, False
        if self.medium == "liquid" and thermal is None:
            thermal = _thermal_from_holds(train)
            learned = thermal is not None
            if learned:
                notes.append(
                    f"pressure hold: the trapped liquid's thermal coefficient {thermal:.3g} kPa/K "
                    f"learned from {len(train)} training holds"
                )
        if self.medium == "liquid" and thermal is not None:
            for h in holds:
                if math.isfinite(h.warming_k_s):
                    # warming raises the pressure: it made the decay look smaller
                    h.rate_kpa_s = h.raw_rate_kpa_s + thermal * h.warming_k_s
        if not train:
            self.refused = "no isolated hold inside the training window"
            return None
        rates = np.array([h.rate_kpa_s for h in train])
        ses = np.array([h.se_kpa_s for h in train])
        med = float(np.median(rates))
        scatter = 1.4826 * float(np.median(np.abs(rates - med))) if len(rates) >= 3 else 0.0
        noise = float(np.median(ses))
        if scatter > self.consistency_factor * noise:
            # a controlled hold repeats its decay; a line pressure that happens to move
            # smoothly while the valve is shut does not
            self.refused = (
                f"the {len(train)} training holds disagree (decay rates scatter "
                f"{scatter:.2g} kPa/s, their fits allow {noise:.2g}): not controlled holds "
                "(a line pressure moving while the valve is shut, or the temperature not "
                "mapped with temp=)"
            )
            return None
        spread = max(scatter, noise)
        for h, tr in zip(holds, in_train, strict=True):
            if tr and h.verdict != "not_isolated":
                h.verdict = "training"
        return HoldBaseline(med, spread, len(train), thermal, learned, notes)

    def judge(
        self,
        holds: list[Hold],
        base: HoldBaseline,
        *,
        leakage_class: str = "",
        dn: int | None = None,
        pn: int | None = None,
    ) -> None:
        """Give every hold not used for training (and isolated) its verdict."""
        allow, dp_test = math.nan, math.nan
        if self.medium == "liquid" and leakage_class and dn and pn:
            try:
                code = iso5208.class_code(leakage_class)
            except ValueError:
                code = 0
            allow = float(iso5208.allowable_mm3s(code, dn))
            dp_test = float(iso5208.seat_test_dp_kpa(pn))
        for h in holds:
            h.leak_mm3s = self.leak_mm3s(h.rate_kpa_s, h.p_start_kpa)
            if h.verdict in ("training", "not_isolated"):
                continue
            temp_moved = math.isfinite(h.warming_k_s) and abs(h.warming_k_s) * h.duration_s > 0.2
            if self.medium == "liquid" and temp_moved and base.thermal_kpa_per_k is None:
                h.verdict = "not_judged"
                h.why = (
                    f"the liquid's temperature moved {h.warming_k_s * h.duration_s:+.2g} K "
                    "during the hold and its thermal coefficient is unknown (give "
                    "--hold-thermal KPA_PER_K)"
                )
                continue
            excess = h.rate_kpa_s - base.rate_kpa_s
            sigma = math.hypot(h.se_kpa_s, base.spread_kpa_s)
            h.z = excess / sigma
            material = (self.alarm_ratio - 1.0) * abs(base.rate_kpa_s)
            h.ratio = h.rate_kpa_s / base.rate_kpa_s if base.rate_kpa_s > sigma else math.nan
            h.score = max(0.0, min(h.z / self.z_alarm, excess / material if material else math.inf))
            if h.z > self.z_alarm and excess > material:
                h.verdict = "leak"
            elif h.z < -self.z_alarm and h.rate_kpa_s < -material:
                h.verdict = "rising"
            else:
                h.verdict = "normal"
            if math.isfinite(allow) and math.isfinite(h.leak_mm3s) and h.dp_mean_kpa > 0:
                h.allowable_mm3s = allow
                h.leak_at_test_mm3s = h.leak_mm3s * (dp_test / h.dp_mean_kpa) ** self.exponent
                if h.leak_at_test_mm3s > allow and h.verdict == "leak":
                    h.verdict = "out_of_specification"

    def leak_mm3s(self, rate_kpa_s: float, p_kpa: float) -> float:
        """The leak a decay rate means for the volume (NaN without a volume)."""
        if self.volume_l is None:
            return math.nan
        v = self.volume_l * _MM3_PER_L
        if self.medium == "gas":
            return v * rate_kpa_s / P_ATM_KPA
        return v * rate_kpa_s / (self.bulk_modulus_mpa * _KPA_PER_MPA)

    def describe(self, h: Hold, base: HoldBaseline | None) -> str:
        """What a technician reads about one hold."""
        head = f"hold {h.duration_s:.0f} s at {h.p_start_kpa:.0f} kPa: decay {_rate(h.rate_kpa_s)}"
        if math.isfinite(h.warming_k_s) and h.rate_kpa_s != h.raw_rate_kpa_s:
            head += (
                f" (uncompensated {_rate(h.raw_rate_kpa_s)}; temperature "
                f"{h.warming_k_s * h.duration_s:+.2g} K over the hold)"
            )
        if base is not None and h.verdict not in ("not_isolated", "not_judged"):
            head += f", training holds {_rate(base.rate_kpa_s)} ± {base.spread_kpa_s:.2g}"
        if math.isfinite(h.leak_mm3s):
            what = "of gas at atmospheric pressure" if self.medium == "gas" else "of liquid"
            if h.rate_kpa_s - 2 * h.se_kpa_s > 0:
                head += f"; equivalent leak {h.leak_mm3s:.3g} mm³/s {what}"
            else:  # a decay within its error says only how small the leak is
                upper = self.leak_mm3s(max(h.rate_kpa_s, 0.0) + 2 * h.se_kpa_s, h.p_start_kpa)
                head += f"; equivalent leak below {upper:.2g} mm³/s {what}"
            head += f" ({self.volume_l:g} l)"
        if math.isfinite(h.allowable_mm3s):
            head += (
                f", {h.leak_at_test_mm3s:.3g} mm³/s at the ISO 5208 test pressure against a "
                f"limit of {h.allowable_mm3s:.3g} mm³/s"
            )
        tail = {
            "training": "training hold",
            "normal": "seat tight (within the training holds)",
            "leak": f"seat leak: {h.z:.1f} standard errors above the training holds",
            "out_of_specification": "seat leak beyond its ISO 5208 class",
            "rising": "pressure rising: not a leak through this seat (upstream block valve "
            "passing, or heat)",
            "not_isolated": h.why,
            "not_judged": h.why,
        }[h.verdict]
        return f"{head}: {tail}"


def _rate(r: float) -> str:
    return f"{r:.3g} kPa/s" if r else "0 kPa/s"


def _slope_at_middle(tc: F64, y: F64, q: float) -> tuple[float, float, float]:
    """(-dy/dt at tc = 0, its standard error, residual sd) of a quadratic least-squares fit;
    the residual is floored at the quantisation noise q/√12."""
    n = len(tc)
    x = np.column_stack([np.ones(n), tc, tc * tc])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ coef
    s = max(math.sqrt(float(r @ r) / max(n - 3, 1)), q / math.sqrt(12.0))
    cov = np.linalg.pinv(x.T @ x)
    se = s * math.sqrt(max(float(cov[1, 1]), 0.0))
    return -float(coef[1]), se, s


def _until_jump(p: F64, a: int, b: int, q: float) -> int:
    """The end of a hold: the first step far outside the run's own steps (the volume
    refilled or vented while the valve was still closed), or ``b``."""
    if b - a < 8:
        return b
    seg = p[a:b]
    ok = np.flatnonzero(np.isfinite(seg))
    d = np.diff(seg[ok])
    if not len(d):
        return b
    dev = np.abs(d - np.median(d))
    limit = max(10.0 * _noise(seg[ok], q), 5.0 * q)
    jump = np.flatnonzero(dev > limit)
    return a + int(ok[jump[0]]) + 1 if len(jump) else b


def _noise(y: F64, q: float) -> float:
    """A sensor noise scale from first differences (robust), floored at a quantum."""
    d = np.diff(y)
    if not len(d):
        return max(q, 1e-9)
    mad = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0)
    rms = float(np.sqrt(np.mean((d - d.mean()) ** 2))) / math.sqrt(2.0)
    return max(mad, 0.5 * rms, q, 1e-9)


def _thermal_from_holds(train: list[Hold]) -> float | None:
    """dp/dT of the trapped liquid: the training holds' raw decay rates regressed on their
    warming rates (a tight seat's rate is the same whatever the temperature did)."""
    pts = [(h.warming_k_s, h.raw_rate_kpa_s) for h in train if math.isfinite(h.warming_k_s)]
    if len(pts) < 4:
        return None
    w, r = np.array(pts).T
    wc = w - w.mean()
    sxx = float(wc @ wc)
    if sxx <= 0:
        return None
    slope = float(wc @ (r - r.mean())) / sxx
    resid = r - r.mean() - slope * wc
    se = math.sqrt(float(resid @ resid) / max(len(w) - 2, 1) / sxx)
    # raw decay = true decay - gamma * warming
    return -slope if abs(slope) > 3 * se else None
