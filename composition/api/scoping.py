"""Reading stores through a caller's ``Scope``: what is outside it answers as missing.

Device lists put the rule into the registry's query (``Scope.device_clause``), so a page
costs one indexed query whatever the fleet's size. The alert port filters by device and
status only, so scoped alert lists page through it and keep what ``Scope`` allows (exact,
and paged in the store's own order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, TypeVar

from sealscope.accounts import Scope
from sealscope.alerts import Alert, AlertStatus, AlertStore
from sealscope.db import tables
from sealscope.errors import NotFound
from sealscope.registry import Device, DeviceRegistry
from sealscope.risk import DIMENSIONS, RiskStore, RiskTable

__all__ = ["alert_in_scope", "scoped_alerts", "scoped_devices", "visible_alert", "visible_device"]

_PAGE: Final = 1000
T = TypeVar("T")


def _page_through(
    fetch: Callable[[int, int], list[T]], keep: Callable[[T], bool], limit: int, offset: int
) -> list[T]:
    def kept() -> Iterator[T]:
        start = 0
        while True:
            page = fetch(_PAGE, start)
            yield from (item for item in page if keep(item))
            if len(page) < _PAGE:
                return
            start += _PAGE

    out: list[T] = []
    for n, item in enumerate(kept()):
        if n >= offset + limit:
            break
        if n >= offset:
            out.append(item)
    return out


def _table(risk: RiskStore | None) -> RiskTable | None:
    return risk.load() if risk is not None else None


def visible_device(registry: DeviceRegistry, scope: Scope, device_id: str) -> Device:
    device = registry.get(device_id)
    if not scope.allows_device(device):
        raise NotFound("device", device_id)
    return scope.present(device)


def scoped_devices(
    registry: DeviceRegistry,
    scope: Scope,
    *,
    manufacturer: str | None,
    site: str | None,
    limit: int,
    offset: int,
) -> list[Device]:
    if site is not None and not scope.sees_site_names:
        return []  # filtering by a name the caller may not see would reveal it
    if scope.is_admin:
        return registry.list(manufacturer=manufacturer, site=site, limit=limit, offset=offset)
    found = registry.list(
        manufacturer=manufacturer,
        site=site,
        limit=limit,
        offset=offset,
        where=scope.device_clause(tables.devices.c),
    )
    return [scope.present(d) for d in found]


def alert_in_scope(
    scope: Scope, alert: Alert, registry: DeviceRegistry, table: RiskTable | None
) -> bool:
    """A device alert follows its device; a fleet risk alert (subject ``dimension:group``,
    never a device id) follows the risk group."""
    if scope.is_admin:
        return True
    dimension, colon, group = alert.device_id.partition(":")
    if colon and dimension in DIMENSIONS:
        row = next((r for r in (table.rows if table else ()) if r.key == alert.device_id), None)
        makers = row.manufacturers if row is not None else ()
        return scope.allows_risk_group(dimension, group, makers)
    try:
        return scope.allows_device(registry.get(alert.device_id))
    except NotFound:
        return False


def visible_alert(
    alerts: AlertStore,
    registry: DeviceRegistry,
    risk: RiskStore | None,
    scope: Scope,
    alert_id: int,
) -> Alert:
    alert = alerts.get(alert_id)
    if not alert_in_scope(scope, alert, registry, _table(risk)):
        raise NotFound("alert", str(alert_id))
    return alert


def scoped_alerts(
    alerts: AlertStore,
    registry: DeviceRegistry,
    risk: RiskStore | None,
    scope: Scope,
    *,
    status: AlertStatus | None,
    device_id: str | None,
    limit: int,
    offset: int,
) -> list[Alert]:
    if scope.is_admin:
        return alerts.list(status=status, device_id=device_id, limit=limit, offset=offset)
    table = _table(risk)
    verdicts: dict[str, bool] = {}  # one registry lookup per device, not per alert

    def keep(alert: Alert) -> bool:
        if alert.device_id not in verdicts:
            verdicts[alert.device_id] = alert_in_scope(scope, alert, registry, table)
        return verdicts[alert.device_id]

    return _page_through(
        lambda n, start: alerts.list(status=status, device_id=device_id, limit=n, offset=start),
        keep,
        limit,
        offset,
    )
