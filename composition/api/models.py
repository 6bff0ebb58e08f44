"""Request and response bodies, layered per resource: ``DeviceCreate`` in, ``DevicePublic`` out.

Times go out as ISO 8601 UTC; the stores keep Unix seconds.
"""

from __future__ import annotations

import base64
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from sealscope.alerts import Alert, AlertAction, AlertEvent, AlertStatus, Category
from sealscope.deadletters import DeadLetter
from sealscope.labels import LABEL_RULE, check_label
from sealscope.registry import AssetKind, Device, LeakageClass
from sealscope.topics import DEVICE_ID_PATTERN

__all__ = [
    "AlertAcknowledge",
    "AlertAssign",
    "AlertEventPublic",
    "AlertEventsPublic",
    "AlertPublic",
    "AlertResolve",
    "AlertsPublic",
    "DeadLetterPublic",
    "DeadLettersPublic",
    "DeviceCreate",
    "DevicePublic",
    "DevicesPublic",
    "ErrorBody",
    "Health",
    "TelemetryPoint",
    "TelemetryPublic",
]


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found")
    message: str = Field(description="what went wrong, as a sentence")
    detail: list[dict[str, Any]] | None = Field(
        None, description="validation errors only: one entry per offending field"
    )


class Health(BaseModel):
    """``ok`` (HTTP 200), or ``degraded`` (HTTP 503) while a component is down."""

    status: Literal["ok", "degraded"]
    version: str
    store: str
    components: dict[str, str] = Field(
        default_factory=dict,
        description="each supervised component's state, e.g. broker: up|down, "
        "ingest: connected|reconnecting (empty when this process runs none)",
    )


class _DeviceFields(BaseModel):
    device_id: str
    kind: AssetKind
    manufacturer: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=128)
    batch: str = Field("", max_length=128)
    site: str = Field("", max_length=128)
    region: str = Field("", max_length=128)
    dn: int | None = Field(None, gt=0, le=10_000, description="nominal size, mm")
    pn: int | None = Field(None, gt=0, le=10_000, description="pressure class, bar")
    seat_material: str = Field("", max_length=64)
    leakage_class: LeakageClass = Field("", description="ISO 5208 seat leakage rate class")
    firmware: str = Field("", max_length=64)


class DeviceCreate(_DeviceFields):
    __doc__ = f"""A device to register. Text fields are labels: {LABEL_RULE}."""

    # a typo in a field name should fail loudly, not provision a device without it; strict,
    # so `"dn": true` or `"dn": "50"` is refused rather than read as a size
    model_config = ConfigDict(extra="forbid", strict=True)

    # pydantic searches rather than matches, hence the anchors
    device_id: str = Field(pattern=f"^{DEVICE_ID_PATTERN}$", examples=["ACME-DN50-000123"])

    @field_validator(
        "manufacturer", "model", "batch", "site", "region", "seat_material", "firmware"
    )
    @classmethod
    def _label(cls, value: str, info: ValidationInfo) -> str:
        # one spelling per name: a keyboard that sends NFD is stored as NFC
        name = info.field_name or "label"
        return check_label(name, unicodedata.normalize("NFC", value))

    def to_device(self) -> Device:
        return Device(**self.model_dump())


class DevicePublic(_DeviceFields):
    created_at: datetime

    @classmethod
    def of(cls, device: Device) -> DevicePublic:
        fields = {name: getattr(device, name) for name in _DeviceFields.model_fields}
        return cls(created_at=_utc(device.created_at), **fields)


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    limit: int
    offset: int


class TelemetryPoint(BaseModel):
    t: str = Field(description="bucket or sample time, ISO 8601 UTC with milliseconds")
    t_ms: int = Field(description="the same time in Unix milliseconds")
    value: float


class TelemetryPublic(BaseModel):
    device_id: str
    field: str
    every_s: int | None = Field(description="bucket width; null for raw samples")
    points: list[TelemetryPoint]


