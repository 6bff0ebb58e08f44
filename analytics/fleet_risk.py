"""Fleet risk: which batch, model, manufacturer or region degrades faster than its peers.

The unit of evidence is a device-time rate. A device is *at risk* from its first
observed sample until its last one or until its first seal alert (an *event*), whichever
comes first, so a group's rate is events per device-year at risk: the maximum-likelihood
rate of a constant hazard, fair to groups that joined the fleet late or report rarely.

Each group (every value of every dimension) is compared with its peers, the rest of the
fleet, with an exact test that stays honest on small samples:

* Strata. Valves and pumps wear differently, and a batch's valve/pump mix is an accident
  of production. Rates are compared within asset kind (``strata``) and combined.
* Test. Conditional on the total events ``N_s`` of stratum ``s``, the group's events are
  ``Bin(N_s, E_gs / E_s)`` under "same rate as its peers" (``E`` = exposure): the exact
  conditional test of two Poisson rates, free of the unknown common rate. The strata's
  binomials are convolved; the p-value is the upper tail ``P(X >= observed)``. Being
  discrete and exact, it is conservative on a handful of events rather than optimistic.
* Multiple comparisons. Every evaluation tests all groups of all dimensions at once; the
  p-values are adjusted by Benjamini-Hochberg (``q_value``), the false-discovery rate.
* Effect size. ``rate_ratio`` is the standardised ratio O / E: observed events over the
  events the group would have had at its peers' rate in each stratum; its 95 % interval is
  Garwood's exact Poisson interval on O (peers taken as known).
* Guards. A group needs ``min_events`` devices with events before it can be flagged
  (one unlucky device is never a quality signal) and the lower end of its rate-ratio
  interval must reach ``min_rate_ratio``.

Strength is read from q: ``strong`` (q <= 0.001), ``moderate`` (<= 0.01), ``weak``
(<= 0.05). An alert opens when a group reaches ``alert_strength`` and clears (hysteresis)
only once its q rises above ``clear_q`` or it no longer passes the guards. Alerts go through
the ``AlertStore`` with ``device_id`` = the group key (``batch:ACME-2332``) and
``cause`` = ``fleet_risk``, so there is one open alert per group.

Streaming: ``observe`` extends a device's exposure window and ``record_event`` marks its
first event, O(1) per call into arrays indexed by device slot; ``table`` aggregates with
``np.bincount`` (O(devices)) and runs one exact test per group. The result depends only on
the counts, never on call order, so it is deterministic. ``state_dict`` round-trips
through ``np.savez``.
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
    "poisson_interval",
]

_STRENGTH_Q: Final = {"strong": 0.001, "moderate": 0.01, "weak": 0.05}
_SEVERITY: Final = {"weak": 2, "moderate": 3, "strong": 4}
_DAY_S: Final = 86_400.0
_YEAR_D: Final = 365.25
_FORMAT_VERSION: Final = 1
# log-pmf below the mode by more than this is dropped from convolutions: e^-60 ~ 1e-26.
_LOG_TRIM: Final = 60.0
CAUSE: Final = "fleet_risk"

F64 = npt.NDArray[np.float64]


# -- exact statistics (numpy only) ----------------------------------------------------------

_logfact_cache: F64 = np.zeros(1)


def _logfact(n: int) -> F64:
    """log(k!) for k = 0..n (grown and cached)."""
    global _logfact_cache
    if len(_logfact_cache) <= n:
        m = max(n + 1, 2 * len(_logfact_cache))
        _logfact_cache = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, m)))))
    return _logfact_cache[: n + 1]


def _binom_log_pmf(n: int, p: float) -> tuple[int, F64]:
    """(offset, log pmf of Bin(n, p) on offset..), trimmed to the part that carries mass."""
    if p <= 0.0 or n == 0:
        return 0, np.zeros(1)
    if p >= 1.0:
        return n, np.zeros(1)
    lf = _logfact(n)
    k = np.arange(n + 1)
    logpmf = lf[n] - lf - lf[::-1] + k * math.log(p) + (n - k) * math.log1p(-p)
    keep = np.flatnonzero(logpmf >= logpmf.max() - _LOG_TRIM)
    lo, hi = int(keep[0]), int(keep[-1])
    return lo, logpmf[lo : hi + 1]


def conditional_rate_test(observed: int, totals: Sequence[int], shares: Sequence[float]) -> float:
    """Exact one-sided p-value that a group's rate exceeds its peers', stratified.

    ``totals[s]`` are all events of stratum ``s`` (group and peers), ``shares[s]`` the
    group's share of that stratum's exposure. Under equal rates within each stratum the
    group's events are a sum of independent ``Bin(totals[s], shares[s])``; the p-value is
    ``P(sum >= observed)``.
    """
    if observed <= 0:
        return 1.0
    offset, pmf = 0, np.ones(1)
    for n, p in zip(totals, shares, strict=True):
        lo, logpmf = _binom_log_pmf(int(n), float(p))
        part = np.exp(logpmf - logpmf.max())
        pmf = np.convolve(pmf, part / part.sum())
        offset += lo
        pmf /= pmf.sum()
    k = observed - offset
    if k <= 0:
        return 1.0
    if k >= len(pmf):
        return 0.0  # beyond the trimmed support: below ~1e-26
    return float(min(1.0, pmf[k:].sum()))


def _poisson_log_cdf(k: int, mu: float) -> float:
    """log P(X <= k) for X ~ Poisson(mu), k >= 0."""
    j = np.arange(k + 1)
    terms = j * math.log(mu) - mu - _logfact(k)
    top = float(terms.max())
    return top + math.log(float(np.exp(terms - top).sum()))


def poisson_interval(k: int, level: float = 0.95) -> tuple[float, float]:
    """Garwood's exact two-sided interval for a Poisson mean given ``k`` events."""
    tail = (1.0 - level) / 2.0
    log_tail = math.log(tail)

    def solve(pred: Callable[[float], bool], lo: float, hi: float) -> float:
        # bisection in log mu: pred is monotone in mu
        a, b = math.log(lo), math.log(hi)
        for _ in range(80):
            mid = 0.5 * (a + b)
            if pred(math.exp(mid)):
                b = mid
            else:
                a = mid
        return math.exp(0.5 * (a + b))

    hi_bound = k + 20.0 * math.sqrt(k + 1) + 20.0
    # upper: P(X <= k | mu) = tail
    upper = solve(lambda mu: _poisson_log_cdf(k, mu) <= log_tail, 1e-12, hi_bound)
    if k == 0:
        return 0.0, upper
    # lower: P(X >= k | mu) = tail, i.e. P(X <= k - 1 | mu) = 1 - tail
    log_keep = math.log1p(-tail)
    lower = solve(lambda mu: _poisson_log_cdf(k - 1, mu) <= log_keep, 1e-12, hi_bound)
    return lower, upper


