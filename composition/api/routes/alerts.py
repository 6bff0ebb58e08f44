"""Alerts: list and look up; acknowledge, assign and resolve by hand; the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from composition.api.deps import AlertsDep
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
from sealscope.alerts import Alert, AlertStatus

router = APIRouter(prefix="/alerts", tags=["alerts"])

_responses: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}
_acts: dict[int | str, dict[str, object]] = {
    **_responses,
    409: {"model": ErrorBody, "description": "already resolved"},
}


def current_actor(request: Request) -> str:
    """Who is acting, for the audit trail.

    PLACEHOLDER until the accounts work lands: then the authenticated principal's user or
    key name. Every alert act takes its actor from here and nowhere else.
    """
    return "anonymous"


ActorDep = Annotated[str, Depends(current_actor)]


@router.get("", response_model=AlertsPublic)
def list_alerts(
    alerts: AlertsDep,
    status: AlertStatus | None = None,
    device_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AlertsPublic:
    found = alerts.list(status=status, device_id=device_id, limit=limit, offset=offset)
    return AlertsPublic(data=[AlertPublic.of(a) for a in found], limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertPublic, responses=_responses)
def get_alert(alert_id: AlertId, alerts: AlertsDep) -> AlertPublic:
    return AlertPublic.of(alerts.get(alert_id))


@router.get("/{alert_id}/events", response_model=AlertEventsPublic, responses=_responses)
def list_alert_events(
    alert_id: AlertId, alerts: AlertsDep, limit: Limit = 100, offset: Offset = 0
) -> AlertEventsPublic:
    events = alerts.events(alert_id, limit=limit, offset=offset)
    return AlertEventsPublic(
        data=[AlertEventPublic.of(e) for e in events], limit=limit, offset=offset
    )


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
    alert_id: AlertId, alerts: AlertsDep, actor: ActorDep, body: AlertAcknowledge | None = None
) -> AlertPublic:
    comment = body.comment if body is not None else ""
    return _unless_resolved(
        alerts.acknowledge(alert_id, actor=actor, comment=comment), "acknowledged"
    )


@router.post("/{alert_id}/assign", response_model=AlertPublic, responses=_acts)
def assign_alert(
    alert_id: AlertId, alerts: AlertsDep, actor: ActorDep, body: AlertAssign
) -> AlertPublic:
    return _unless_resolved(
        alerts.assign(alert_id, actor=actor, assignee=body.assignee), "assigned"
    )


@router.post("/{alert_id}/resolve", response_model=AlertPublic, responses=_responses)
def resolve_alert(
    alert_id: AlertId, alerts: AlertsDep, actor: ActorDep, body: AlertResolve | None = None
) -> AlertPublic:
    note = body.note if body is not None else ""
    return AlertPublic.of(alerts.resolve(alert_id, actor=actor, note=note))
