"""Fleet health: every device in a caller's scope with its NAMUR NE 107 status.

The status of a device is the most severe of

- its unresolved alerts' categories (the detectors' verdicts, as the alert store holds
  them), and
- its reporting: no uplink for longer than ``stale_after_s`` is ``failure`` (its outputs
  are no longer valid); a device that never reported is ``function_check`` (being put in
  service).

Order, most severe first, as ``analytics.base.CategoryCode``: failure, function check,
out of specification, maintenance required, then ok. Last seen and the vitals (battery,
RSRP, SINR) come from the telemetry store's ``latest`` (one read for the whole fleet);
with a store that has none they are unknown and staleness is not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from sealscope.accounts import Scope
from sealscope.alerts import Alert, AlertStore
from sealscope.db import tables
from sealscope.registry import Device, DeviceRegistry, DeviceSummary
from sealscope.risk import DIMENSIONS
from sealscope.storage import Latest, LatestReadings, TelemetryStore

__all__ = [
    "STATUSES",
    "DeviceHealth",
    "FleetHealth",
    "FleetInputs",
    "Status",
    "device_alerts",
    "fleet_health",
    "fleet_inputs",
    "health_of",
    "read_latest",
]

Status = Literal["failure", "function_check", "out_of_specification", "maintenance_required", "ok"]
STATUSES: Final[tuple[Status, ...]] = (
    "failure",
    "function_check",
    "out_of_specification",
    "maintenance_required",
    "ok",
)
_RANK: Final = {s: i for i, s in enumerate(STATUSES)}
_PAGE: Final = 5000


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    device: DeviceSummary
    status: Status
    reasons: tuple[str, ...]  # alert causes, "silent" or "no_data", worst first
    last_seen_s: float | None
    battery_v: float | None
    rsrp_dbm: float | None
    sinr_db: float | None
    open_alerts: int
    worst_severity: int


@dataclass(frozen=True, slots=True)
class FleetHealth:
    rows: list[DeviceHealth]  # the page asked for, of the filtered list worst first
    total: int = 0  # devices matching every filter
    counts: dict[str, int] = field(default_factory=dict)  # per status, before the status filter
    vitals_known: bool = True
    sites: tuple[str, ...] = ()  # the scope's sites (of the kind filter), for a site filter


@dataclass(frozen=True, slots=True)
class FleetInputs:
    """What the state database says about a fleet view: read together, in one thread."""

    devices: list[DeviceSummary]  # in scope, of the kind filter, every site
    alerts: dict[str, list[Alert]]  # unresolved, by device


def fleet_inputs(
    registry: DeviceRegistry, alerts: AlertStore, scope: Scope, kind: str | None = None
) -> FleetInputs:
    """One registry query and the unresolved alerts (synchronous: run it off the loop)."""
    where = None if scope.is_admin else scope.device_clause(tables.devices.c)
    found = registry.summaries(kind=kind, where=where)
    if not scope.sees_site_names:  # as Scope.present does for a whole Device
        found = [d._replace(site="") for d in found]
    return FleetInputs(found, device_alerts(alerts))


def _unresolved(alerts: AlertStore) -> Iterator[Alert]:
    for status in ("open", "acknowledged"):
        offset = 0
        while True:
            page = alerts.list(status=status, limit=_PAGE, offset=offset)
            yield from page
            if len(page) < _PAGE:
                break
            offset += _PAGE


def device_alerts(alerts: AlertStore) -> dict[str, list[Alert]]:
    """Unresolved device alerts by device (fleet risk alerts, ``dimension:group``, left out)."""
    out: dict[str, list[Alert]] = {}
    for a in _unresolved(alerts):
        dimension, colon, _ = a.device_id.partition(":")
        if colon and dimension in DIMENSIONS:
            continue
        out.setdefault(a.device_id, []).append(a)
    return out


async def read_latest(store: TelemetryStore) -> dict[str, Latest] | None:
    """Every device's newest reading, or None when the store cannot say."""
    if isinstance(store, LatestReadings):
        return await store.latest()
    return None


