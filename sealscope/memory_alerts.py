"""In-memory AlertStore for unit tests: the sealscope.alerts.AlertStore protocol, in a dict."""

from __future__ import annotations

import dataclasses
from typing import Any

from sealscope.alerts import Alert, AlertStatus, Category
from sealscope.errors import NotFound

__all__ = ["MemoryAlertStore"]


class MemoryAlertStore:
    def __init__(self) -> None:
        self.alerts: dict[int, Alert] = {}
        self.calls: list[tuple[str, str, str]] = []  # (method, device_id, cause)
        self._next_id = 1

    def _active(self, device_id: str, cause: str) -> Alert | None:
        for alert in self.alerts.values():
            if (
                alert.device_id == device_id
                and alert.cause == cause
                and alert.status in ("open", "acknowledged")
            ):
                return alert
        return None

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
        self.calls.append(("raise_alert", device_id, cause))
        current = self._active(device_id, cause)
        if current is None:
            alert = Alert(
                id=self._next_id,
                device_id=device_id,
                cause=cause,
                category=category,
                severity=severity,
                status="open",
                summary=summary,
                evidence=dict(evidence),
                opened_at=t,
                updated_at=t,
            )
            self._next_id += 1
        else:
            # An acknowledged alert stays acknowledged; only its content moves on.
            alert = dataclasses.replace(
                current,
                category=category,
                severity=severity,
                summary=summary,
                evidence=dict(evidence),
                updated_at=t,
            )
        self.alerts[alert.id] = alert
        return alert

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        self.calls.append(("clear", device_id, cause))
        current = self._active(device_id, cause)
        if current is None:
            return None
        alert = dataclasses.replace(current, status="resolved", updated_at=t, resolved_at=t)
        self.alerts[alert.id] = alert
        return alert

    def get(self, alert_id: int) -> Alert:
        try:
            return self.alerts[alert_id]
        except KeyError:
            raise NotFound("alert", str(alert_id)) from None

    def list(
        self,
        *,
        status: AlertStatus | None = None,
        device_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]:
        rows = [
            a
            for _, a in sorted(self.alerts.items())
            if (status is None or a.status == status)
            and (device_id is None or a.device_id == device_id)
        ]
        return rows[offset : offset + limit]

    def set_status(self, alert_id: int, status: AlertStatus) -> Alert:
        alert = self.get(alert_id)
        resolved_at = alert.updated_at if status == "resolved" else None
        alert = dataclasses.replace(alert, status=status, resolved_at=resolved_at)
        self.alerts[alert_id] = alert
        return alert

    def close(self) -> None:
        return None
