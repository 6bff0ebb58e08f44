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
  (beta) for shares of devices, from scipy's incomplete gamma and beta inverses. The
  rate ratio against the peers is standardised by asset kind (observed / expected at the
  peers' rate, kind by kind), its interval Garwood's on the observed count, its p-value
  the exact conditional test fleet risk uses (``analytics.fleet_risk.conditional_rate_test``).
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
from scipy import special

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
    "FleetArrays",
    "FleetSnapshot",
    "PeriodCounts",
    "ageing",
    "ageing_masks",
    "compare",
    "kaplan_meier",
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
    """Garwood's exact interval for a Poisson mean with ``k`` observed events: the gamma
    quantiles (chi-square / 2) that ``scipy.stats.chi2.ppf`` gives, from the ufunc behind it."""
    tail = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(special.gammaincinv(k, tail))
    high = float(special.gammaincinv(k + 1, 1.0 - tail))
    return low, high


def share_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """Clopper-Pearson interval of a share ``k / n`` (the beta quantiles that
    ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")`` solves for numerically,
    in closed form); None when ``n`` is 0."""
    if n <= 0:
        return None
    tail = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, tail))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1.0 - tail))
    return low, high


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


KINDS: Final = ("valve", "pump")


class FleetArrays:
    """Devices as columns, so a view sums a group (or its peers) with a mask: one pass over
    the fleet builds them, every group after that costs a few vector operations."""

    def __init__(self, facts: Sequence[DeviceFacts]) -> None:
        self.facts = facts
        n = len(facts)
        self.kind = np.fromiter((KINDS.index(f.device.kind) for f in facts), np.int8, n)
        self.since = np.fromiter((f.since for f in facts), np.float64, n)
        self.first_degraded = np.fromiter(
            (math.inf if f.first_degraded is None else f.first_degraded for f in facts),
            np.float64,
            n,
        )
        self._values: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.facts)

    def values(self, dimension: str) -> np.ndarray:
        """Each device's batch, model, manufacturer or region (object array)."""
        if dimension not in self._values:
            column = np.empty(len(self.facts), dtype=object)
            column[:] = [_value(f.device, dimension) for f in self.facts]
            self._values[dimension] = column
        return self._values[dimension]

    def kinds_mask(self, mask: np.ndarray) -> np.ndarray:
        """Devices of the asset kinds found under ``mask``: a group's peer pool."""
        return np.isin(self.kind, np.unique(self.kind[mask]))

    def period(self, start: float, end: float) -> PeriodArrays:
        begin = np.maximum(start, self.since)
        live = begin <= end
        at_risk_dev = live & (self.first_degraded >= begin)
        degraded = at_risk_dev & (self.first_degraded <= end)
        stop = np.where(degraded, self.first_degraded, end)
        failures = np.zeros(len(self.facts), np.int64)
        for i, f in enumerate(self.facts):
            if f.failures and live[i]:
                failures[i] = sum(1 for t in f.failures if begin[i] <= t <= end)
        return PeriodArrays(
            live=live,
            service_s=np.where(live, end - begin, 0.0),
            at_risk_s=np.where(at_risk_dev, stop - begin, 0.0),
            at_risk_dev=at_risk_dev,
            degraded=degraded,
            failures=failures,
            kind=self.kind,
        )

    def durations(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Months in service to the first degradation (an event) or to ``now`` (censored)."""
        events = np.isfinite(self.first_degraded)
        stop = np.where(events, self.first_degraded, now)
        return np.maximum(stop - self.since, 0.0) / MONTH_S, events


@dataclass(frozen=True, slots=True)
class PeriodArrays:
    live: np.ndarray  # in service at some time of the period
    service_s: np.ndarray
    at_risk_s: np.ndarray
    at_risk_dev: np.ndarray
    degraded: np.ndarray
    failures: np.ndarray
    kind: np.ndarray

    def counts(self, mask: np.ndarray) -> PeriodCounts:
        return PeriodCounts(
            devices=int(self.live[mask].sum()),
            at_risk_years=float(self.at_risk_s[mask].sum()) / YEAR_S,
            service_years=float(self.service_s[mask].sum()) / YEAR_S,
            degraded=int(self.degraded[mask].sum()),
            at_risk_devices=int(self.at_risk_dev[mask].sum()),
            failures=int(self.failures[mask].sum()),
            failed_devices=int((self.failures[mask] > 0).sum()),
        )

    def compare(self, group: np.ndarray, peers: np.ndarray, *, what: str) -> Comparison:
        """``what``: ``degradation`` (first degradations per year at risk) or ``failure``
        (failure alerts per year in service); strata are the group's asset kinds."""
        observed = 0
        expected = peer_exposure = 0.0
        totals: list[int] = []
        shares: list[float] = []
        kinds = np.unique(self.kind[group])
        for kind in kinds:
            g = self.counts(group & (self.kind == kind))
            p = self.counts(peers & (self.kind == kind))
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
        if peer_exposure <= 0 or not len(kinds):
            return Comparison(observed, None, None, None, None, None)
        p_value = conditional_rate_test(observed, totals, shares)
        if expected <= 0:
            return Comparison(observed, 0.0, None, math.inf if observed else None, None, p_value)
        low, high = poisson_interval(observed)
        return Comparison(
            observed, expected, observed / expected, low / expected, high / expected, p_value
        )


def period_counts(facts: Sequence[DeviceFacts], start: float, end: float) -> PeriodCounts:
    arrays = FleetArrays(facts)
    return arrays.period(start, end).counts(np.ones(len(arrays), bool))


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
    arrays = FleetArrays([*group, *peers])
    mask = np.arange(len(arrays)) < len(group)
    return arrays.period(start, end).compare(mask, ~mask, what=what)


# -- ageing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgeingPoint:
    month: int  # months in service
    share: float | None  # Kaplan-Meier share degraded by then; None: nobody observed that long
    at_risk: int  # devices in service that long and not degraded before


def kaplan_meier(months: np.ndarray, events: np.ndarray, horizon: int) -> list[AgeingPoint]:
    """Share degraded at 0, 1, ... ``horizon`` months in service (1 - the Kaplan-Meier
    survival), censored devices leaving the risk set when their observation ends."""
    if len(months) == 0:
        return [AgeingPoint(m, None, 0) for m in range(horizon + 1)]
    t_sorted = np.sort(months)
    times, deaths = np.unique(months[events], return_counts=True)
    at_risk_then = len(t_sorted) - np.searchsorted(t_sorted, times, side="left")
    survival = np.cumprod(1.0 - deaths / at_risk_then)
    grid = np.arange(horizon + 1)
    at_risk = len(t_sorted) - np.searchsorted(t_sorted, grid, side="left")
    idx = np.searchsorted(times, grid, side="right") - 1
    out = []
    for m, n, i in zip(grid.tolist(), at_risk.tolist(), idx.tolist(), strict=True):
        s = 1.0 if i < 0 else float(survival[i])
        observed = n > 0 or (i >= 0 and s == 0.0)
        out.append(AgeingPoint(m, 1.0 - s if observed else None, n))
    return out


def ageing(
    facts: Sequence[DeviceFacts], now: float, *, months: int | None = None
) -> list[AgeingPoint]:
    durations, events = FleetArrays(facts).durations(now)
    if months is None:
        months = min(int(durations.max()), MAX_MONTHS) if len(durations) else 0
    return kaplan_meier(durations, events, months)


def ageing_masks(
    arrays: FleetArrays, group: np.ndarray, peers: np.ndarray, now: float
) -> dict[str, Any]:
    """The group's and its peers' (same asset kinds) series on one month axis."""
    same_kind = peers & arrays.kinds_mask(group)
    durations, events = arrays.durations(now)
    both = durations[group | same_kind]
    horizon = min(int(both.max()), MAX_MONTHS) if len(both) else 0
    return {
        "months": horizon,
        "group": kaplan_meier(durations[group], events[group], horizon),
        "peers": kaplan_meier(durations[same_kind], events[same_kind], horizon),
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
