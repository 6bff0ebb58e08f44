"""Fleet risk: which batch, model, manufacturer or region degrades faster than its peers.

Two kinds of evidence, each compared group by group with the group's peers (the rest of
the fleet), within asset kind (``strata``: valves and pumps wear differently, and a
batch's valve/pump mix is an accident of production):

* Events. A device is *at risk* from its first observed sample until its last one or its
  first seal alert (an *event*), so a group's rate is events per device-year at risk, fair
  to groups that joined late or report rarely. Conditional on the stratum's events
  ``N_s``, the group's are ``Bin(N_s, E_gs / E_s)`` under "same rate as its peers"
  (``E`` = exposure): the exact conditional test of two Poisson rates (strata convolved,
  upper tail). ``rate_ratio`` is observed over expected events at the peers' rates; its
  interval is the exact (Clopper-Pearson) interval of the conditional binomial share,
  mapped to a rate ratio.
* Continuous evidence. Every commissioned device says how far its degradation signal has
  moved from its own baseline: the log of its leak coefficient (seat leak) or its worst
  wear ratio (pump seal, actuation) against commissioning, fed by ``observe_levels``
  (``degradation_levels`` reads them off a ``DetectionService``). Its *growth rate* is
  that log level per 30 days since the device was commissioned, floored at 0; devices
  with less than ``min_growth_days`` of it are censored (too early to say). A device
  that starts to go shows here as soon as its signal moves, before any alert. Test: the
  group's sum of level scores (each level over its stratum's robust spread, capped, so
  no single device decides; the level rather than the rate, whose noise would grow on
  short records) against the exact distribution of that sum when
  the group's devices draw their scores from their strata (``resampled_sum_test``: FFT
  convolution, no assumption about the scores' shape). Effect: empirical Bayes. Group
  means of the growth rate are shrunk toward
  the dimension's mean by ``tau^2 / (tau^2 + v_g)``, ``tau^2`` the between-group variance
  by the method of moments (DerSimonian-Laird), ``v_g`` the group mean's sampling
  variance; ``growth_ratio`` is the shrunk mean over the peers' mean ("seat leak growing
  4.1x faster"), with a 95 % posterior interval.

A group's p-value is the smaller of the two, doubled (Bonferroni) when both ran; every
evaluation tests all groups of all dimensions at once and adjusts by Benjamini-Hochberg
(``q_value``, ``scipy.stats.false_discovery_control``). Guards: a group needs
``min_events`` devices with an event or clearly growing before it can be flagged (one
unlucky device is never a quality signal), and the lower end of its rate-ratio or growth-
ratio interval must reach ``min_rate_ratio``. Strength is read from q: ``strong``
(q <= 0.001), ``moderate`` (<= 0.01), ``weak`` (<= 0.05). An alert opens when a group
reaches ``alert_strength`` and clears (hysteresis) only once its q rises above ``clear_q``
or it no longer passes the guards. Alerts go through the ``AlertStore`` with ``device_id``
= the group key (``batch:ACME-2332``) and ``cause`` = ``fleet_risk``, so there is one open
alert per group; ``evidence_text`` reads as a quality engineer's line ("batch B-2026-07 of
model D371X: seat leak growing 4.1x faster than its peers, 11 of 60 devices").

Statistics run through scipy (binom, binomtest, chi2, fft, false_discovery_control).
Streaming: ``observe`` extends a device's exposure window, ``record_event`` marks its first
event, ``observe_levels`` its latest level, O(1) per device into arrays indexed by slot;
``table`` aggregates with ``np.bincount`` and convolutions, so the result depends only
on the state, never on call order. ``state_dict`` round-trips through
``np.savez``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy import fft as sp_fft
from scipy import stats

from sealscope.alerts import AlertStore
from sealscope.errors import SealscopeError
from sealscope.registry import Device
from sealscope.risk import DIMENSIONS, STRENGTHS, Dimension, RiskRow, RiskTable, Strength
from sealscope.wire import Sample

__all__ = [
    "DEGRADATION_CAUSES",
    "DIMENSIONS",
    "STRENGTHS",
    "FleetRisk",
    "RiskChange",
    "RiskRow",
    "RiskTable",
    "benjamini_hochberg",
    "conditional_rate_test",
    "degradation_levels",
    "eb_shrink",
    "poisson_interval",
    "rate_ratio_interval",
    "resampled_sum_test",
]

_STRENGTH_Q: Final = {"strong": 0.001, "moderate": 0.01, "weak": 0.05}
_SEVERITY: Final = {"weak": 2, "moderate": 3, "strong": 4}
_DAY_S: Final = 86_400.0
_YEAR_D: Final = 365.25
_FORMAT_VERSION: Final = 2
_NEAR_LIMIT_S: Final = 90 * _DAY_S
_GROWING_SCORE: Final = 3.0  # a growth score this many robust spreads up: clearly growing
_SCORE_CAP: Final = 10.0  # one device counts at most this many spreads
CAUSE: Final = "fleet_risk"

F64 = npt.NDArray[np.float64]


# -- statistics (scipy) -----------------------------------------------------------------


def conditional_rate_test(observed: int, totals: Sequence[int], shares: Sequence[float]) -> float:
    """Exact one-sided p-value that a group's rate exceeds its peers', stratified.

    ``totals[s]`` are all events of stratum ``s`` (group and peers), ``shares[s]`` the
    group's share of that stratum's exposure. Under equal rates within each stratum the
    group's events are a sum of independent ``Bin(totals[s], shares[s])``; the p-value is
    ``P(sum >= observed)``.
    """
    if observed <= 0:
        return 1.0
    pmf = np.ones(1)
    for n, p in zip(totals, shares, strict=True):
        n = int(n)
        part = stats.binom.pmf(np.arange(n + 1), n, min(max(float(p), 0.0), 1.0))
        pmf = np.convolve(pmf, part)
    if observed >= len(pmf):
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - pmf[:observed].sum())))


def poisson_interval(k: int, level: float = 0.95) -> tuple[float, float]:
    """Garwood's exact two-sided interval for a Poisson mean given ``k`` events."""
    tail = (1.0 - level) / 2.0
    lower = 0.0 if k == 0 else float(stats.chi2.ppf(tail, 2 * k) / 2.0)
    upper = float(stats.chi2.ppf(1.0 - tail, 2 * k + 2) / 2.0)
    return lower, upper


