"""Field quality from the registry and the alert history: rates with exact intervals, groups
against their peers, and how seals age with months in service.

The views of the monitoring point and the manufacturer (risk group detail, the quality
report, the regional view, the fleet by model) are built from one ``FleetSnapshot``: every
registered device with the times of its first degradation alert and of its failure alerts.

Definitions (docs/reports.md):

* In service from registration (``Device.created_at``) on; a report period clips it.
* *Degradation*: a device's first alert whose cause is a seal-degradation cause (the causes
  fleet risk counts: seat leak, pump seal, actuation wear). A device is at risk of it from
  the start of its service in the period until that first alert: events per device-year at
  risk, the same rate fleet risk tests.
* *Field failure*: an alert of NAMUR NE 107 category ``failure`` (every one counts), per
  device-year in service.
* Intervals are exact: Garwood (chi-square) for Poisson counts, Clopper-Pearson
  (``scipy.stats.binomtest``) for shares of devices. The rate ratio against the peers is
  standardised by asset kind (observed / expected at the peers' rate, kind by kind), its
  interval Garwood's on the observed count, its p-value the exact conditional test fleet
  risk uses (``analytics.fleet_risk.conditional_rate_test``).
* Ageing: the Kaplan-Meier share of devices degraded by each month in service (devices
  still in service without a degradation are censored at ``now``).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
from scipy import stats

from analytics.fleet_risk import DEGRADATION_CAUSES, conditional_rate_test
from sealscope.accounts import Scope
from sealscope.alerts import Alert, AlertStore
from sealscope.registry import Device, DeviceRegistry
from sealscope.risk import DIMENSIONS

__all__ = [
    "LEVEL",
    "AgeingPoint",
    "Comparison",
    "DeviceFacts",
    "FleetSnapshot",
    "PeriodCounts",
    "ageing",
    "compare",
    "period_counts",
    "poisson_interval",
    "rate_with_interval",
    "share_interval",
]

LEVEL: Final = 0.95
YEAR_S: Final = 365.25 * 86_400.0
MONTH_S: Final = YEAR_S / 12.0
MAX_MONTHS: Final = 120  # an ageing series longer than ten years is not drawn
_PAGE: Final = 1000
T = TypeVar("T")


# -- exact intervals ------------------------------------------------------------------------


def poisson_interval(k: int, level: float = LEVEL) -> tuple[float, float]:
    """Garwood's exact interval for a Poisson mean with ``k`` observed events."""
    tail = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(stats.chi2.ppf(tail, 2 * k)) / 2.0
    high = float(stats.chi2.ppf(1.0 - tail, 2 * k + 2)) / 2.0
    return low, high


def share_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """Clopper-Pearson interval of a share ``k / n``; None when ``n`` is 0."""
    if n <= 0:
        return None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def rate_with_interval(k: int, years: float) -> tuple[float | None, float | None, float | None]:
    """Events per device-year and its exact interval; all None without exposure."""
    if years <= 0:
        return None, None, None
    low, high = poisson_interval(k)
    return k / years, low / years, high / years


# -- the snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    device: Device
    first_degraded: float | None = None  # opened_at of its first degradation alert
    failures: tuple[float, ...] = ()  # opened_at of each failure-category alert
    open_alerts: int = 0  # open or acknowledged, any cause

    @property
    def since(self) -> float:
        return self.device.created_at


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """Every registered device with its alert history (device alerts only: a fleet risk
    alert's subject is a group, not a device)."""

    devices: tuple[DeviceFacts, ...]
    now: float
    alerts: tuple[Alert, ...] = ()  # the degradation and failure alerts, newest first

    @classmethod
    def load(
        cls, registry: DeviceRegistry, alerts: AlertStore, *, now: float | None = None
    ) -> FleetSnapshot:
        devices = _all_pages(lambda n, start: registry.list(limit=n, offset=start))
        history = _all_pages(lambda n, start: alerts.list(limit=n, offset=start))
        return cls.build(devices, history, now=time.time() if now is None else now)

    @classmethod
    def build(
        cls, devices: Iterable[Device], history: Iterable[Alert], *, now: float
    ) -> FleetSnapshot:
        first: dict[str, float] = {}
        failures: dict[str, list[float]] = defaultdict(list)
        open_n: Counter[str] = Counter()
        kept: list[Alert] = []
        latest = now
        for a in history:
            counted = False
            if a.cause in DEGRADATION_CAUSES:
                first[a.device_id] = min(first.get(a.device_id, math.inf), a.opened_at)
                counted = True
            if a.category == "failure":
                failures[a.device_id].append(a.opened_at)
                counted = True
            if a.status != "resolved":
                open_n[a.device_id] += 1
            if counted:
                kept.append(a)
                latest = max(latest, a.opened_at)
        facts = tuple(
            DeviceFacts(
                d,
                first.get(d.device_id),
                tuple(sorted(failures.get(d.device_id, ()))),
                open_n[d.device_id],
            )
            for d in devices
        )
        known = {f.device.device_id for f in facts}
        kept.sort(key=lambda a: (-a.opened_at, -a.id))
        # a simulated clock may run ahead of the wall clock: never censor before an event
        return cls(facts, latest, tuple(a for a in kept if a.device_id in known))

    def visible(self, scope: Scope) -> list[DeviceFacts]:
        return [f for f in self.devices if scope.allows_device(f.device)]

    def makers(self, dimension: str, group: str) -> tuple[str, ...]:
        """The manufacturers of a group's devices, fleet-wide (what the scope rule needs)."""
        found = {
            f.device.manufacturer for f in self.devices if _value(f.device, dimension) == group
        }
        return tuple(sorted(found - {""}))

    def members(self, dimension: str, group: str) -> list[DeviceFacts]:
        return [f for f in self.devices if _value(f.device, dimension) == group]


