"""Provisioning: a manufacturer uploads a fleet file; a technician claims a device into a site.

Access: a manufacturer uploads under its own code (the admin names one with
``?manufacturer=``) and reads its own uploads' reports; an operator's technician (or the
admin) claims into one of its operator's sites. Failed claims are limited per person or key.

``POST /provisioning/devices`` takes ``text/csv`` or a JSON array, up to
``Settings.provisioning_max_body_bytes`` (this path only). The answer carries the
credentials file once: as JSON (``credentials_csv``) or, with ``Accept: text/csv``, as the
file itself with the upload's report at ``Location``. Neither is stored nor logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from starlette.concurrency import run_in_threadpool

from composition.api.auth import PrincipalDep
from composition.api.body import parse_strict_json
from composition.api.handlers import ApiError, error_response
from composition.api.models import DevicePublic, ErrorBody
from composition.api.params import MAX_ID, Offset
from sealscope.accounts import Principal
from sealscope.errors import FleetFileRejected, Forbidden, NotFound
from sealscope.labels import check_label
from sealscope.provisioning import (
    MAX_ROWS,
    BrokerProgress,
    BrokerState,
    ClaimLimiter,
    FleetRow,
    Mode,
    Provisioner,
    RowStatus,
    Upload,
    UploadRow,
    credentials_csv,
    parse_csv,
    parse_json,
)
from sealscope.topics import DEVICE_ID_PATTERN

__all__ = ["UPLOAD_PATH", "router"]

UPLOAD_PATH = "/api/v1/provisioning/devices"
router = APIRouter(tags=["provisioning"])


# ---- WHO CALLS: the one place this module turns the principal into what it may do. ----
def uploader_manufacturer(
    principal: PrincipalDep,
    manufacturer: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="admin only: the manufacturer code to provision for (a manufacturer"
            " provisions under its own code)",
        ),
    ] = None,
) -> str:
    """The manufacturer code an upload (or its report) is for: a manufacturer's own only."""
    principal.require("devices:register")
    scope = principal.scope
    if scope.kind == "manufacturer":
        own = scope.manufacturer_code
        if own is None or manufacturer not in (None, own):
            raise Forbidden(f"a manufacturer provisions only its own devices ({own!r})")
        return own
    if manufacturer is None:
        raise ApiError(422, "validation_error", "Name the manufacturer: ?manufacturer=CODE.")
    return manufacturer


@dataclass(frozen=True, slots=True)
class Claimer:
    org: str  # recorded as who claimed
    rate_key: str  # whose failures count together: one person or key


def claimer(principal: PrincipalDep) -> Claimer:
    principal.require("devices:claim")
    who = principal.user_id if principal.user_id is not None else principal.key_id
    return Claimer(org=f"org:{principal.org_id}", rate_key=f"{principal.org_id}/{who}")


def check_claim_site(principal: Principal, site: str) -> None:
    """A technician claims into its operator's own sites; the admin into any."""
    scope = principal.scope
    if not scope.is_admin and site not in scope.sites:
        raise Forbidden(f"{site!r} is not one of your sites")


ManufacturerDep = Annotated[str, Depends(uploader_manufacturer)]
ClaimerDep = Annotated[Claimer, Depends(claimer)]
# ---------------------------------------------------------------------------------------


def get_provisioner(request: Request) -> Provisioner:
    return request.app.state.provisioner


def get_claim_limiter(request: Request) -> ClaimLimiter:
    return request.app.state.claim_limiter


ProvisionerDep = Annotated[Provisioner, Depends(get_provisioner)]
ClaimLimiterDep = Annotated[ClaimLimiter, Depends(get_claim_limiter)]


class RowReport(BaseModel):
    line: int = Field(
        description="CSV line the row starts on (the header is line 1), or JSON index"
    )
    device_id: str | None
    status: RowStatus
    reason: str = Field("", description="rejected rows: each fault as 'field: why', '; '-joined")
    credentials_issued: bool = False

    @classmethod
    def of(cls, row: UploadRow) -> RowReport:
        return cls(
            line=row.line,
            device_id=row.device_id,
            status=row.status,
            reason=row.reason,
            credentials_issued=row.credentials_issued,
        )


