"""One field of one device over a time range, raw or averaged per bucket."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from composition.api.auth import PrincipalDep
from composition.api.deps import RegistryDep, TelemetryDep
from composition.api.models import ErrorBody, TelemetryPoint, TelemetryPublic
from composition.api.scoping import visible_device
from sealscope.errors import Forbidden
from sealscope.storage import TelemetryQuery
from sealscope.wire import SAMPLE_FIELDS

router = APIRouter(prefix="/devices", tags=["telemetry"])

# A Literal built from the wire contract: the 422 and the OpenAPI enum both list the fields.
SampleField = Literal[SAMPLE_FIELDS]  # type: ignore[valid-type]

_DEFAULT_SPAN = timedelta(hours=24)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIX_S = re.compile(r"-?\d+(\.\d+)?")
_EVERY = re.compile(r"(\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
# stores keep event times as int64 ns: 1970-01-01 .. 2262-04-11
_MIN_NS = 0
_MAX_NS = 2**63 - 1
_MAX_EVERY_S = 3650 * 86_400  # a bucket wider than ten years is a typo
# "+08:00" arrives as " 08:00" when a client forgets to percent-encode the plus sign
_LOST_PLUS = re.compile(r" (\d\d:?\d\d)$")


def _invalid(param: str, value: str, msg: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", param), "msg": msg, "input": value}]
    )


def _parse_ns(param: str, value: str) -> int:
    if _UNIX_S.fullmatch(value):
        try:
            return int(Decimal(value) * 1_000_000_000)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
            raise _invalid(param, value, "not a number of Unix seconds") from exc
    try:
        dt = datetime.fromisoformat(_LOST_PLUS.sub(r"+\1", value))
    except ValueError as exc:
        raise _invalid(
            param, value, "expected ISO 8601 (2024-05-01T12:00:00Z) or Unix seconds"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def parse_time_ns(param: str, value: str) -> int:
    """ISO 8601 (naive means UTC) or Unix seconds -> Unix ns, within what a store keeps."""
    value = value.strip()
    t_ns = _parse_ns(param, value)
    if not _MIN_NS <= t_ns <= _MAX_NS:
        raise _invalid(
            param,
            value,
            f"out of range: between {_iso_ms(_MIN_NS // 1_000_000)} and"
            f" {_iso_ms(_MAX_NS // 1_000_000)} (Unix seconds 0 to {_MAX_NS // 10**9})",
        )
    return t_ns


def parse_every_s(value: str) -> int:
    """ "30s", "5m", "1h", "1d" or plain seconds -> seconds (> 0)."""
    match = _EVERY.fullmatch(value.strip().lower())
    if match is None or not match[1].strip("0"):
        raise _invalid(
            "every", value, "expected a positive duration: 30s, 5m, 1h, 1d or integer seconds"
        )
    # int() refuses past 4,300 digits, and nothing that long is in range anyway
    if len(match[1].lstrip("0")) > 12 or int(match[1]) * _UNIT_S[match[2]] > _MAX_EVERY_S:
        raise _invalid("every", value, f"out of range: at most {_MAX_EVERY_S // 86_400}d")
    return int(match[1]) * _UNIT_S[match[2]]


def _iso_ms(t_ms: int) -> str:
    # timedelta arithmetic is exact; a float timestamp could print .999 for .000
    dt = _EPOCH + timedelta(milliseconds=t_ms)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@router.get(
    "/{device_id}/telemetry",
    response_model=TelemetryPublic,
    responses={
        403: {"model": ErrorBody, "description": "raw samples outside the caller's grant"},
        404: {"model": ErrorBody, "description": "unknown device"},
        503: {"model": ErrorBody, "description": "the store is down; see Retry-After"},
    },
)
async def device_telemetry(
    device_id: str,
    registry: RegistryDep,
    store: TelemetryDep,
    principal: PrincipalDep,
    field: Annotated[SampleField, Query(description="a sample field of wire contract v1")],
    start: Annotated[
        str | None,
        Query(description="ISO 8601 or Unix seconds, 1970 to 2262; default: stop - 24 h"),
    ] = None,
    stop: Annotated[
        str | None, Query(description="ISO 8601 or Unix seconds, 1970 to 2262; default: now")
    ] = None,
    every: Annotated[
        str | None,
        Query(
            description="bucket width: 30s, 5m, 1h, 1d or seconds, at most 3650d; omit for raw",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> dict[str, Any]:
    stop_ns = parse_time_ns("stop", stop) if stop else time.time_ns()
    start_ns = (
        parse_time_ns("start", start)
        if start
        else max(_MIN_NS, stop_ns - _DEFAULT_SPAN // timedelta(microseconds=1) * 1000)
    )
    if stop_ns <= start_ns:
        raise _invalid("stop", stop or "now", "stop must be later than start")
    every_s = parse_every_s(every) if every else None
    principal.require("telemetry:read")
    if every_s is None and not principal.scope.sees_raw_telemetry:
        raise Forbidden("this remit grants bucketed telemetry only: add every=... (e.g. 1h)")

    # the registry is synchronous and lock-guarded; keep the event loop free while it answers
    device = await asyncio.to_thread(visible_device, registry, principal.scope, device_id)
    rows = await store.query(
        TelemetryQuery(
            device_id=device_id,
            measurement=device.kind,
            field=field,
            start_ns=start_ns,
            stop_ns=stop_ns,
            every_s=every_s,
            limit=limit,
        )
    )
    points = []
    for t_ns, value in rows:
        if not math.isfinite(value):  # JSON has no NaN; a gap in the chart is the honest answer
            continue
        t_ms = t_ns // 1_000_000
        points.append(TelemetryPoint(t=_iso_ms(t_ms), t_ms=t_ms, value=value))
    return {"device_id": device_id, "field": field, "every_s": every_s, "points": points}
