"""In-memory AlertStore for unit tests: the sealscope.alerts.AlertStore protocol, in dicts.

Listeners get ``None`` for the connection; a listener that raises undoes the change here
too, because the change is kept only after every listener returned.
"""

from __future__ import annotations

import builtins  # `list` is a method name in the stores
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from sealscope.alerts import (
    DEFAULT_RENOTIFY_AFTER_S,
    DETECTOR,
    SYSTEM,
    Alert,
    AlertAction,
    AlertChange,
    AlertEvent,
    AlertStatus,
    Category,
    ChangeListener,
)
from sealscope.errors import NotFound

__all__ = ["MemoryAlertStore"]


class MemoryAlertStore:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        renotify_after_s: float = DEFAULT_RENOTIFY_AFTER_S,
    ) -> None:
        if renotify_after_s < 0:
            raise ValueError(f"renotify_after_s={renotify_after_s}: must be >= 0")
        self.alerts: dict[int, Alert] = {}
        self.trail: list[AlertEvent] = []
        self.calls: list[tuple[str, str, str]] = []  # (method, device_id, cause)
        self._clock = clock
        self._renotify_after_s = float(renotify_after_s)
        self._notified_at: dict[int, float] = {}
        self._listeners: list[ChangeListener] = []
        self._next_id = 1

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _commit(
        self,
        alert: Alert,
        *,
        action: AlertAction,
        actor: str,
        from_status: AlertStatus | None,
        comment: str = "",
        assignee: str | None = None,
        at: float | None = None,
    ) -> Alert:
        event = AlertEvent(
            id=len(self.trail) + 1,
            alert_id=alert.id,
            at=self._clock() if at is None else at,
            actor=actor,
            action=action,
            comment=comment,
            from_status=from_status,
            to_status=alert.status,
            assignee=assignee,
        )
        change = AlertChange(alert, event)
        for listener in self._listeners:
            listener(None, change)
        self.alerts[alert.id] = alert
        self.trail.append(event)
        return alert

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
        if not 1 <= severity <= 5:
            raise ValueError(f"severity {severity} is outside 1..5")
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
            alert = self._commit(alert, action="raised", actor=DETECTOR, from_status=None)
            self._next_id += 1
            self._notified_at[alert.id] = self._clock()
            return alert
        # An acknowledged alert stays acknowledged; only its content moves on.
        alert = dataclasses.replace(
            current,
            category=category,
            severity=severity,
            summary=summary,
            evidence=dict(evidence),
            updated_at=max(current.updated_at, t),
            version=current.version + 1,
        )
        return self._commit(alert, action="updated", actor=DETECTOR, from_status=current.status)

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        self.calls.append(("clear", device_id, cause))
        current = self._active(device_id, cause)
        if current is None:
            return None
        alert = dataclasses.replace(
            current,
            status="resolved",
            updated_at=max(current.updated_at, t),
            resolved_at=t,
            version=current.version + 1,
        )
        return self._commit(alert, action="cleared", actor=DETECTOR, from_status=current.status)

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
            for _, a in sorted(self.alerts.items(), reverse=True)  # newest first, as in SQL
            if (status is None or a.status == status)
            and (device_id is None or a.device_id == device_id)
        ]
        return rows[offset : offset + limit]

    def acknowledge(self, alert_id: int, *, actor: str, comment: str = "") -> Alert:
        current = self.get(alert_id)
        if current.status != "open":
            return current
        now = self._clock()
        alert = dataclasses.replace(
            current,
            status="acknowledged",
            acknowledged_at=now,
            acknowledged_by=actor,
            updated_at=now,
            version=current.version + 1,
        )
        return self._commit(
            alert, action="acknowledged", actor=actor, from_status="open", comment=comment
        )

    def assign(self, alert_id: int, *, actor: str, assignee: str) -> Alert:
        current = self.get(alert_id)
        if current.status == "resolved" or current.assignee == assignee:
            return current
        alert = dataclasses.replace(
            current, assignee=assignee, updated_at=self._clock(), version=current.version + 1
        )
        return self._commit(
            alert, action="assigned", actor=actor, from_status=current.status, assignee=assignee
        )

    def resolve(self, alert_id: int, *, actor: str, note: str = "") -> Alert:
        current = self.get(alert_id)
        if current.status == "resolved":
            return current
        now = self._clock()
        alert = dataclasses.replace(
            current, status="resolved", resolved_at=now, updated_at=now, version=current.version + 1
        )
        return self._commit(
            alert, action="resolved", actor=actor, from_status=current.status, comment=note
        )

    def events(
        self, alert_id: int, *, limit: int = 1000, offset: int = 0
    ) -> builtins.list[AlertEvent]:
        self.get(alert_id)
        return [e for e in self.trail if e.alert_id == alert_id][offset : offset + limit]

    def _is_due(self, alert: Alert, now: float) -> bool:
        return (
            self._renotify_after_s > 0
            and alert.status == "open"
            and self._notified_at[alert.id] <= now - self._renotify_after_s
        )

    def due_renotifications(self, now: float) -> builtins.list[Alert]:
        return [a for _, a in sorted(self.alerts.items()) if self._is_due(a, now)]

    def record_renotify(self, alert_id: int, now: float) -> Alert | None:
        alert = self.alerts.get(alert_id)
        if alert is None or not self._is_due(alert, now):
            return None
        alert = self._commit(alert, action="renotify", actor=SYSTEM, from_status="open", at=now)
        self._notified_at[alert_id] = now
        return alert

    def changes_since(
        self, after_id: int, *, limit: int = 500, ids: Sequence[int] = ()
    ) -> builtins.list[AlertChange]:
        wanted = set(ids)
        picked = [e for e in self.trail if e.id > after_id or e.id in wanted][:limit]
        return [AlertChange(self.alerts[e.alert_id], e) for e in picked]

    def last_change_id(self) -> int:
        return len(self.trail)

    def close(self) -> None:
        return None
