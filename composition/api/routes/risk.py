"""Fleet risk: the current table of batches, models, manufacturers and regions vs their peers.

The table comes from the ``RiskStore`` on ``app.state.risk_store``, which the detection
process writes; before a first table exists the route answers 503 rather than an empty
table that would read as "no risk".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from composition.api.auth import PrincipalDep
from composition.api.deps import RiskStoreDep
from composition.api.handlers import ApiError
from composition.api.models import ErrorBody

__all__ = ["RiskRowPublic", "RiskTablePublic", "router"]

router = APIRouter(prefix="/risk", tags=["risk"])

Dimension = Literal["batch", "model", "manufacturer", "region"]
Strength = Literal["none", "weak", "moderate", "strong"]


class RiskRowPublic(BaseModel):
    key: str = Field(description="dimension:group, the device_id of the group's risk alert")
    dimension: Dimension
    group: str
    devices: int
    events: int = Field(description="devices with a seal alert")
    exposure_days: float = Field(description="device-days at risk")
    rate_per_year: float = Field(description="events per device-year at risk")
    peer_devices: int
    peer_events: int
    peer_exposure_days: float
    peer_rate_per_year: float
    expected_events: float = Field(description="events at the peers' rate, per asset kind")
    rate_ratio: float | None = Field(description="observed / expected; null: no peer events")
    rate_ratio_low: float | None = Field(description="95 % interval, exact conditional")
    rate_ratio_high: float | None
    p_value: float = Field(
        description="combined one-sided p: the smaller of the event and growth tests, "
        "doubled when both ran"
    )
    q_value: float = Field(description="Benjamini-Hochberg adjusted over the whole table")
    strength: Strength
    flagged: bool = Field(description="a quality risk alert is warranted")
    manufacturers: list[str]
    models: list[str] = []
    event_p_value: float | None = Field(None, description="exact conditional test of events")
    growth_devices: int = Field(0, description="devices with a commissioned baseline")
    growing: int = Field(0, description="of the group: clearly growing or alerted")
    growth_per_30d: float | None = Field(
        None, description="degradation growth, x per 30 days (empirical Bayes)"
    )
    peer_growth_per_30d: float | None = None
    growth_ratio: float | None = Field(None, description="growth rate / peers' growth rate")
    growth_ratio_low: float | None = Field(None, description="95 % posterior interval")
    growth_ratio_high: float | None = None
    growth_p_value: float | None = Field(None, description="exact resampling test of levels")
    near_limit: int = Field(0, description="devices projected at their class limit in 90 d")
    evidence_text: str = Field("", description="the evidence in a quality engineer's words")


class RiskTablePublic(BaseModel):
    evaluated_at: datetime | None = Field(description="event time of the newest observation")
    devices: int
    events: int
    exposure_days: float
    tests: int = Field(description="groups in the multiple-comparison family")
    data: list[RiskRowPublic]


@router.get(
    "",
    response_model=RiskTablePublic,
    responses={503: {"model": ErrorBody, "description": "fleet risk not running here"}},
)
def risk_table(
    risk: RiskStoreDep,
    principal: PrincipalDep,
    dimension: Dimension | None = None,
    min_strength: Strength = "none",
    flagged: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> RiskTablePublic:
    principal.require("risk:read")
    table = risk.load()
    if table is None:
        raise ApiError(
            503,
            "fleet_risk_unavailable",
            "No fleet risk evaluated yet: the detection process (sealscope ingest or up) "
            "saves it once it has run.",
        )
    rows = [
        r
        for r in table.select(dimension=dimension, min_strength=min_strength)
        if principal.scope.allows_risk_row(r)
    ]
    if flagged is not None:
        rows = [r for r in rows if r.flagged == flagged]
    return RiskTablePublic(
        evaluated_at=datetime.fromtimestamp(table.evaluated_at, UTC)
        if table.evaluated_at
        else None,
        devices=table.devices,
        events=table.events,
        exposure_days=table.exposure_days,
        tests=table.tests,
        data=[RiskRowPublic(**r.as_dict()) for r in rows[:limit]],
    )