class AlertPublic(BaseModel):
    id: int
    device_id: str
    cause: str
    category: Category
    severity: int = Field(ge=1, le=5)
    status: AlertStatus
    summary: str
    evidence: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assignee: str | None

    @classmethod
    def of(cls, alert: Alert) -> AlertPublic:
        return cls(
            id=alert.id,
            device_id=alert.device_id,
            cause=alert.cause,
            category=alert.category,
            severity=alert.severity,
            status=alert.status,
            summary=alert.summary,
            evidence=alert.evidence,
            opened_at=_utc(alert.opened_at),
            updated_at=_utc(alert.updated_at),
            resolved_at=None if alert.resolved_at is None else _utc(alert.resolved_at),
            acknowledged_at=(
                None if alert.acknowledged_at is None else _utc(alert.acknowledged_at)
            ),
            acknowledged_by=alert.acknowledged_by,
            assignee=alert.assignee,
        )


class AlertsPublic(BaseModel):
    data: list[AlertPublic]
    limit: int
    offset: int


COMMENT_MAX_CHARS = 2000


def _free_text(value: str) -> str:
    """A comment or note: any printable text, one spelling (NFC), no control characters."""
    value = unicodedata.normalize("NFC", value)
    for i, char in enumerate(value):
        # Cc: NUL, newline, escapes; Cf: invisible bidi overrides and zero-width marks
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise ValueError(f"has the non-printable character U+{ord(char):04X} at position {i}")
    return value


FreeText = Annotated[str, Field(max_length=COMMENT_MAX_CHARS), AfterValidator(_free_text)]


class AlertAcknowledge(BaseModel):
    """Acknowledge an open alert; the comment goes into its audit trail."""

    model_config = ConfigDict(extra="forbid", strict=True)
    comment: FreeText = ""


class AlertResolve(BaseModel):
    """Resolve an alert by hand; the note goes into its audit trail."""

    model_config = ConfigDict(extra="forbid", strict=True)
    note: FreeText = ""


class AlertAssign(BaseModel):
    __doc__ = f"""Assign an unresolved alert to a technician (a name: {LABEL_RULE})."""

    model_config = ConfigDict(extra="forbid", strict=True)
    assignee: str = Field(min_length=1, max_length=128, examples=["li.wei"])

    @field_validator("assignee")
    @classmethod
    def _label(cls, value: str) -> str:
        return check_label("assignee", unicodedata.normalize("NFC", value), required=True)


class AlertEventPublic(BaseModel):
    id: int
    alert_id: int
    at: datetime
    actor: str = Field(description='user or key name; "detector" or "system" for the service')
    action: AlertAction
    comment: str = Field(description="the acknowledge comment or resolve note; empty if none")
    from_status: AlertStatus | None = Field(description="null when the alert was raised")
    to_status: AlertStatus
    assignee: str | None = Field(description="assigned to whom (action assigned only)")

    @classmethod
    def of(cls, event: AlertEvent) -> AlertEventPublic:
        return cls(
            id=event.id,
            alert_id=event.alert_id,
            at=_utc(event.at),
            actor=event.actor,
            action=event.action,
            comment=event.comment,
            from_status=event.from_status,
            to_status=event.to_status,
            assignee=event.assignee,
        )


class AlertEventsPublic(BaseModel):
    """An alert's audit trail, oldest first."""

    data: list[AlertEventPublic]
    limit: int
    offset: int


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    code: str
    reason: str
    payload: str = Field(description="the payload as text, or base64 when it is not UTF-8")
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterPublic:
        try:
            payload = letter.payload.decode("utf-8")
            encoding: Literal["utf-8", "base64"] = "utf-8"
        except UnicodeDecodeError:
            payload = base64.b64encode(letter.payload).decode("ascii")
            encoding = "base64"
        return cls(
            id=letter.id,
            received_at=_utc(letter.received_at),
            topic=letter.topic,
            device_id=letter.device_id,
            code=letter.code,
            reason=letter.reason,
            payload=payload,
            payload_encoding=encoding,
            payload_bytes=len(letter.payload),
        )


class DeadLettersPublic(BaseModel):
    data: list[DeadLetterPublic]
    total: int = Field(description="every dead letter kept, whatever the filter")
    limit: int
    offset: int
