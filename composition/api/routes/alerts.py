"""Alerts: list and look up, acknowledge and resolve by hand."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from composition.api.body import no_body
from composition.api.deps import AlertsDep
from composition.api.handlers import ApiError
from composition.api.models import AlertPublic, AlertsPublic, ErrorBody
from composition.api.params import AlertId, Limit, Offset
from sealscope.alerts import AlertStatus, AlertStore

router = APIRouter(prefix="/alerts", tags=["alerts"])

_responses: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


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


def _transition(alerts: AlertStore, alert_id: int, to: AlertStatus) -> AlertPublic:
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
    responses={**_responses, 409: {"model": ErrorBody, "description": "already resolved"}},
    dependencies=[Depends(no_body)],
)
def acknowledge_alert(alert_id: AlertId, alerts: AlertsDep) -> AlertPublic:
    return _transition(alerts, alert_id, "acknowledged")


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertPublic,
    responses=_responses,
    dependencies=[Depends(no_body)],
)
def resolve_alert(alert_id: AlertId, alerts: AlertsDep) -> AlertPublic:
    return _transition(alerts, alert_id, "resolved")
