"""Alerts: one open alert per device and cause, raised and cleared by the detectors.

Port: ``AlertStore``. Adapter: ``SqliteAlertStore``. Categories are NAMUR NE 107.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Alert", "AlertStatus", "AlertStore", "Category"]

Category = Literal["failure", "function_check", "out_of_specification", "maintenance_required"]
AlertStatus = Literal["open", "acknowledged", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    device_id: str
    cause: str  # e.g. "seat_leak"
    category: Category
    severity: int  # 1 (info) .. 5 (critical)
    status: AlertStatus
    summary: str  # one sentence a technician can act on
    evidence: dict[str, Any] = field(default_factory=dict)  # signal, baseline, value, ratio, since
    opened_at: float = 0.0  # device event time, Unix s
    updated_at: float = 0.0
    resolved_at: float | None = None


class AlertStore(Protocol):
    def raise_alert(
        self,
        *,
        device_id: str,
        cause: str,
        category: Category,
        severity: int,
        summary: str,
        evidence: dict[str, Any],
        t: float,
    ) -> Alert:
        """Open an alert for (device, cause), or update the one already open/acknowledged."""
        ...

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        """Resolve the open alert for (device, cause), if any."""
        ...

    def get(self, alert_id: int) -> Alert:
        """Raises NotFound."""
        ...

    def list(
        self,
        *,
        status: AlertStatus | None = None,
        device_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]: ...

    def set_status(self, alert_id: int, status: AlertStatus) -> Alert:
        """Acknowledge or resolve by hand; raises NotFound."""
        ...

    def close(self) -> None: ...
