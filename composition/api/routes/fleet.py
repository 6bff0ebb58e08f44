"""The technician's views as data: fleet health (every device in scope with its NAMUR NE 107
status, worst first) and one device's health page (identity, seal-health series against
baseline and class limit, actuation, pump seal trends, verdicts and alert history).

Both read through the caller's scope like every other route: a device outside it answers
404, the fleet lists only what the scope allows (site names as ``Scope.present`` shows them).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from analytics.actuation import ActuationWearDetector
from analytics.pump_seal import PumpSealDetector
from analytics.seat_leak import SeatLeakDetector
from composition.api.auth import PrincipalDep
from composition.api.deps import AlertsDep, RegistryDep, RiskStoreDep, TelemetryDep
from composition.api.models import AlertPublic, DevicePublic, ErrorBody
from composition.api.params import MAX_OFFSET
from composition.api.scoping import scoped_alerts, visible_device
from composition.device_health import (
    DetectionState,
    Window,
    actuation_points,
    pump_series,
    seal_series,
)
from composition.fleet_health import (
    STATUSES,
    DeviceHealth,
    Status,
    fleet_health,
    fleet_inputs,
    health_of,
    read_latest,
)
from sealscope.registry import AssetKind

__all__ = ["router"]

router = APIRouter(tags=["fleet health"])

_DAY_S = 86_400.0
StaleHours = Annotated[
    float,
    Query(gt=0, le=24 * 365, description="no uplink for longer than this is a failure (hours)"),
]


class DeviceHealthPublic(BaseModel):
    device_id: str
    kind: AssetKind
    manufacturer: str
    model: str
    site: str
    region: str
    status: Status = Field(
        description="NAMUR NE 107: failure, function_check, "
        "out_of_specification, maintenance_required or ok"
    )
    reasons: list[str] = Field(description='alert causes, "silent" or "no_data", worst first')
    last_seen: datetime | None
    battery_v: float | None
    rsrp_dbm: float | None
    sinr_db: float | None
    open_alerts: int = Field(description="unresolved (open or acknowledged) alerts")
    worst_severity: int = Field(description="0 when no alert is unresolved")

    @classmethod
    def of(cls, h: DeviceHealth) -> DeviceHealthPublic:
        d = h.device
        return cls(
            device_id=d.device_id,
            kind=d.kind,
            manufacturer=d.manufacturer,
            model=d.model,
            site=d.site,
            region=d.region,
            status=h.status,
            reasons=list(h.reasons),
            last_seen=None if h.last_seen_s is None else datetime.fromtimestamp(h.last_seen_s, UTC),
            battery_v=h.battery_v,
            rsrp_dbm=h.rsrp_dbm,
            sinr_db=h.sinr_db,
            open_alerts=h.open_alerts,
            worst_severity=h.worst_severity,
        )


class FleetHealthPublic(BaseModel):
    data: list[DeviceHealthPublic]
    total: int = Field(description="devices matching the filters")
    counts: dict[str, int] = Field(description="devices per status, before the status filter")
    vitals_known: bool = Field(
        description="false: the telemetry store cannot list newest readings, so last seen, "
        "battery and radio are unknown and silence is not judged"
    )
    stale_after_s: float
    limit: int
    offset: int
    sites: list[str] = Field(
        description="the sites of the devices in scope (of the kind filter), for a site filter"
    )


class DeviceHealthPage(BaseModel):
    device: DevicePublic
    health: DeviceHealthPublic
    window_start: datetime
    window_stop: datetime
    seal: dict[str, Any] | None = Field(description="valves: seat leakage vs baseline and limit")
    actuation: dict[str, Any] | None = Field(description="valves: stroke time, torque vs ΔP")
    pump: dict[str, Any] | None = Field(description="pumps: seal leakage, temperature, vibration")
    verdicts: dict[str, dict[str, Any]] = Field(
        description="each detector's current verdict and evidence (empty before detection ran)"
    )
    alerts: list[AlertPublic] = Field(description="the device's alerts, newest first")


def _detection(request: Request) -> DetectionState:
    state: DetectionState | None = getattr(request.app.state, "detection_state", None)
    if state is None:
        state = DetectionState(request.app.state.settings, request.app.state.alerts)
        request.app.state.detection_state = state
    return state


_ENCODER = msgspec.json.Encoder()


class _Row(msgspec.Struct):
    """One row of the fleet list as it is encoded (``DeviceHealthPublic`` documents it)."""

    device_id: str
    kind: str
    manufacturer: str
    model: str
    site: str
    region: str
    status: str
    reasons: tuple[str, ...]
    last_seen: datetime | None
    battery_v: float | None
    rsrp_dbm: float | None
    sinr_db: float | None
    open_alerts: int
    worst_severity: int


def _row(h: DeviceHealth) -> _Row:
    seen = None if h.last_seen_s is None else datetime.fromtimestamp(h.last_seen_s, UTC)
    return _Row(
        *h.device,
        h.status,
        h.reasons,
        seen,
        h.battery_v,
        h.rsrp_dbm,
        h.sinr_db,
        h.open_alerts,
        h.worst_severity,
    )


@router.get("/fleet/health", response_model=FleetHealthPublic)
async def list_fleet_health(
    registry: RegistryDep,
    alerts: AlertsDep,
    store: TelemetryDep,
    principal: PrincipalDep,
    site: str | None = None,
    kind: AssetKind | None = None,
    status: Annotated[list[Status] | None, Query(description="repeat for several")] = None,
    stale_after_h: StaleHours = 24.0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="page size")] = 500,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    principal.require("devices:read")
    principal.require("alerts:read")
    # the telemetry store and the state database are read at the same time
    latest, inputs = await asyncio.gather(
        read_latest(store),
        asyncio.to_thread(fleet_inputs, registry, alerts, principal.scope, kind),
    )
    found = await asyncio.to_thread(
        fleet_health,
        inputs,
        latest,
        principal.scope,
        now_s=time.time(),
        stale_after_s=stale_after_h * 3600.0,
        site=site,
        statuses=frozenset(status) if status else None,
        offset=offset,
        limit=limit,
    )
    # encoded straight from plain values (the model is what the OpenAPI shows): pydantic
    # validating each row cost more than ranking the whole fleet
    body = {
        "data": [_row(h) for h in found.rows],
        "total": found.total,
        "counts": {s: found.counts.get(s, 0) for s in STATUSES},
        "vitals_known": found.vitals_known,
        "stale_after_s": stale_after_h * 3600.0,
        "limit": limit,
        "offset": offset,
        "sites": found.sites,
    }
    return Response(_ENCODER.encode(body), media_type="application/json")


def _device_page_sync(
    request: Request,
    registry: RegistryDep,
    alerts: AlertsDep,
    risk: RiskStoreDep,
    principal: PrincipalDep,
    device_id: str,
) -> tuple[Any, list[Any], dict[str, dict[str, Any]], list[Any]]:
    device = visible_device(registry, principal.scope, device_id)
    history = scoped_alerts(
        alerts,
        registry,
        risk,
        principal.scope,
        status=None,
        device_id=device_id,
        limit=100,
        offset=0,
    )
    unresolved = [a for a in history if a.status != "resolved"]
    verdicts = _detection(request).explain(device_id)
    return device, unresolved, verdicts, history


@router.get(
    "/devices/{device_id}/health",
    response_model=DeviceHealthPage,
    responses={404: {"model": ErrorBody, "description": "unknown device"}},
)
async def device_health(
    device_id: str,
    request: Request,
    registry: RegistryDep,
    alerts: AlertsDep,
    risk: RiskStoreDep,
    store: TelemetryDep,
    principal: PrincipalDep,
    days: Annotated[float, Query(gt=0, le=3650, description="span of the charts")] = 90.0,
    at: Annotated[
        float | None,
        Query(
            ge=0,
            le=2**33,
            description="Unix s to centre on (an alert's moment); default: the newest reading",
        ),
    ] = None,
    stale_after_h: StaleHours = 24.0,
) -> DeviceHealthPage:
    principal.require("devices:read")
    principal.require("telemetry:read")
    device, unresolved, verdicts, history = await asyncio.to_thread(
        _device_page_sync, request, registry, alerts, risk, principal, device_id
    )
    latest = await read_latest(store)
    now = time.time()
    health = health_of(device, unresolved, latest, now_s=now, stale_after_s=stale_after_h * 3600.0)
    span = days * _DAY_S
    # around an alert's moment: what led up to it, and a little of what followed
    stop_s = at + span / 4 if at is not None else (health.last_seen_s or now) + 1.0
    window = Window(int((stop_s - span) * 1e9), int(stop_s * 1e9))
    if window.start_ns < 0:
        window = Window(0, window.stop_ns)
    detection = _detection(request)
    seal = actuation = pump = None
    raw = principal.scope.sees_raw_telemetry
    # charts are drawn from raw readings; a remit without raw data gets identity and verdicts
    if raw and device.kind == "valve":
        seal = await seal_series(
            store, device, detection.detector(SeatLeakDetector), window, verdicts.get("seat_leak")
        )
        actuation = await actuation_points(
            store, device, detection.detector(ActuationWearDetector), window
        )
    elif device.kind == "pump":
        pump = await pump_series(store, device, detection.detector(PumpSealDetector), window)
    return DeviceHealthPage(
        device=DevicePublic.of(device),
        health=DeviceHealthPublic.of(health),
        window_start=datetime.fromtimestamp(window.start_ns / 1e9, UTC),
        window_stop=datetime.fromtimestamp(window.stop_ns / 1e9, UTC),
        seal=seal,
        actuation=actuation,
        pump=pump,
        verdicts=verdicts,
        alerts=[AlertPublic.of(a) for a in history],
    )
