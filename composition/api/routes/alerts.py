"""Alerts: list, look up, acknowledge, resolve; each through the caller's scope.

Reading is open to every organisation inside its scope; acknowledging and resolving is the
technicians' (operators') and the admin's.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from composition.api.auth import PrincipalDep
from composition.api.body import no_body
from composition.api.deps import AlertsDep, RegistryDep, RiskStoreDep
from composition.api.handlers import ApiError
from composition.api.models import AlertPublic, AlertsPublic, ErrorBody
from composition.api.params import AlertId, Limit, Offset
from composition.api.scoping import scoped_alerts, visible_alert
from sealscope.alerts import AlertStatus

router = APIRouter(prefix="/alerts", tags=["alerts"])

_responses: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


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


def _transition(
    alert_id: int,
    to: AlertStatus,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
) -> AlertPublic:
    principal.require("alerts:act")
    visible_alert(alerts, registry, risk, principal.scope, alert_id)
    alert = alerts.set_status(alert_id, to)
    # the store never reopens: a resolved alert stays resolved, and saying so beats a 200
    if alert.status == "resolved" and to != "resolved":
        raise ApiError(
            409,
            "alert_resolved",
            f"Alert {alert_id} is already resolved; it cannot be {to}.",
        )
    return AlertPublic.of(alert)


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertPublic,
    responses={
        **_responses,
        403: {"model": ErrorBody, "description": "the caller's role may not"},
        409: {"model": ErrorBody, "description": "already resolved"},
    },
    dependencies=[Depends(no_body)],
)
def acknowledge_alert(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
) -> AlertPublic:
    return _transition(alert_id, "acknowledged", alerts, registry, risk, principal)


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertPublic,
    responses={**_responses, 403: {"model": ErrorBody, "description": "the caller's role may not"}},
    dependencies=[Depends(no_body)],
)
def resolve_alert(
    alert_id: AlertId,
    alerts: AlertsDep,
    registry: RegistryDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
) -> AlertPublic:
    return _transition(alert_id, "resolved", alerts, registry, risk, principal)