def rate_ratio_interval(
    observed: int, expected: float, peer_events: int, level: float = 0.95
) -> tuple[float, float]:
    """Exact interval of a rate ratio from the conditional binomial.

    Given ``observed + peer_events`` events, the group's share is ``pi = RR e / (RR e + P)``
    (``e`` events expected at the peers' rate, ``P`` the peers' events); its Clopper-Pearson
    interval maps back to ``RR = pi / (1 - pi) * P / e``.
    """
    if expected <= 0 or peer_events <= 0:
        return (math.inf if observed else 0.0), math.inf
    ci = stats.binomtest(observed, observed + peer_events).proportion_ci(level, "exact")

    def rr(pi: float) -> float:
        return math.inf if pi >= 1.0 else pi / (1.0 - pi) * peer_events / expected

    return rr(float(ci.low)), rr(float(ci.high))


def benjamini_hochberg(p: npt.ArrayLike) -> F64:
    """Benjamini-Hochberg adjusted p-values (q-values), same order as ``p``."""
    pv = np.asarray(p, dtype=np.float64)
    if pv.size == 0:
        return pv.copy()
    return np.asarray(stats.false_discovery_control(pv, method="bh"), dtype=np.float64)


def resampled_sum_test(
    scores: F64,
    groups: npt.NDArray[np.int64],
    strata: npt.NDArray[np.int64],
    n_groups: int,
    *,
    step: float = 0.05,
) -> F64:
    """One-sided p-value per group that its sum of ``scores`` is high for its size.

    Under "no different from its peers" each of the group's devices in stratum ``s`` has a
    score drawn from stratum ``s``'s scores. On a grid of ``step`` the sum's distribution
    is the strata's score distributions convolved ``n_gs`` times (one FFT power per
    stratum), so the tail is exact for the discretised scores, whatever their shape:
    skewed by a few devices going bad, heavy-tailed, many ties. Drawing with replacement
    spreads the sum a little more than relabelling the fleet would: conservative.
    """
    q = np.round(scores / step).astype(np.int64)
    inside = groups >= 0
    observed = np.bincount(groups[inside], q[inside], minlength=n_groups)
    pmfs: list[tuple[int, F64]] = []
    counts = np.zeros((n_groups, 0), dtype=np.int64)
    for s in np.unique(strata).tolist():
        mine = strata == s
        lo = int(q[mine].min())
        pmf = np.bincount(q[mine] - lo).astype(np.float64)
        pmfs.append((lo, pmf / pmf.sum()))
        n_gs = np.bincount(groups[mine & inside], minlength=n_groups)
        counts = np.column_stack([counts, n_gs])
    out = np.ones(n_groups)
    for g in range(n_groups):
        width = sum(int(c) * (len(p) - 1) for c, (_, p) in zip(counts[g], pmfs, strict=True))
        if counts[g].sum() == 0:
            continue
        size = sp_fft.next_fast_len(width + 1, real=True)
        spec = np.ones(size // 2 + 1, dtype=np.complex128)
        offset = 0
        for c, (lo, p) in zip(counts[g].tolist(), pmfs, strict=True):
            if c:
                spec *= sp_fft.rfft(p, size) ** c
                offset += c * lo
        dist = np.clip(sp_fft.irfft(spec, size)[: width + 1], 0.0, None)
        k = int(observed[g]) - offset
        tail = float(dist[max(k, 0) :].sum() / dist.sum()) if k <= width else 0.0
        out[g] = min(1.0, max(tail, 1e-15))  # FFT round-off floor
    return out


def eb_shrink(means: F64, variances: F64) -> tuple[F64, F64, float, float]:
    """Empirical-Bayes shrinkage of group means toward their precision-weighted mean.

    ``tau^2`` is the DerSimonian-Laird method-of-moments between-group variance. Returns
    (posterior means, posterior variances, the pooled mean, tau^2).
    """
    ok = np.isfinite(means) & (variances > 0)
    if ok.sum() < 2:
        return means.copy(), variances.copy(), float(np.nanmean(means)) if ok.any() else 0.0, 0.0
    w = 1.0 / variances[ok]
    mu = float((w * means[ok]).sum() / w.sum())
    q = float((w * (means[ok] - mu) ** 2).sum())
    denom = float(w.sum() - (w * w).sum() / w.sum())
    tau2 = max(0.0, (q - (ok.sum() - 1)) / denom) if denom > 0 else 0.0
    shrink = np.where(ok, tau2 / (tau2 + np.where(ok, variances, 1.0)), 0.0)
    post = np.where(ok, mu + shrink * (means - mu), means)
    post_var = np.where(ok, shrink * variances, variances)
    return post, post_var, mu, tau2


def _strength(q: float) -> Strength:
    for name in ("strong", "moderate", "weak"):
        if q <= _STRENGTH_Q[name]:
            return name
    return "none"


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskChange:
    """One call ``FleetRisk.apply`` made on the alert store."""

    key: str
    action: Literal["raised", "updated", "cleared"]
    strength: Strength
    t: float
    row: RiskRow | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


# -- the monitor ---------------------------------------------------------------------------


# What counts as a device's degradation event. Sensor faults say nothing about seal
# quality, a generic anomaly is no wear, and risk alerts must not feed themselves.
DEGRADATION_CAUSES: Final = frozenset({"seat_leak", "pump_seal", "actuation_wear"})
# what each degradation cause's level is, in a quality engineer's words (index = code)
_LEVEL_CAUSES: Final = ("seat_leak", "pump_seal", "actuation_wear")
_LEVEL_WORDS: Final = ("seat leak", "pump seal leak", "actuator wear")
_SETTING_RATIOS: Final = frozenset({"threshold_ratio", "clear_ratio"})


def degradation_levels(service: Any) -> tuple[tuple[str, ...], F64, npt.NDArray[np.int8], F64]:
    """Each device's continuous degradation evidence from a ``DetectionService``.

    Returns (device ids by slot, log level, cause code, time to the class limit in s).
    The level is the largest log ratio against its commissioning baseline among the
    degradation detectors (seat leak: the leak coefficient; pump seal and actuation: the
    worst ratio channel); NaN before commissioning and while the sensor gate holds the
    detector's verdicts back (a drifting sensor is no seal wearing). Time to limit is the
    seat-leak trend's extrapolation (inf without a significant upward trend)."""
    ids = tuple(service.device_ids)
    n = len(ids)
    level = np.full(n, np.nan)
    cause = np.full(n, -1, dtype=np.int8)
    ttl = np.full(n, np.nan)
    for det in service.detectors:
        if det.cause not in _LEVEL_CAUSES:
            continue
        v = det.verdicts()
        m = min(len(v), n)
        if m == 0:
            continue
        # the current level against the baseline: "ratio" (seat leak) or "<channel>_ratio"
        # (residual detectors), never the detector's own alarm and clear settings
        ratios = [
            np.asarray(a[:m], dtype=np.float64)
            for k, a in v.evidence.items()
            if k == "ratio" or (k.endswith("_ratio") and k not in _SETTING_RATIOS)
        ]
        if not ratios:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.stack(ratios))
        logs[~np.isfinite(logs)] = -np.inf
        mine = logs.max(axis=0)
        mine[~np.isfinite(mine)] = np.nan
        mine[np.asarray(service.held(det), dtype=bool)[:m]] = np.nan
        better = np.isfinite(mine) & ~(level[:m] >= mine)
        level[:m] = np.where(better, mine, level[:m])
        cause[:m] = np.where(better, _LEVEL_CAUSES.index(det.cause), cause[:m])
        if "rul_s" in v.evidence:
            rul = np.asarray(v.evidence["rul_s"][:m], dtype=np.float64)
            ttl[:m] = np.where(np.isfinite(mine), rul, ttl[:m])
    return ids, level, cause, ttl


