"""An alert change: what the outbox carries from the alert store to the subscribers.

One change is one thing that happened to one alert (raised, updated, acknowledged,
resolved, cleared, re-notified) or one fleet-risk group being flagged. Its JSON body is
fixed when it is enqueued, so every attempt of a delivery sends the same bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sealscope.alerts import AlertChange

__all__ = ["CATEGORIES", "KINDS", "ChangeKind", "Notification", "as_notification"]

ChangeKind = Literal["device", "fleet_risk"]
KINDS: Final[tuple[ChangeKind, ...]] = ("device", "fleet_risk")
# NAMUR NE 107, as in sealscope.alerts.Category
CATEGORIES: Final = ("failure", "function_check", "out_of_specification", "maintenance_required")


@dataclass(frozen=True, slots=True)
class Notification:
    """``type`` is dotted, e.g. ``alert.raised``, ``alert.resolved``, ``fleet_risk.flagged``.

    Device alerts name their ``device_id``; fleet-risk changes name the group instead
    (``dimension`` such as ``batch``, and ``group``), because no single device owns them.
    """

    type: str
    kind: ChangeKind
    alert_id: int | None
    cause: str
    category: str
    severity: int  # 1 (info) .. 5 (critical)
    summary: str
    device_id: str | None = None
    dimension: str | None = None
    group: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    changed_at: float = field(default_factory=time.time)  # Unix s

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")
        if self.category not in CATEGORIES:
            raise ValueError(f"category {self.category!r} is not NAMUR NE 107")
        if not 1 <= self.severity <= 5:
            raise ValueError(f"severity {self.severity} is outside 1..5")
        if self.kind == "device" and not self.device_id:
            raise ValueError("a device alert change names its device_id")
        if self.kind == "fleet_risk" and not (self.dimension and self.group):
            raise ValueError("a fleet-risk change names its dimension and group")

    def body(self, delivery_id: str) -> bytes:
        """The payload every channel sends; the delivery id inside lets MQTT and email
        receivers de-duplicate as webhook receivers do with the ``webhook-id`` header."""
        data = {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "cause": self.cause,
            "category": self.category,
            "severity": self.severity,
            "summary": self.summary,
            "device_id": self.device_id,
            "dimension": self.dimension,
            "group": self.group,
            "evidence": self.evidence,
        }
        envelope = {
            "type": self.type,
            "delivery_id": delivery_id,
            "timestamp": self.changed_at,
            "data": data,
        }
        return json.dumps(envelope, allow_nan=False, sort_keys=True, default=_scalar).encode()


def _scalar(value: Any) -> Any:
    # detectors hand over numpy scalars; .item() unwraps them
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"evidence value {value!r} is not JSON serialisable")


def as_notification(change: Notification | AlertChange) -> Notification:
    """What subscribers are told of an alert store change (``AlertStore.on_change``).

    The actor, comments and assignee stay out: a subscriber in scope of the device is not
    thereby entitled to the operator's people and notes. ``version`` lets receivers order
    the changes of one alert, since deliveries may arrive out of order.
    """
    if isinstance(change, Notification):
        return change
    alert, event = change.alert, change.event
    return Notification(
        type=f"alert.{event.action}",
        kind="device",
        alert_id=alert.id,
        cause=alert.cause,
        category=alert.category,
        severity=alert.severity,
        summary=alert.summary,
        device_id=alert.device_id,
        evidence={**alert.evidence, "status": alert.status, "version": alert.version},
        changed_at=event.at,
    )