class UploadPublic(BaseModel):
    id: int
    manufacturer: str
    created_at: datetime
    file_format: Literal["csv", "json"]
    mode: Mode
    rotate: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    credentials_issued: int

    @classmethod
    def of(cls, upload: Upload) -> UploadPublic:
        fields = {k: getattr(upload, k) for k in cls.model_fields if k != "created_at"}
        return cls(created_at=datetime.fromtimestamp(upload.created_at, UTC), **fields)


class ProvisioningReport(BaseModel):
    upload: UploadPublic
    rows: list[RowReport]
    credentials_filename: str
    credentials_csv: str = Field(
        description="device_id, mqtt_username, mqtt_password, coap_key, claim_code: shown"
        " this once, never stored in the clear, never retrievable again"
    )


class BrokerReport(BaseModel):
    applied: int = Field(description="devices whose MQTT login the broker has")
    total: int = Field(description="MQTT logins this upload issued")
    state: BrokerState = Field(
        description="applying (in the background), done, or failed (some refused; those"
        " devices need a new upload with rotate)"
    )

    @classmethod
    def of(cls, progress: BrokerProgress | None) -> BrokerReport | None:
        if progress is None:
            return None
        return cls(applied=progress.applied, total=progress.total, state=progress.state)


class UploadDetail(BaseModel):
    upload: UploadPublic
    broker: BrokerReport | None = Field(
        None, description="the MQTT logins' progress on the broker; null: none issued"
    )
    rows: list[RowReport]
    limit: int
    offset: int


class RowsRefused(ErrorBody):
    rows: list[RowReport] | None = Field(
        None, description="rows_invalid only: every bad row, by line or index, with why"
    )


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    device_id: str = Field(pattern=f"^{DEVICE_ID_PATTERN}$")
    claim_code: str = Field(max_length=40, description="as printed on the nameplate")
    site: str = Field(min_length=1, max_length=128)
    region: str = Field("", max_length=128, description="empty: keep the device's region")

    @field_validator("site", "region")
    @classmethod
    def _label(cls, value: str, info: ValidationInfo) -> str:
        return check_label(info.field_name or "label", value)


def _parse(body: bytes, content_type: str) -> tuple[list[FleetRow], Literal["csv", "json"]]:
    if not body:
        raise FleetFileRejected("the body is empty; send the fleet as text/csv or a JSON array")
    if content_type.split(";", 1)[0].strip().lower() == "text/csv":
        return parse_csv(body), "csv"
    return parse_json(parse_strict_json(body)), "json"


def _wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "text/csv" in accept and "application/json" not in accept


_NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/provisioning/devices",
    response_model=ProvisioningReport,
    responses={
        200: {
            "description": "the report, and the credentials file (shown once)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        403: {"model": ErrorBody, "description": "not a manufacturer (or admin), or not yours"},
        413: {"model": ErrorBody, "description": "the file is over the upload size limit"},
        415: {"model": ErrorBody, "description": "the body is neither text/csv nor JSON"},
        422: {
            "model": RowsRefused,
            "description": "all_or_nothing and some rows are invalid (nothing stored), or"
            " the file cannot be read as rows",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def upload_fleet(
    request: Request,
    provisioner: ProvisionerDep,
    manufacturer: ManufacturerDep,
    mode: Annotated[
        Mode, Query(description="any bad row refuses the file, or store the good")
    ] = "all_or_nothing",
    rotate: Annotated[
        bool, Query(description="re-issue credentials of devices already provisioned")
    ] = False,
) -> Any:
    body = await request.body()
    try:
        rows, file_format = await run_in_threadpool(
            _parse, body, request.headers.get("content-type", "")
        )
    except FleetFileRejected as exc:
        return error_response(422, "fleet_file_invalid", f"The file is refused: {exc.reason}.")
    try:
        result = await run_in_threadpool(
            provisioner.provision,
            rows,
            manufacturer=manufacturer,
            file_format=file_format,
            mode=mode,
            rotate=rotate,
        )
    except ValueError as exc:  # the manufacturer code itself is not a label
        return error_response(422, "validation_error", f"Invalid request: {exc}.")
    if result.upload is None:
        bad = [
            RowReport(
                line=p.line,
                device_id=p.device_id,
                status="rejected",
                reason="; ".join(f"{f.field}: {f.reason}" for f in p.problems),
            )
            for p in result.problems
        ]
        where = "lines" if file_format == "csv" else "indexes"
        return error_response(
            422,
            "rows_invalid",
            f"{len(bad)} of {len(rows)} rows are invalid (see rows, by {where}); nothing was"
            " stored. Fix them, or upload with mode=good_rows_only.",
            rows=[r.model_dump() for r in bad],
        )
    upload = result.upload
    filename = f"sealscope-credentials-upload-{upload.id}.csv"
    bundle = credentials_csv(result.credentials)
    location = f"/api/v1/provisioning/uploads/{upload.id}"
    if _wants_csv(request):
        return Response(
            bundle,
            media_type="text/csv; charset=utf-8",
            headers={
                **_NO_STORE,
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Location": location,
            },
        )
    report = ProvisioningReport(
        upload=UploadPublic.of(upload),
        rows=[RowReport.of(r) for r in result.rows],
        credentials_filename=filename,
        credentials_csv=bundle,
    )
    return JSONResponse(report.model_dump(mode="json"), headers={**_NO_STORE, "Location": location})


class UploadsPublic(BaseModel):
    data: list[UploadPublic]
    limit: int
    offset: int


@router.get("/provisioning/uploads", response_model=UploadsPublic)
def list_uploads(
    provisioner: ProvisionerDep,
    principal: PrincipalDep,
    manufacturer: Annotated[
        str | None,
        Query(min_length=1, max_length=128, description="admin only: one manufacturer's"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> UploadsPublic:
    """The caller's fleet uploads, newest first, with their per-status counts (each one's
    rows: ``GET /provisioning/uploads/{id}``)."""
    principal.require("devices:register")
    scope = principal.scope
    if not scope.is_admin:
        manufacturer = scope.manufacturer_code or ""
    found = provisioner.store.list_uploads(manufacturer=manufacturer, limit=limit, offset=offset)
    return UploadsPublic(data=[UploadPublic.of(u) for u in found], limit=limit, offset=offset)


@router.get(
    "/provisioning/uploads/{upload_id}",
    response_model=UploadDetail,
    responses={404: {"model": ErrorBody}},
)
def get_upload(
    upload_id: Annotated[int, Path(ge=1, le=MAX_ID, description="the upload's id")],
    provisioner: ProvisionerDep,
    principal: PrincipalDep,
    status: RowStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 1000,
    offset: Offset = 0,
) -> UploadDetail:
    principal.require("devices:register")
    store = provisioner.store
    upload = store.get_upload(upload_id)
    if not principal.scope.is_admin and upload.manufacturer != principal.scope.manufacturer_code:
        raise NotFound("upload", str(upload_id))  # another manufacturer's: as if missing
    rows = store.upload_rows(upload_id, status=status, limit=limit, offset=offset)
    return UploadDetail(
        upload=UploadPublic.of(upload),
        broker=BrokerReport.of(provisioner.broker_progress(upload_id)),
        rows=[RowReport.of(r) for r in rows],
        limit=limit,
        offset=offset,
    )


@router.post(
    "/devices/claim",
    response_model=DevicePublic,
    responses={
        403: {"model": ErrorBody, "description": "not a technician, or not one of your sites"},
        404: {"model": ErrorBody, "description": "no such device, or the code does not match"},
        429: {"model": ErrorBody, "description": "too many failed claims; see Retry-After"},
    },
)
def claim_device(
    body: ClaimRequest,
    provisioner: ProvisionerDep,
    limiter: ClaimLimiterDep,
    principal: PrincipalDep,
    caller: ClaimerDep,
) -> Any:
    check_claim_site(principal, body.site)
    wait_s = limiter.retry_after_s(caller.rate_key)
    if wait_s is not None:
        response = error_response(
            429, "too_many_requests", f"Too many failed claims; retry in {wait_s} s."
        )
        response.headers["Retry-After"] = str(wait_s)
        return response
    try:
        device = provisioner.claim(
            body.device_id,
            body.claim_code,
            site=body.site,
            region=body.region,
            claimed_by=caller.org,
        )
    except NotFound:
        limiter.failed(caller.rate_key)
        raise
    return DevicePublic.of(principal.scope.present(device))