def _default_counts(cause: str) -> bool:
    return cause in DEGRADATION_CAUSES


class FleetRisk:
    """Per-device exposure and first events; ``table()`` tests every group against its peers."""

    def __init__(
        self,
        *,
        dimensions: Sequence[Dimension] = DIMENSIONS,
        alert_strength: Strength = "moderate",
        clear_q: float = 0.05,
        min_events: int = 3,
        min_rate_ratio: float = 1.0,
        counts_cause: Callable[[str], bool] = _default_counts,
        min_growth_days: float = 14.0,
    ) -> None:
        unknown = set(dimensions) - set(DIMENSIONS)
        if unknown or not dimensions:
            raise ValueError(f"dimensions must be a non-empty subset of {DIMENSIONS}")
        if alert_strength not in STRENGTHS[1:]:
            raise ValueError("alert_strength must be weak, moderate or strong")
        if not _STRENGTH_Q[alert_strength] <= clear_q <= 1.0:
            raise ValueError("clear_q must lie between the alert level's q and 1")
        if min_events < 1 or min_rate_ratio < 0:
            raise ValueError("min_events must be >= 1 and min_rate_ratio >= 0")
        if min_growth_days <= 0:
            raise ValueError("min_growth_days must be > 0")
        self.min_growth_days = min_growth_days
        self.dimensions = tuple(dimensions)
        self.alert_strength: Strength = alert_strength
        self.clear_q = clear_q
        self.min_events = min_events
        self.min_rate_ratio = min_rate_ratio
        self.counts_cause = counts_cause
        self._reset()

    def _reset(self) -> None:
        self._ids: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._known: dict[str, Device] = {}
        self._groups: dict[str, list[str]] = {d: [] for d in self.dimensions}
        self._group_code: dict[str, dict[str, int]] = {d: {} for d in self.dimensions}
        self._strata: list[str] = []
        self._cap = 0
        self._code = {d: np.zeros(0, np.int32) for d in self.dimensions}
        self._stratum = np.zeros(0, np.int32)
        self._first_t = np.zeros(0)
        self._last_t = np.zeros(0)
        self._event_t = np.zeros(0)
        # continuous evidence: latest log level, when it was read, when first read
        self._level = np.zeros(0)
        self._level_t = np.zeros(0)
        self._level0_t = np.zeros(0)
        self._level_cause = np.zeros(0, np.int8)
        self._ttl = np.zeros(0)
        self._active: dict[str, Strength] = {}  # group key -> strength of its open alert

    # -- intake ----------------------------------------------------------------------------

    @property
    def device_count(self) -> int:
        return len(self._ids)

    def add_devices(self, devices: Iterable[Device]) -> None:
        """Register devices, or update their attributes (a registry edit regroups them)."""
        for device in devices:
            self._slot_for(device)

    def _slot_for(self, device: Device) -> int:
        slot = self._slot_of.get(device.device_id)
        if slot is None:
            slot = len(self._ids)
            self._ids.append(device.device_id)
            self._slot_of[device.device_id] = slot
            self._grow(slot + 1)
        if self._known.get(device.device_id) != device:
            for dim in self.dimensions:
                self._code[dim][slot] = self._intern(dim, getattr(device, dim))
            kind = device.kind or ""
            if kind not in self._strata:
                self._strata.append(kind)
            self._stratum[slot] = self._strata.index(kind)
            self._known[device.device_id] = device
        return slot

    def _intern(self, dim: str, value: str) -> int:
        if not value:
            return -1  # unknown: in no group, still a peer of every group
        codes = self._group_code[dim]
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(self._groups[dim])
            self._groups[dim].append(value)
        return code

    def _grow(self, n: int) -> None:
        if n <= self._cap:
            return
        cap = max(n, 2 * self._cap, 64)

        def grown(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(cap, fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        for dim in self.dimensions:
            self._code[dim] = grown(self._code[dim], -1)
        self._stratum = grown(self._stratum, 0)
        self._first_t = grown(self._first_t, np.inf)
        self._last_t = grown(self._last_t, -np.inf)
        self._event_t = grown(self._event_t, np.inf)
        self._level = grown(self._level, np.nan)
        self._level_t = grown(self._level_t, -np.inf)
        self._level0_t = grown(self._level0_t, np.inf)
        self._level_cause = grown(self._level_cause, -1)
        self._ttl = grown(self._ttl, np.nan)
        self._cap = cap

    def observe(self, device: Device, samples: Sequence[Sample]) -> None:
        """Extend ``device``'s observed window by its samples' event times (s or ms)."""
        if samples:
            ts = [s.t / 1000.0 if s.t >= 1e11 else float(s.t) for s in samples]
            self.observe_window(device, min(ts), max(ts))
        else:
            self._slot_for(device)

    def observe_window(self, device: Device, first_t: float, last_t: float) -> None:
        slot = self._slot_for(device)
        self._first_t[slot] = min(self._first_t[slot], first_t)
        self._last_t[slot] = max(self._last_t[slot], last_t)

    def observe_many(
        self, device_ids: Sequence[str], first_t: npt.ArrayLike, last_t: npt.ArrayLike
    ) -> None:
        """Vectorised ``observe_window`` for devices already added."""
        slots = np.fromiter((self._slot_of[d] for d in device_ids), np.int64, len(device_ids))
        np.minimum.at(self._first_t, slots, np.asarray(first_t, dtype=np.float64))
        np.maximum.at(self._last_t, slots, np.asarray(last_t, dtype=np.float64))

    def observe_levels(
        self,
        device_ids: Sequence[str],
        log_level: npt.ArrayLike,
        cause: npt.ArrayLike | None = None,
        time_to_limit_s: npt.ArrayLike | None = None,
    ) -> None:
        """Each device's latest degradation level (log ratio against its baseline; NaN:
        none now), read at its newest observed sample (see ``degradation_levels``).
        Devices not added yet are skipped."""
        level = np.asarray(log_level, dtype=np.float64)
        known = [i for i, d in enumerate(device_ids) if d in self._slot_of]
        if not known:
            return
        rows = np.asarray(known, dtype=np.int64)
        slots = np.fromiter((self._slot_of[device_ids[i]] for i in known), np.int64, len(known))
        lv = level[rows]
        ok = np.isfinite(lv) & np.isfinite(self._last_t[slots])
        s, r = slots[ok], rows[ok]
        t = self._last_t[s]
        self._level0_t[s] = np.minimum(self._level0_t[s], t)
        self._level[s] = lv[ok]
        self._level_t[s] = t
        if cause is not None:
            self._level_cause[s] = np.asarray(cause, dtype=np.int8)[r]
        if time_to_limit_s is not None:
            self._ttl[s] = np.asarray(time_to_limit_s, dtype=np.float64)[r]

    def observe_detectors(self, service: Any) -> None:
        """``observe_levels`` from a ``DetectionService``'s degradation detectors."""
        ids, level, cause, ttl = degradation_levels(service)
        self.observe_levels(ids, level, cause, ttl)

    def record_event(self, device_id: str, t_s: float, cause: str = "seat_leak") -> bool:
        """Count ``device_id``'s seal event at ``t_s`` (its first one counts). False if ignored."""
        slot = self._slot_of.get(device_id)
        if slot is None or not self.counts_cause(cause):
            return False
        self._event_t[slot] = min(self._event_t[slot], t_s)
        return True

    def record_changes(self, changes: Iterable[Any]) -> int:
        """Feed ``DetectionService.flush()`` results: each raised alert is an event."""
        n = 0
        for c in changes:
            if c.action == "raised" and self.record_event(c.device_id, c.t, c.cause):
                n += 1
        return n

    # -- evaluation ------------------------------------------------------------------------

    def table(self) -> RiskTable:
        """Every group of every dimension against its peers, sorted by evidence (q, then key)."""
        n = len(self._ids)
        first = self._first_t[:n]
        last = self._last_t[:n]
        event_t = self._event_t[:n]
        seen = np.isfinite(first) & np.isfinite(last)
        had_event = seen & np.isfinite(event_t)
        end = np.where(had_event, np.clip(event_t, first, last), last)
        exposure = np.where(seen, np.maximum(end - first, 0.0), 0.0) / _DAY_S
        events = had_event.astype(np.int64)
        stratum = self._stratum[:n].astype(np.int64)
        n_strata = max(len(self._strata), 1)
        # with weights bincount sums floats, though numpy types its result as integers
        e_s = cast(F64, np.bincount(stratum, exposure, minlength=n_strata))
        n_s = np.bincount(stratum, events, minlength=n_strata).astype(np.int64)
        newest = float(last[seen].max()) if seen.any() else 0.0
        valid, growth, score, growing = self._growth(n, seen, had_event, stratum)
        near = valid & (self._ttl[:n] <= _NEAR_LIMIT_S)

        pending: list[dict[str, Any]] = []
        for dim in self.dimensions:
            names = self._groups[dim]
            if not names:
                continue
            code = self._code[dim][:n].astype(np.int64)
            inside = code >= 0
            m = len(names)
            idx = code[inside] * n_strata + stratum[inside]
            e_gs = np.bincount(idx, exposure[inside], minlength=m * n_strata).reshape(m, n_strata)
            x_gs = np.bincount(idx, events[inside], minlength=m * n_strata).reshape(m, n_strata)
            dev_g = np.bincount(code[inside], seen[inside], minlength=m).astype(np.int64)
            grow = self._compare_growth(code, m, valid, growth, score, stratum)
            n_growing = np.bincount(code[inside], growing[inside], minlength=m).astype(np.int64)
            n_near = np.bincount(code[inside], near[inside], minlength=m).astype(np.int64)
            signal = self._signal_words(code, m, valid, growing)
            for g, name in enumerate(names):
                if dev_g[g] == 0:
                    continue
                row = self._compare(dim, name, e_gs[g], x_gs[g], e_s, n_s, int(dev_g[g]))
                row.update({k: v[g] for k, v in grow.items()})
                row["growing"] = int(n_growing[g])
                row["near_limit"] = int(n_near[g])
                row["_signal"] = signal[g]
                row["growth_devices"] = int(row["growth_devices"])
                row["event_p_value"] = row["p_value"]
                pg = row["growth_p_value"]
                if pg is not None:
                    row["p_value"] = min(1.0, 2.0 * min(row["p_value"], pg))
                pending.append(row)

        p = np.array([r["p_value"] for r in pending])
        q = benjamini_hochberg(p)
        n_seen = int(seen.sum())
        total_events, total_exposure = int(events.sum()), float(exposure.sum())
        rows = []
        for r, q_i in zip(pending, q.tolist(), strict=True):
            strength = _strength(q_i)
            fields = dict(
                r,
                peer_devices=n_seen - r["devices"],
                peer_events=total_events - r["events"],
                peer_exposure_days=total_exposure - r["exposure_days"],
                peer_rate_per_year=_rate(
                    total_events - r["events"], total_exposure - r["exposure_days"]
                ),
                q_value=q_i,
                strength=strength,
                flagged=self._passes(r, q_i, _STRENGTH_Q[self.alert_strength]),
                manufacturers=self._manufacturers(r["dimension"], r["group"]),
                models=self._models(r["dimension"], r["group"]),
            )
            fields["evidence_text"] = _evidence_text(fields, fields.pop("_signal"))
            rows.append(RiskRow(**fields))
        rows.sort(key=lambda r: (r.q_value, r.p_value, r.dimension, r.group))
        return RiskTable(
            evaluated_at=newest,
            devices=n_seen,
            events=total_events,
            exposure_days=total_exposure,
            tests=len(rows),
            rows=tuple(rows),
        )

    def _growth(
        self,
        n: int,
        seen: npt.NDArray[np.bool_],
        had_event: npt.NDArray[np.bool_],
        stratum: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.bool_], F64, F64, npt.NDArray[np.bool_]]:
        """(has a growth rate, growth rate >= 0 in log per 30 d, score, clearly growing)."""
        level = self._level[:n]
        elapsed = np.where(np.isfinite(level), self._level_t[:n] - self._level0_t[:n], 0.0)
        elapsed = elapsed / _DAY_S
        # censored: too short a record since commissioning says nothing yet
        valid = seen & np.isfinite(level) & (elapsed >= self.min_growth_days)
        raw = np.where(valid, level / np.maximum(elapsed, self.min_growth_days) * 30.0, 0.0)
        # The test scores the level itself, not the rate: a healthy device's level noise
        # does not shrink with the length of its record, so a recently commissioned group
        # is not made to look extreme by dividing its noise by a short time.
        score = np.zeros(n)
        for s in np.unique(stratum[valid]).tolist():
            m = valid & (stratum == s)
            x = level[m]
            mid = float(np.median(x))
            spread = 1.4826 * float(np.median(np.abs(x - mid)))
            if not spread > 0:
                spread = float(np.std(x)) or 1.0
            score[m] = np.clip((x - mid) / spread, -3.0, _SCORE_CAP)
        growing = (valid & (score >= _GROWING_SCORE)) | had_event
        return valid, np.maximum(raw, 0.0), score, growing

    def _signal_words(
        self,
        code: npt.NDArray[np.int64],
        m: int,
        valid: npt.NDArray[np.bool_],
        growing: npt.NDArray[np.bool_],
    ) -> list[str]:
        """Per group, what its growing devices' evidence mostly is ("seat leak", ...)."""
        cause = self._level_cause[: len(code)].astype(np.int64)
        k = len(_LEVEL_WORDS)
        out = []
        for pick in (valid & growing, valid):
            use = pick & (code >= 0) & (cause >= 0)
            counts = np.bincount(code[use] * k + cause[use], minlength=m * k).reshape(m, k)
            out.append(counts)
        words = []
        for g in range(m):
            counts = out[0][g] if out[0][g].any() else out[1][g]
            words.append(_LEVEL_WORDS[int(np.argmax(counts))] if counts.any() else "degradation")
        return words

    def _compare_growth(
        self,
        code: npt.NDArray[np.int64],
        m: int,
        valid: npt.NDArray[np.bool_],
        growth: F64,
        score: F64,
        stratum: npt.NDArray[np.int64],
    ) -> dict[str, list[Any]]:
        """The continuous-evidence columns of one dimension's groups."""
        none: list[Any] = [None] * m
        use = valid & (code >= 0)
        n_g = np.bincount(code[use], minlength=m).astype(np.float64)
        out: dict[str, list[Any]] = {"growth_devices": n_g.astype(int).tolist()}
        if valid.sum() < 2 or not use.any():
            for k in ("growth_per_30d", "peer_growth_per_30d", "growth_ratio",
                      "growth_ratio_low", "growth_ratio_high", "growth_p_value"):  # fmt: skip
                out[k] = none
            return out
        p = resampled_sum_test(score[valid], code[valid], stratum[valid], m)
        sum_g = np.bincount(code[use], growth[use], minlength=m)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_g = np.where(n_g > 0, sum_g / n_g, np.nan)
            var_g = np.where(n_g > 0, float(np.var(growth[valid], ddof=1)) / n_g, np.nan)
            post, post_var, _, _ = eb_shrink(mean_g, var_g)
            total, count = float(growth[valid].sum()), float(valid.sum())
            peer = np.where(count - n_g > 0, (total - sum_g) / (count - n_g), np.nan)
            half = 1.96 * np.sqrt(np.maximum(post_var, 0.0))
            ok = (n_g > 0) & (peer > 0)
            ratio = np.where(ok, post / peer, np.nan)
            low = np.where(ok, np.maximum(post - half, 0.0) / peer, np.nan)
            high = np.where(ok, (post + half) / peer, np.nan)

        def col(a: F64, f: Callable[[float], float] = float) -> list[Any]:
            return [f(x) if math.isfinite(x) else None for x in a.tolist()]

        out.update(
            growth_per_30d=col(post, math.exp),
            peer_growth_per_30d=col(peer, math.exp),
            growth_ratio=col(ratio),
            growth_ratio_low=col(low),
            growth_ratio_high=col(high),
            growth_p_value=[float(x) if c > 0 else None for x, c in zip(p, n_g, strict=True)],
        )
        return out

    def _compare(
        self,
        dim: str,
        name: str,
        e_g: F64,
        x_g: np.ndarray,
        e_s: F64,
        n_s: np.ndarray,
        devices: int,
    ) -> dict[str, Any]:
        observed = int(x_g.sum())
        exposure = float(e_g.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(e_s > 0, e_g / e_s, 0.0)
            peer_e = e_s - e_g
            peer_rate = np.where(peer_e > 0, (n_s - x_g) / peer_e, 0.0)
        expected = float((e_g * peer_rate).sum())
        peer_events = int((n_s - x_g).sum())
        p_value = conditional_rate_test(observed, n_s.tolist(), share.tolist())
        if expected > 0:
            rr: float | None = observed / expected
            lo, hi = rate_ratio_interval(observed, expected, peer_events)
            rr_lo: float | None = lo
            rr_hi: float | None = hi if math.isfinite(hi) else None
        else:
            rr = rr_lo = rr_hi = None
            if observed > 0:
                rr_lo = math.inf  # peers had no events where this group had some
        return {
            "dimension": dim,
            "group": name,
            "devices": devices,
            "events": observed,
            "exposure_days": exposure,
            "rate_per_year": _rate(observed, exposure),
            "expected_events": expected,
            "rate_ratio": rr,
            "rate_ratio_low": rr_lo,
            "rate_ratio_high": rr_hi,
            "p_value": p_value,
        }

    def _passes(self, r: Mapping[str, Any], q: float, level: float) -> bool:
        rr_lo = r["rate_ratio_low"]
        gr_lo = r.get("growth_ratio_low")
        effect = (rr_lo is not None and rr_lo >= self.min_rate_ratio) or (
            gr_lo is not None and gr_lo >= self.min_rate_ratio
        )
        return q <= level and r.get("growing", r["events"]) >= self.min_events and effect

    def _models(self, dim: str, group: str) -> tuple[str, ...]:
        if dim == "model":
            return (group,)
        return tuple(sorted({d.model for d in self._known.values() if getattr(d, dim) == group}))

    def _manufacturers(self, dim: str, group: str) -> tuple[str, ...]:
        if dim == "manufacturer":
            return (group,)
        return tuple(
            sorted(
                {d.manufacturer for d in self._known.values() if getattr(d, dim) == group} - {""}
            )
        )

    # -- alerts ----------------------------------------------------------------------------

    def apply(self, alerts: AlertStore, *, t: float | None = None) -> list[RiskChange]:
        """Raise, update or clear one alert per group from a fresh table (with hysteresis)."""
        table = self.table()
        when = table.evaluated_at if t is None else t
        changes: list[RiskChange] = []
        by_key = {r.key: r for r in table.rows}
        for row in table.rows:
            was = self._active.get(row.key)
            if was is None:
                if not row.flagged:
                    continue
                strength: Strength = row.strength
            else:
                if not self._passes(asdict(row), row.q_value, self.clear_q):
                    continue  # cleared below
                # Held open by hysteresis: never report weaker than the level that raised it.
                strength = row.strength if row.strength != "none" else "weak"
                if strength == was:
                    continue
            evidence = row.as_dict()
            try:
                alerts.raise_alert(
                    device_id=row.key,
                    cause=CAUSE,
                    category="maintenance_required",
                    severity=_SEVERITY[strength],
                    summary=_summary(row),
                    evidence=evidence,
                    t=when,
                )
            except SealscopeError:
                continue  # retried at the next apply: _active unchanged
            self._active[row.key] = strength
            changes.append(
                RiskChange(row.key, "updated" if was else "raised", strength, when, row, evidence)
            )
        for key in sorted(self._active):
            held = by_key.get(key)
            if held is not None and self._passes(asdict(held), held.q_value, self.clear_q):
                continue
            try:
                alerts.clear(device_id=key, cause=CAUSE, t=when)
            except SealscopeError:
                continue
            del self._active[key]
            changes.append(RiskChange(key, "cleared", "none", when, held))
        return changes

    @property
    def active(self) -> dict[str, Strength]:
        """Group keys with an open risk alert, and its strength."""
        return dict(self._active)

    # -- persistence -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        n = len(self._ids)
        out: dict[str, np.ndarray] = {
            "version": np.array([_FORMAT_VERSION]),
            "device_ids": np.array(self._ids, dtype=np.str_),
            "first_t": self._first_t[:n].copy(),
            "last_t": self._last_t[:n].copy(),
            "event_t": self._event_t[:n].copy(),
            "level": self._level[:n].copy(),
            "level_t": self._level_t[:n].copy(),
            "level0_t": self._level0_t[:n].copy(),
            "level_cause": self._level_cause[:n].copy(),
            "ttl": self._ttl[:n].copy(),
            "active_keys": np.array(sorted(self._active), dtype=np.str_),
            "active_strength": np.array(
                [self._active[k] for k in sorted(self._active)], dtype=np.str_
            ),
        }
        for attr in ("kind", *self.dimensions):
            out[f"attr/{attr}"] = np.array(
                [getattr(self._known[d], attr) for d in self._ids], dtype=np.str_
            )
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        version = int(state["version"][0])
        if version not in (1, _FORMAT_VERSION):  # v1: no continuous evidence yet
            raise ValueError(f"fleet risk state is not v1 or v{_FORMAT_VERSION}")
        self._reset()
        ids = [str(x) for x in state["device_ids"]]
        attrs = {k.removeprefix("attr/"): v for k, v in state.items() if k.startswith("attr/")}
        missing = {"kind", *self.dimensions} - set(attrs)
        if missing:
            raise ValueError(f"fleet risk state lacks attributes {sorted(missing)}")
        for i, device_id in enumerate(ids):
            fields = {a: str(attrs[a][i]) for a in ("kind", *self.dimensions)}
            fields.setdefault("manufacturer", "")
            fields.setdefault("model", "")
            # str attributes that were Device fields when saved: the literals kind and class
            self._slot_for(Device(device_id=device_id, **fields))  # type: ignore[arg-type]
        n = len(ids)
        self._first_t[:n] = state["first_t"]
        self._last_t[:n] = state["last_t"]
        self._event_t[:n] = state["event_t"]
        if version >= 2:
            self._level[:n] = state["level"]
            self._level_t[:n] = state["level_t"]
            self._level0_t[:n] = state["level0_t"]
            self._level_cause[:n] = state["level_cause"]
            self._ttl[:n] = state["ttl"]
        self._active = {
            str(k): str(s)  # type: ignore[misc]  # saved from this dict: each is a Strength
            for k, s in zip(state["active_keys"], state["active_strength"], strict=True)
        }

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (temporary file, then ``os.replace``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                # numpy's stub matches **arrays against its allow_pickle: bool keyword
                np.savez(f, **self.state_dict())  # type: ignore[arg-type]
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            self.load_state_dict({k: z[k] for k in z.files})


def _rate(events: int, exposure_days: float) -> float:
    return events / (exposure_days / _YEAR_D) if exposure_days > 0 else 0.0


def _summary(row: RiskRow) -> str:
    rr = (
        "with no events among its peers"
        if row.rate_ratio is None
        else (
            f"{row.rate_ratio:.1f}x its peers (95 % CI {row.rate_ratio_low:.1f}-"
            f"{_fmt_high(row.rate_ratio_high)})"
        )
    )
    return (
        f"{row.evidence_text}. {row.events} of {row.devices} devices "
        f"raised seal alerts, {row.rate_per_year:.3g} per device-year against "
        f"{row.peer_rate_per_year:.3g} for the rest of the fleet, {rr}; "
        f"q = {row.q_value:.2g} ({row.strength} evidence): inspect this {row.dimension}'s "
        "devices in the field"
    )


def _fmt_high(x: float | None) -> str:
    return "inf" if x is None or not math.isfinite(x) else f"{x:.1f}"


def _evidence_text(r: Mapping[str, Any], signal: str = "degradation") -> str:
    """One line a quality engineer reads: who, what grows how much faster, how many."""
    dim, group = r["dimension"], r["group"]
    who = f"{dim} {group}"
    models, makers = r.get("models", ()), r.get("manufacturers", ())
    if dim != "model" and len(models) == 1:
        who += f" of model {models[0]}"
    elif dim != "manufacturer" and len(makers) == 1:
        who += f" of {makers[0]}"
    parts = []
    ratio = r.get("growth_ratio")
    if ratio is not None:
        parts.append(
            f"{signal} growing {ratio:.1f}x {'faster' if ratio >= 1 else 'as fast'} "
            f"than its peers (95 % CI {r['growth_ratio_low']:.1f}-"
            f"{_fmt_high(r['growth_ratio_high'])}), {r['growing']} of "
            f"{r['growth_devices']} devices growing or alerted"
        )
    if r.get("rate_ratio") is not None:
        parts.append(
            f"seal alerts at {r['rate_ratio']:.1f}x its peers' rate (95 % CI "
            f"{r['rate_ratio_low']:.1f}-{_fmt_high(r['rate_ratio_high'])}), "
            f"{r['events']} of {r['devices']} devices"
        )
    elif r["events"]:
        parts.append(f"{r['events']} of {r['devices']} devices alerted, none of its peers")
    if r.get("near_limit"):
        parts.append(f"{r['near_limit']} projected to reach their class limit within 90 days")
    return f"{who}: " + ("; ".join(parts) if parts else "no degradation evidence yet")
