"""Alerts: list and look up; acknowledge, assign and resolve by hand; the audit trail.

Each goes through the caller's scope: reading is open to every organisation inside its
scope; acting on an alert is the technicians' (operators') and the admin's. The actor in
the audit trail is the signed-in person or the key's name.
"""

from __future__ import annotations

from fastapi import APIRouter

from composition.api.auth import PrincipalDep
from composition.api.deps import AlertsDep, RegistryDep, RiskStoreDep
from composition.api.handlers import ApiError
from composition.api.models import (
    AlertAcknowledge,
    AlertAssign,
    AlertEventPublic,
    AlertEventsPublic,
    AlertPublic,
    AlertResolve,
    AlertsPublic,
    ErrorBody,
)
from composition.api.params import AlertId, Limit, Offset
from composition.api.scoping import scoped_alerts, visible_alert
from sealscope.accounts import Principal
from sealscope.alerts import Alert, AlertStatus

router = APIRouter(prefix="/alerts", tags=["alerts"])

_responses: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}
_forbidden: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorBody, "description": "the caller's role may not"}
}
_acts: dict[int | str, dict[str, object]] = {
    **_responses,
    **_forbidden,
    409: {"model": ErrorBody, "description": "already resolved"},
}


@router.get("", response_model=AlertsPublic)
def list_alerts(
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
    status: AlertStatus | None = None,
    device_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AlertsPublic:
    principal.require("alerts:read")
    found = scoped_alerts(
        alerts,
        registry,
        risk,
        principal.scope,
        status=status,
        device_id=device_id,
        limit=limit,
        offset=offset,
    )
    return AlertsPublic(data=[AlertPublic.of(a) for a in found], limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertPublic, responses=_responses)
def get_alert(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
) -> AlertPublic:
    principal.require("alerts:read")
    return AlertPublic.of(visible_alert(alerts, registry, risk, principal.scope, alert_id))


@router.get("/{alert_id}/events", response_model=AlertEventsPublic, responses=_responses)
def list_alert_events(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AlertEventsPublic:
    principal.require("alerts:read")
    visible_alert(alerts, registry, risk, principal.scope, alert_id)
    events = alerts.events(alert_id, limit=limit, offset=offset)
    return AlertEventsPublic(
        data=[AlertEventPublic.of(e) for e in events], limit=limit, offset=offset
    )


def _may_act(
    alert_id: int, alerts: AlertsDep, registry: RegistryDep, risk: RiskStoreDep, who: Principal
) -> str:
    """The actor's name for the trail, once the caller may act on this alert."""
    who.require("alerts:act")
    visible_alert(alerts, registry, risk, who.scope, alert_id)
    return who.name


def _unless_resolved(alert: Alert, act: str) -> AlertPublic:
    # the store never reopens: a resolved alert stays resolved, and saying so beats a 200
    if alert.status == "resolved":
        raise ApiError(
            409,
            "alert_resolved",
            f"Alert {alert.id} is already resolved; it cannot be {act}.",
        )
    return AlertPublic.of(alert)


# The bodies are optional: no body acts as {} does (the web page sends {}).


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic, responses=_acts)
def acknowledge_alert(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
    body: AlertAcknowledge | None = None,
) -> AlertPublic:
    actor = _may_act(alert_id, alerts, registry, risk, principal)
    comment = body.comment if body is not None else ""
    return _unless_resolved(
        alerts.acknowledge(alert_id, actor=actor, comment=comment), "acknowledged"
    )


@router.post("/{alert_id}/assign", response_model=AlertPublic, responses=_acts)
def assign_alert(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
    body: AlertAssign,
) -> AlertPublic:
    actor = _may_act(alert_id, alerts, registry, risk, principal)
    return _unless_resolved(
        alerts.assign(alert_id, actor=actor, assignee=body.assignee), "assigned"
    )


@router.post(
    "/{alert_id}/resolve", response_model=AlertPublic, responses={**_responses, **_forbidden}
)
def resolve_alert(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
    body: AlertResolve | None = None,
) -> AlertPublic:
    actor = _may_act(alert_id, alerts, registry, risk, principal)
    note = body.note if body is not None else ""
    return AlertPublic.of(alerts.resolve(alert_id, actor=actor, note=note))