def _value(device: Device, dimension: str) -> str:
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    value: str = getattr(device, dimension)
    return value


def _all_pages(fetch: Callable[[int, int], list[T]]) -> list[T]:
    out: list[T] = []
    while True:
        page = fetch(_PAGE, len(out))
        out.extend(page)
        if len(page) < _PAGE:
            return out


# -- counts over a period -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeriodCounts:
    devices: int  # in service at some time in the period
    at_risk_years: float  # device-years at risk of a first degradation
    service_years: float  # device-years in service
    degraded: int  # first degradations inside the period
    at_risk_devices: int  # devices not yet degraded when the period (or their service) began
    failures: int  # failure alerts opened inside the period
    failed_devices: int


def period_counts(facts: Iterable[DeviceFacts], start: float, end: float) -> PeriodCounts:
    devices = degraded = at_risk_devices = failures = failed = 0
    at_risk_s = service_s = 0.0
    for f in facts:
        begin = max(start, f.since)
        if begin > end:
            continue
        devices += 1
        service_s += end - begin
        fd = f.first_degraded
        if fd is None or fd >= begin:
            at_risk_devices += 1
            if fd is not None and fd <= end:
                degraded += 1
                at_risk_s += fd - begin
            else:
                at_risk_s += end - begin
        n = sum(1 for t in f.failures if begin <= t <= end)
        failures += n
        failed += n > 0
    return PeriodCounts(
        devices, at_risk_s / YEAR_S, service_s / YEAR_S, degraded, at_risk_devices, failures, failed
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """A group's events against its peers', standardised by asset kind."""

    observed: int
    expected: float | None  # at the peers' rate, kind by kind; None without peer exposure
    rate_ratio: float | None
    rate_ratio_low: float | None
    rate_ratio_high: float | None
    p_value: float | None  # one-sided: the group's rate exceeds its peers'


def compare(
    group: Sequence[DeviceFacts],
    peers: Sequence[DeviceFacts],
    start: float,
    end: float,
    *,
    what: str = "degradation",
) -> Comparison:
    """``what``: ``degradation`` (first degradations per year at risk) or ``failure``
    (failure alerts per year in service)."""
    kinds = sorted({f.device.kind for f in group})
    observed = 0
    expected = 0.0
    totals: list[int] = []
    shares: list[float] = []
    peer_exposure = 0.0
    for kind in kinds:
        g = period_counts((f for f in group if f.device.kind == kind), start, end)
        p = period_counts((f for f in peers if f.device.kind == kind), start, end)
        if what == "failure":
            xg, eg, xp, ep = g.failures, g.service_years, p.failures, p.service_years
        else:
            xg, eg, xp, ep = g.degraded, g.at_risk_years, p.degraded, p.at_risk_years
        observed += xg
        peer_exposure += ep
        if ep > 0:
            expected += eg * xp / ep
        totals.append(xg + xp)
        shares.append(eg / (eg + ep) if eg + ep > 0 else 0.0)
    if peer_exposure <= 0 or not kinds:
        return Comparison(observed, None, None, None, None, None)
    p_value = conditional_rate_test(observed, totals, shares)
    if expected <= 0:
        return Comparison(observed, 0.0, None, math.inf if observed else None, None, p_value)
    low, high = poisson_interval(observed)
    return Comparison(
        observed, expected, observed / expected, low / expected, high / expected, p_value
    )


# -- ageing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgeingPoint:
    month: int  # months in service
    share: float | None  # Kaplan-Meier share degraded by then; None: nobody observed that long
    at_risk: int  # devices in service that long and not degraded before


@dataclass(frozen=True, slots=True)
class _Durations:
    months: np.ndarray  # time in service to degradation or censoring
    events: np.ndarray  # degraded (else censored)


def _durations(facts: Iterable[DeviceFacts], now: float) -> _Durations:
    months, events = [], []
    for f in facts:
        end = f.first_degraded if f.first_degraded is not None else now
        months.append(max(end - f.since, 0.0) / MONTH_S)
        events.append(f.first_degraded is not None)
    return _Durations(np.asarray(months, dtype=np.float64), np.asarray(events, dtype=bool))


def ageing(
    facts: Iterable[DeviceFacts], now: float, *, months: int | None = None
) -> list[AgeingPoint]:
    """Kaplan-Meier share degraded at 0, 1, ... months in service."""
    d = _durations(facts, now)
    if len(d.months) == 0:
        return [AgeingPoint(m, None, 0) for m in range(months + 1)] if months else []
    horizon = months if months is not None else min(int(d.months.max()), MAX_MONTHS)
    t_sorted = np.sort(d.months)
    times, deaths = np.unique(d.months[d.events], return_counts=True)
    at_risk_then = len(t_sorted) - np.searchsorted(t_sorted, times, side="left")
    survival = np.cumprod(1.0 - deaths / at_risk_then)
    out = []
    for m in range(horizon + 1):
        at_risk = int(len(t_sorted) - np.searchsorted(t_sorted, m, side="left"))
        i = int(np.searchsorted(times, m, side="right")) - 1
        s = 1.0 if i < 0 else float(survival[i])
        observed = at_risk > 0 or (i >= 0 and s == 0.0)
        out.append(AgeingPoint(m, 1.0 - s if observed else None, at_risk))
    return out


def ageing_pair(
    group: Sequence[DeviceFacts], peers: Sequence[DeviceFacts], now: float
) -> dict[str, Any]:
    """The group's and its peers' (same asset kinds) series on one month axis."""
    kinds = {f.device.kind for f in group}
    same_kind = [f for f in peers if f.device.kind in kinds]
    longest = _durations([*group, *same_kind], now).months
    horizon = min(int(longest.max()), MAX_MONTHS) if len(longest) else 0
    return {
        "months": horizon,
        "group": ageing(group, now, months=horizon),
        "peers": ageing(same_kind, now, months=horizon),
    }


# -- summaries used by several views --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over a device's whole service (registration to now)."""

    devices: int = 0
    valves: int = 0
    pumps: int = 0
    with_open_alerts: int = 0
    open_alerts: int = 0
    degraded: int = 0
    at_risk_years: float = 0.0
    regions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, facts: Sequence[DeviceFacts], now: float) -> Tally:
        counts = period_counts(facts, -math.inf, now)
        regions = Counter(f.device.region for f in facts)
        return cls(
            devices=len(facts),
            valves=sum(f.device.kind == "valve" for f in facts),
            pumps=sum(f.device.kind == "pump" for f in facts),
            with_open_alerts=sum(f.open_alerts > 0 for f in facts),
            open_alerts=sum(f.open_alerts for f in facts),
            degraded=counts.degraded,
            at_risk_years=counts.at_risk_years,
            regions=dict(sorted(regions.items())),
        )

    def as_dict(self) -> dict[str, Any]:
        rate, low, high = rate_with_interval(self.degraded, self.at_risk_years)
        share = share_interval(self.degraded, self.devices)
        return {
            "devices": self.devices,
            "valves": self.valves,
            "pumps": self.pumps,
            "with_open_alerts": self.with_open_alerts,
            "open_alerts": self.open_alerts,
            "degraded": self.degraded,
            "degraded_share": self.degraded / self.devices if self.devices else None,
            "degraded_share_low": share[0] if share else None,
            "degraded_share_high": share[1] if share else None,
            "device_years": self.at_risk_years,
            "degradation_rate_per_year": rate,
            "degradation_rate_low": low,
            "degradation_rate_high": high,
            "regions": self.regions,
        }