def benjamini_hochberg(p: npt.ArrayLike) -> F64:
    """Benjamini-Hochberg adjusted p-values (q-values), same order as ``p``."""
    pv = np.asarray(p, dtype=np.float64)
    m = len(pv)
    if m == 0:
        return pv.copy()
    order = np.argsort(pv, kind="stable")
    scaled = pv[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


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
        stratum = self._stratum[:n]
        n_strata = max(len(self._strata), 1)
        # with weights bincount sums floats, though numpy types its result as integers
        e_s = cast(F64, np.bincount(stratum, exposure, minlength=n_strata))
        n_s = np.bincount(stratum, events, minlength=n_strata).astype(np.int64)
        newest = float(last[seen].max()) if seen.any() else 0.0

        pending: list[dict[str, Any]] = []
        for dim in self.dimensions:
            names = self._groups[dim]
            if not names:
                continue
            code = self._code[dim][:n]
            inside = code >= 0
            m = len(names)
            idx = code[inside].astype(np.int64) * n_strata + stratum[inside]
            e_gs = np.bincount(idx, exposure[inside], minlength=m * n_strata).reshape(m, n_strata)
            x_gs = np.bincount(idx, events[inside], minlength=m * n_strata).reshape(m, n_strata)
            dev_g = np.bincount(code[inside], seen[inside], minlength=m).astype(np.int64)
            for g, name in enumerate(names):
                if dev_g[g] == 0:
                    continue
                pending.append(self._compare(dim, name, e_gs[g], x_gs[g], e_s, n_s, int(dev_g[g])))

        p = np.array([r["p_value"] for r in pending])
        q = benjamini_hochberg(p)
        n_seen = int(seen.sum())
        total_events, total_exposure = int(events.sum()), float(exposure.sum())
        rows = []
        for r, q_i in zip(pending, q.tolist(), strict=True):
            strength = _strength(q_i)
            rows.append(
                RiskRow(
                    **r,
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
                )
            )
        rows.sort(key=lambda r: (r.q_value, r.p_value, r.dimension, r.group))
        return RiskTable(
            evaluated_at=newest,
            devices=n_seen,
            events=total_events,
            exposure_days=total_exposure,
            tests=len(rows),
            rows=tuple(rows),
        )

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
        p_value = conditional_rate_test(observed, n_s.tolist(), share.tolist())
        lo, hi = poisson_interval(observed)
        if expected > 0:
            rr: float | None = observed / expected
            rr_lo: float | None = lo / expected
            rr_hi: float | None = hi / expected
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
        return (
            q <= level
            and r["events"] >= self.min_events
            and rr_lo is not None
            and rr_lo >= self.min_rate_ratio
        )

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
        if int(state["version"][0]) != _FORMAT_VERSION:
            raise ValueError(f"fleet risk state is not v{_FORMAT_VERSION}")
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
            f"{row.rate_ratio_high:.1f})"
        )
    )
    return (
        f"{row.dimension.capitalize()} {row.group}: {row.events} of {row.devices} devices "
        f"raised seal alerts, {row.rate_per_year:.3g} per device-year against "
        f"{row.peer_rate_per_year:.3g} for the rest of the fleet, {rr}; "
        f"q = {row.q_value:.2g} ({row.strength} evidence): inspect this {row.dimension}'s "
        "devices in the field"
    )