def health_of(
    device: Device | DeviceSummary,
    open_alerts: Iterable[Alert],
    latest: dict[str, Latest] | None,
    *,
    now_s: float,
    stale_after_s: float,
) -> DeviceHealth:
    found = (
        sorted(open_alerts, key=lambda a: (_RANK.get(a.category, len(STATUSES)), -a.severity))
        if open_alerts
        else ()
    )
    status: Status = found[0].category if found else "ok"
    reasons = [a.cause for a in found]
    seen = latest.get(device.device_id) if latest is not None else None
    last_seen = seen.t_ns / 1e9 if seen is not None and seen.t_ns > 0 else None
    if latest is not None:
        if last_seen is None:
            quiet: tuple[Status, str] | None = ("function_check", "no_data")
        elif now_s - last_seen > stale_after_s:
            quiet = ("failure", "silent")
        else:
            quiet = None
        if quiet is not None:
            if _RANK[quiet[0]] <= _RANK[status]:
                status = quiet[0]
                reasons.insert(0, quiet[1])
            else:
                reasons.append(quiet[1])
    values = seen.values if seen is not None else {}

    def vital(name: str) -> float | None:
        return values[name][1] if name in values else None

    return DeviceHealth(
        device=device if isinstance(device, DeviceSummary) else DeviceSummary.of(device),
        status=status,
        reasons=tuple(dict.fromkeys(reasons)) if len(reasons) > 1 else tuple(reasons),
        last_seen_s=last_seen,
        battery_v=vital("battery_v"),
        rsrp_dbm=vital("rsrp_dbm"),
        sinr_db=vital("sinr_db"),
        open_alerts=len(found),
        worst_severity=max(a.severity for a in found) if found else 0,
    )


def fleet_health(
    inputs: FleetInputs,
    latest: dict[str, Latest] | None,
    scope: Scope,
    *,
    now_s: float,
    stale_after_s: float,
    site: str | None = None,
    statuses: frozenset[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> FleetHealth:
    """The fleet worst first, and the page ``offset``/``limit`` of it as ``DeviceHealth``.

    Every device is ranked, but only the page's rows are built: a device without an
    unresolved alert (nearly all of them) is ranked from its last-seen time alone, with
    the rule ``health_of`` applies; the few with alerts go through ``health_of`` itself.
    """
    known = latest is not None
    if site is not None and not scope.sees_site_names:
        return FleetHealth([], 0, dict.fromkeys(STATUSES, 0), known)
    devices = inputs.devices
    sites = tuple(sorted({d.site for d in devices if d.site}))
    if site is not None:
        devices = [d for d in devices if d.site == site]
    by_device = inputs.alerts
    ok, silent, no_data = _RANK["ok"], _RANK["failure"], _RANK["function_check"]
    newest = {k: v.t_ns for k, v in latest.items()} if latest is not None else {}
    # (rank, -worst severity, -open alerts, last seen ns (-1: never), device_id, index)
    keys: list[tuple[int, int, int, float, str, int]] = []
    for i, d in enumerate(devices):
        device_id = d[0]
        t_ns = newest.get(device_id, 0)
        seen = t_ns if t_ns > 0 else -1
        found = by_device.get(device_id)
        if found:
            h = health_of(d, found, latest, now_s=now_s, stale_after_s=stale_after_s)
            keys.append((_RANK[h.status], -h.worst_severity, -h.open_alerts, seen, device_id, i))
        elif not known:
            keys.append((ok, 0, 0, -1, device_id, i))
        elif seen < 0:
            keys.append((no_data, 0, 0, -1, device_id, i))
        else:
            rank = silent if now_s - t_ns / 1e9 > stale_after_s else ok
            keys.append((rank, 0, 0, seen, device_id, i))
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for k in keys:
        counts[STATUSES[k[0]]] += 1
    if statuses:
        wanted = {_RANK[s] for s in statuses if s in _RANK}
        keys = [k for k in keys if k[0] in wanted]
    keys.sort()
    page = keys[offset:] if limit is None else keys[offset : offset + limit]
    rows = [
        health_of(
            devices[k[5]],
            by_device.get(k[4], ()),
            latest,
            now_s=now_s,
            stale_after_s=stale_after_s,
        )
        for k in page
    ]
    return FleetHealth(rows, len(keys), counts, known, sites)
