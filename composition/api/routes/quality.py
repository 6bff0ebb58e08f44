"""The monitoring point's and the manufacturer's views: a fleet risk group in detail, the
quality report (JSON, CSV, PDF), counts and rates by region and site, and a manufacturer's
fleet by model and batch. Figures and their statistics: ``composition/quality.py`` and
docs/reports.md.

Every view reads one ``FleetSnapshot`` (registry and alert history) through the caller's
scope: a group or region outside it answers 404 exactly as a missing one.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from composition.api.auth import PrincipalDep
from composition.api.deps import AlertsDep, RegistryDep, RiskStoreDep
from composition.api.handlers import ApiError
from composition.api.models import DevicePublic, ErrorBody
from composition.api.params import Offset
from composition.quality import (
    YEAR_S,
    AgeingPoint,
    DeviceFacts,
    FleetArrays,
    FleetSnapshot,
    Tally,
    ageing_masks,
)
from composition.quality_report import Lang, ReportBy, build_report, report_csv, report_pdf
from sealscope.accounts import Scope
from sealscope.errors import NotFound
from sealscope.registry import AssetKind

__all__ = ["router"]

router = APIRouter(tags=["quality"])

Dimension = Literal["batch", "model", "manufacturer", "region"]
_MISSING: Final[dict[int | str, dict[str, Any]]] = {404: {"model": ErrorBody}}
# report periods: from 2000 to 2100, so a date never overflows a timestamp
_EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)
GroupName = Annotated[str, Path(min_length=1, max_length=128, description="the group's value")]


def _utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


# -- shapes --------------------------------------------------------------------------------


class AgeingPointPublic(BaseModel):
    month: int = Field(description="months in service")
    share: float | None = Field(description="Kaplan-Meier share degraded by then")
    at_risk: int = Field(description="devices observed that long and not degraded before")

    @classmethod
    def of(cls, p: AgeingPoint) -> AgeingPointPublic:
        return cls(month=p.month, share=p.share, at_risk=p.at_risk)


class Ageing(BaseModel):
    months: int
    group: list[AgeingPointPublic]
    peers: list[AgeingPointPublic] = Field(description="the rest of the fleet, same kinds")

    @classmethod
    def of(cls, pair: dict[str, Any]) -> Ageing:
        return cls(
            months=pair["months"],
            group=[AgeingPointPublic.of(p) for p in pair["group"]],
            peers=[AgeingPointPublic.of(p) for p in pair["peers"]],
        )


class TallyPublic(BaseModel):
    devices: int
    valves: int
    pumps: int
    with_open_alerts: int = Field(description="devices with an open or acknowledged alert")
    open_alerts: int
    degraded: int = Field(description="devices that ever had a seal-degradation alert")
    degraded_share: float | None
    degraded_share_low: float | None = Field(description="95 % Clopper-Pearson")
    degraded_share_high: float | None
    device_years: float = Field(description="device-years at risk since registration")
    degradation_rate_per_year: float | None
    degradation_rate_low: float | None = Field(description="95 % Garwood (exact Poisson)")
    degradation_rate_high: float | None
    regions: dict[str, int] = Field(description="devices by region ('' = none)")

    @classmethod
    def of(cls, facts: list[DeviceFacts], now: float) -> TallyPublic:
        return cls(**Tally.of(facts, now).as_dict())


class GroupDevice(DevicePublic):
    first_degraded_at: datetime | None
    failures: int
    open_alerts: int
    months_in_service: float


class RiskGroupDetail(BaseModel):
    dimension: Dimension
    group: str
    row: dict[str, Any] | None = Field(
        description="the group's fleet risk row (every field the table has), or null"
    )
    evaluated_at: datetime | None = Field(description="when the risk table was evaluated")
    tally: TallyPublic = Field(description="the group's devices you see")
    ageing: Ageing
    devices: list[GroupDevice]
    limit: int
    offset: int


class RegionRow(BaseModel):
    region: str
    site: str | None = Field(description="null: the region's total")
    tally: TallyPublic


class RegionsPublic(BaseModel):
    sites_shown: bool = Field(description="false: your scope hides site names")
    data: list[RegionRow]


class BatchRow(BaseModel):
    batch: str
    tally: TallyPublic


class ModelRow(BaseModel):
    model: str
    kinds: list[AssetKind]
    tally: TallyPublic
    ageing: Ageing
    batches: list[BatchRow]


class FleetByModel(BaseModel):
    manufacturer: str | None
    tally: TallyPublic
    data: list[ModelRow]


# -- helpers -------------------------------------------------------------------------------


# Reading 10,000 devices and their alert history takes about a second; a page, its CSV and
# its PDF asked for one after the other share one read. Never older than this:
SNAPSHOT_MAX_AGE_S: Final = 10.0
_snapshot_lock = threading.Lock()


def _snapshot(request: Request, registry: RegistryDep, alerts: AlertsDep) -> FleetSnapshot:
    with _snapshot_lock:
        cached = getattr(request.app.state, "quality_snapshot", None)
        now = time.monotonic()
        if cached is not None and now - cached[0] < SNAPSHOT_MAX_AGE_S:
            snapshot: FleetSnapshot = cached[1]
            return snapshot
    snapshot = FleetSnapshot.load(registry, alerts)
    request.app.state.quality_snapshot = (now, snapshot)
    return snapshot


def _visible(snap: FleetSnapshot, scope: Scope) -> np.ndarray:
    return np.fromiter(
        (scope.allows_device(f.device) for f in snap.devices), bool, len(snap.devices)
    )


def _group_device(f: DeviceFacts, scope: Scope, now: float) -> GroupDevice:
    public = DevicePublic.of(scope.present(f.device)).model_dump()
    return GroupDevice(
        **public,
        first_degraded_at=_utc(f.first_degraded),
        failures=len(f.failures),
        open_alerts=f.open_alerts,
        months_in_service=max(now - f.since, 0.0) / (YEAR_S / 12),
    )


# -- routes --------------------------------------------------------------------------------


@router.get("/risk/groups/{dimension}/{group}", response_model=RiskGroupDetail, responses=_MISSING)
def risk_group(
    dimension: Dimension,
    group: GroupName,
    principal: PrincipalDep,
    request: Request,
    registry: RegistryDep,
    alerts: AlertsDep,
    risk: RiskStoreDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    offset: Offset = 0,
) -> RiskGroupDetail:
    """A batch, model, manufacturer or region against its peers: its risk row, how its
    seals age against the rest of the fleet of the same kinds, and the devices behind it
    (worst first: degraded, then most open alerts)."""
    principal.require("risk:read")
    scope = principal.scope
    snap = _snapshot(request, registry, alerts)
    table = risk.load()
    row = next((r for r in table.rows if r.key == f"{dimension}:{group}"), None) if table else None
    makers = row.manufacturers if row is not None else snap.makers(dimension, group)
    arrays = FleetArrays(snap.devices)
    in_group = arrays.values(dimension) == group
    mask = in_group & _visible(snap, scope)
    members = [snap.devices[i] for i in np.flatnonzero(mask)]
    if not scope.allows_risk_group(dimension, group, makers) or (not members and row is None):
        raise NotFound(dimension, group)
    members.sort(
        key=lambda f: (
            f.first_degraded is None,
            -f.open_alerts,
            f.first_degraded or 0.0,
            f.device.device_id,
        )
    )
    return RiskGroupDetail(
        dimension=dimension,
        group=group,
        row=row.as_dict() if row is not None else None,
        evaluated_at=_utc(table.evaluated_at) if table and table.evaluated_at else None,
        tally=TallyPublic.of(members, snap.now),
        ageing=Ageing.of(ageing_masks(arrays, mask, ~in_group, snap.now)),
        devices=[_group_device(f, scope, snap.now) for f in members[offset : offset + limit]],
        limit=limit,
        offset=offset,
    )


_REPORT_CONTENT: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "the report as JSON, or with format=csv / format=pdf as a download",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    404: {"model": ErrorBody, "description": "the group is not in your scope"},
}


class QualityReport(BaseModel):
    by: ReportBy
    period_from: str
    period_to: str
    generated_at: str
    level: float = Field(description="the confidence level of every interval")
    rows: list[dict[str, Any]] = Field(description="one per group; docs/reports.md")


Moment = Annotated[
    datetime | None,
    Query(description="ISO 8601 date or date-time (UTC when no offset is given)"),
]


def _bounded(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not _EARLIEST <= value <= _LATEST:
        raise ApiError(422, "validation_error", f"{name} must lie between 2000 and 2100.")
    return value


@router.get("/reports/quality", response_model=QualityReport, responses=_REPORT_CONTENT)
def quality_report(
    principal: PrincipalDep,
    request: Request,
    registry: RegistryDep,
    alerts: AlertsDep,
    risk: RiskStoreDep,
    by: ReportBy = "manufacturer",
    start: Annotated[Moment, Query(alias="from")] = None,
    end: Annotated[Moment, Query(alias="to")] = None,
    group: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    format: Literal["json", "csv", "pdf"] = "json",
    lang: Lang = "en",
) -> Any:
    """Field failure and degradation rates per manufacturer or model for a period (default:
    the last 365 days), against the rest of the fleet of the same kinds, with 95 % exact
    intervals and the evidence."""
    principal.require("risk:read")
    to_dt = _bounded(end, "to") or datetime.fromtimestamp(time.time(), UTC)
    from_dt = _bounded(start, "from") or datetime.fromtimestamp(to_dt.timestamp() - YEAR_S, UTC)
    if from_dt >= to_dt:
        raise ApiError(422, "validation_error", "from must be before to.")
    snap = _snapshot(request, registry, alerts)
    report = build_report(
        snap,
        principal.scope,
        risk.load(),
        by=by,
        start=from_dt.timestamp(),
        end=to_dt.timestamp(),
        group=group,
    )
    if format == "json":
        return QualityReport(**report)
    stem = f"sealscope-quality-{by}-{from_dt:%Y%m%d}-{to_dt:%Y%m%d}"
    if format == "csv":
        body, media = report_csv(report, lang), "text/csv; charset=utf-8"
    else:
        body, media = report_pdf(report, lang), "application/pdf"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{stem}.{format}"'},
    )


@router.get("/regions", response_model=RegionsPublic)
def regions(
    principal: PrincipalDep, request: Request, registry: RegistryDep, alerts: AlertsDep
) -> RegionsPublic:
    """Counts and rates by region, and by site inside it where your scope shows site names."""
    principal.require("devices:read")
    scope = principal.scope
    snap = _snapshot(request, registry, alerts)
    visible = snap.visible(scope)
    by_region: dict[str, list[DeviceFacts]] = {}
    for f in visible:
        by_region.setdefault(f.device.region, []).append(f)
    rows = []
    for region, members in sorted(by_region.items()):
        rows.append(RegionRow(region=region, site=None, tally=TallyPublic.of(members, snap.now)))
        if scope.sees_site_names:
            by_site: dict[str, list[DeviceFacts]] = {}
            for f in members:
                by_site.setdefault(f.device.site, []).append(f)
            rows += [
                RegionRow(region=region, site=site, tally=TallyPublic.of(at, snap.now))
                for site, at in sorted(by_site.items())
            ]
    return RegionsPublic(sites_shown=scope.sees_site_names, data=rows)


@router.get("/fleet/models", response_model=FleetByModel, responses=_MISSING)
def fleet_by_model(
    principal: PrincipalDep,
    request: Request,
    registry: RegistryDep,
    alerts: AlertsDep,
    manufacturer: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="a manufacturer's own code is implied; others may pick one",
        ),
    ] = None,
) -> FleetByModel:
    """A manufacturer's fleet by model and batch: where installed (regions), open alerts,
    degradation with exact intervals, and how each model's seals age against its peers."""
    principal.require("risk:read")
    scope = principal.scope
    if scope.kind == "manufacturer":
        if manufacturer not in (None, scope.manufacturer_code):
            raise NotFound("manufacturer", manufacturer or "")
        manufacturer = scope.manufacturer_code
    snap = _snapshot(request, registry, alerts)
    arrays = FleetArrays(snap.devices)
    mask = _visible(snap, scope)
    if manufacturer is not None:
        mask &= arrays.values("manufacturer") == manufacturer
    visible = [snap.devices[i] for i in np.flatnonzero(mask)]
    if manufacturer is not None and not visible:
        raise NotFound("manufacturer", manufacturer)
    models: dict[str, list[DeviceFacts]] = {}
    for f in visible:
        models.setdefault(f.device.model, []).append(f)
    model_of = arrays.values("model")
    data = []
    for model, members in sorted(models.items()):
        batches: dict[str, list[DeviceFacts]] = {}
        for f in members:
            batches.setdefault(f.device.batch, []).append(f)
        in_model = model_of == model
        data.append(
            ModelRow(
                model=model,
                kinds=sorted({f.device.kind for f in members}),
                tally=TallyPublic.of(members, snap.now),
                ageing=Ageing.of(ageing_masks(arrays, in_model & mask, ~in_model, snap.now)),
                batches=[
                    BatchRow(batch=b, tally=TallyPublic.of(at, snap.now))
                    for b, at in sorted(batches.items())
                ],
            )
        )
    return FleetByModel(
        manufacturer=manufacturer, tally=TallyPublic.of(visible, snap.now), data=data
    )
