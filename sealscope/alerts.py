"""Alerts: one open alert per device and cause, raised and cleared by the detectors,
acknowledged, assigned and resolved by people, re-notified while nobody acknowledges.

Port: ``AlertStore``. Adapter: ``SqlAlertStore`` on the state database (SQLite or
PostgreSQL); ``SqliteAlertStore`` opens one on a file. Categories are NAMUR NE 107.

Lifecycle::

    raised -> open --acknowledge--> acknowledged --resolve / clear--> resolved
              open --resolve / clear--> resolved
    (assign: open or acknowledged, status unchanged; renotify: open only)

A resolved alert is never reopened: the next raise for the device and cause opens a new
alert. Every change appends one ``AlertEvent`` (the audit trail) and calls every listener
registered with ``on_change`` inside the same transaction, so what a listener writes on
the connection (the delivery outbox) commits or rolls back with the change; a listener
that raises undoes the change.
"""

from __future__ import annotations

import builtins  # `list` is a method name in the stores
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealscope.db import alert_events, insert_for, open_migrated, read, sqlite_url, tables, write
from sealscope.errors import NotFound

__all__ = [
    "DETECTOR",
    "SYSTEM",
    "Alert",
    "AlertAction",
    "AlertChange",
    "AlertEvent",
    "AlertStatus",
    "AlertStore",
    "Category",
    "ChangeListener",
    "SqlAlertStore",
    "SqliteAlertStore",
    "renotify_due",
]

Category = Literal["failure", "function_check", "out_of_specification", "maintenance_required"]
AlertStatus = Literal["open", "acknowledged", "resolved"]
AlertAction = Literal[
    "raised", "updated", "cleared", "acknowledged", "assigned", "resolved", "renotify"
]

DETECTOR = "detector"  # the actor of raise_alert and clear
SYSTEM = "system"  # the actor of re-notifications
DEFAULT_RENOTIFY_AFTER_S = 4 * 3600.0


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
    acknowledged_at: float | None = None  # wall clock
    acknowledged_by: str | None = None
    assignee: str | None = None
    version: int = 1  # +1 on every change: (id, version) names one state of the alert


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of an alert's audit trail."""

    id: int
    alert_id: int
    at: float  # wall clock, Unix s
    actor: str  # user or key name, DETECTOR or SYSTEM
    action: AlertAction
    comment: str  # the acknowledge comment or resolve note; "" when none
    from_status: AlertStatus | None  # None when raised
    to_status: AlertStatus
    assignee: str | None = None  # "assigned" only


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What listeners get: the alert after the change, and the event that records it."""

    alert: Alert
    event: AlertEvent

    @property
    def action(self) -> AlertAction:
        return self.event.action


# conn is the transaction of the change (None from the in-memory store, which has none)
ChangeListener = Callable[[Connection | None, AlertChange], object]  # return value ignored


class AlertStore(Protocol):
    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener`` inside the transaction of every later change."""
        ...

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
        """Resolve the unresolved alert for (device, cause), if any (the detector's act)."""
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

    def acknowledge(self, alert_id: int, *, actor: str, comment: str = "") -> Alert:
        """Open -> acknowledged. Otherwise the alert unchanged (and no event); NotFound."""
        ...

    def assign(self, alert_id: int, *, actor: str, assignee: str) -> Alert:
        """Set the assignee of an unresolved alert; unchanged when resolved or the same."""
        ...

    def resolve(self, alert_id: int, *, actor: str, note: str = "") -> Alert:
        """Unresolved -> resolved. A resolved alert is returned unchanged; NotFound."""
        ...

    def events(
        self, alert_id: int, *, limit: int = 1000, offset: int = 0
    ) -> builtins.list[AlertEvent]:
        """The alert's audit trail, oldest first; NotFound."""
        ...

    def due_renotifications(self, now: float) -> builtins.list[Alert]:
        """Open alerts whose last announcement is ``renotify_after_s`` or more before now."""
        ...

    def changes_since(
        self, after_id: int, *, limit: int = 500, ids: Sequence[int] = ()
    ) -> builtins.list[AlertChange]:
        """The change feed: every event with id > ``after_id`` (plus the events ``ids``
        names), oldest first, each with its alert as it is now. Other processes' changes
        show here too, so a reader polls it instead of listening with ``on_change``."""
        ...

    def last_change_id(self) -> int:
        """The id of the newest event (0 when none): where a reader starting now begins."""
        ...

    def record_renotify(self, alert_id: int, now: float) -> Alert | None:
        """Record one re-notification if still due at ``now``; None if it is not."""
        ...

    def close(self) -> None: ...


def renotify_due(alerts: AlertStore, now: float) -> int:
    """One sweep of the periodic re-notify task: how many alerts were re-notified."""
    done = 0
    for alert in alerts.due_renotifications(now):
        # another process sweeping at once records it first: then it is no longer due
        if alerts.record_renotify(alert.id, now) is not None:
            done += 1
    return done


_ALERTS = tables.alerts
_EVENTS = alert_events.alert_events


def _later(current: sa.ColumnElement[float], new: sa.ColumnElement[float]) -> sa.Case[float]:
    # max(current, new) on both dialects (SQLite has max(a, b), PostgreSQL GREATEST)
    return sa.case((new > current, new), else_=current)


def _scalar(value: Any) -> Any:
    # detectors hand over numpy scalars (np.int64 is no int subclass); .item() unwraps them
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"evidence value {value!r} is not JSON serialisable")


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _row_to_alert(row: Mapping[Any, Any]) -> Alert:
    return Alert(
        id=row["id"],
        device_id=row["device_id"],
        cause=row["cause"],
        category=row["category"],
        severity=row["severity"],
        status=row["status"],
        summary=row["summary"],
        evidence=row["evidence"],
        opened_at=float(row["opened_at"]),
        updated_at=float(row["updated_at"]),
        resolved_at=_optional(row["resolved_at"]),
        acknowledged_at=_optional(row["acknowledged_at"]),
        acknowledged_by=row["acknowledged_by"],
        assignee=row["assignee"],
        version=row["version"],
    )


def _row_to_event(row: Mapping[Any, Any]) -> AlertEvent:
    return AlertEvent(
        id=row["id"],
        alert_id=row["alert_id"],
        at=float(row["at"]),
        actor=row["actor"],
        action=row["action"],
        comment=row["comment"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        assignee=row["assignee"],
    )


class SqlAlertStore:
    """``AlertStore`` on the state database (SQLite or PostgreSQL), shared with the
    registry and dead letters. ``engine`` must be migrated (``sealscope.db.migrate``).

    ``raise_alert`` and ``clear`` take device event times for the alert; everything a
    person does, and every event's ``at``, is stamped with wall-clock time from ``clock``.
    ``renotify_after_s`` = 0 turns re-notification off.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        renotify_after_s: float = DEFAULT_RENOTIFY_AFTER_S,
        owns_engine: bool = False,
    ) -> None:
        if renotify_after_s < 0:
            raise ValueError(f"renotify_after_s={renotify_after_s}: must be >= 0")
        self._engine = engine
        self._clock = clock
        self._renotify_after_s = float(renotify_after_s)
        self._owns_engine = owns_engine
        self._listeners: list[ChangeListener] = []
        # One statement, so the check-then-insert race cannot exist. The conflict target
        # repeats the partial unique index's WHERE so the database resolves the conflict
        # against that index. Re-raising keeps opened_at and the status (acknowledged stays
        # acknowledged); updated_at never moves back when a late batch from a sleeping
        # device is judged after a newer one. version tells an insert (1) from an update.
        insert = insert_for(engine)(_ALERTS)
        self._raise = insert.on_conflict_do_update(
            index_elements=[_ALERTS.c.device_id, _ALERTS.c.cause],
            # literal, not a bound parameter: PostgreSQL must match it to the index's
            # predicate even in a prepared statement (psycopg prepares repeated ones)
            index_where=sa.text("status != 'resolved'"),
            set_={
                "category": insert.excluded.category,
                "severity": insert.excluded.severity,
                "summary": insert.excluded.summary,
                "evidence": insert.excluded.evidence,
                "updated_at": _later(_ALERTS.c.updated_at, insert.excluded.updated_at),
                "version": _ALERTS.c.version + 1,
            },
        ).returning(*_ALERTS.c)

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _record(
        self,
        conn: Connection,
        row: Mapping[Any, Any],
        *,
        action: AlertAction,
        actor: str,
        from_status: AlertStatus | None,
        comment: str = "",
        assignee: str | None = None,
        at: float | None = None,
    ) -> Alert:
        """Append the event of a change just written on ``conn``, then tell the listeners."""
        event = (
            conn.execute(
                sa.insert(_EVENTS)
                .values(
                    alert_id=row["id"],
                    at=self._clock() if at is None else at,
                    actor=actor,
                    action=action,
                    comment=comment,
                    from_status=from_status,
                    to_status=row["status"],
                    assignee=assignee,
                )
                .returning(*_EVENTS.c)
            )
            .mappings()
            .one()
        )
        change = AlertChange(_row_to_alert(row), _row_to_event(event))
        for listener in self._listeners:
            listener(conn, change)
        return change.alert

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
        # through JSON and back: numpy scalars unwrapped, and allow_nan=False because the
        # column must stay valid JSON for every reader (PostgreSQL's jsonb refuses NaN)
        plain = json.loads(json.dumps(evidence, allow_nan=False, default=_scalar))
        with write(self._engine) as conn:
            row = (
                conn.execute(
                    self._raise,
                    {
                        "device_id": device_id,
                        "cause": cause,
                        "category": category,
                        "severity": severity,
                        "status": "open",
                        "summary": summary,
                        "evidence": plain,
                        "opened_at": float(t),
                        "updated_at": float(t),
                        "notified_at": self._clock(),
                        "version": 1,
                    },
                )
                .mappings()
                .one()
            )
            is_new = row["version"] == 1
            return self._record(
                conn,
                row,
                action="raised" if is_new else "updated",
                actor=DETECTOR,
                from_status=None if is_new else row["status"],
            )

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        t = float(t)
        with write(self._engine) as conn:
            current = (
                conn.execute(
                    sa.select(_ALERTS.c.id, _ALERTS.c.status)
                    .where(
                        _ALERTS.c.device_id == device_id,
                        _ALERTS.c.cause == cause,
                        _ALERTS.c.status != "resolved",
                    )
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if current is None:
                return None
            row = self._update(
                conn,
                current["id"],
                status="resolved",
                resolved_at=t,
                updated_at=_later(_ALERTS.c.updated_at, sa.literal(t, sa.Double)),
            )
            return self._record(
                conn, row, action="cleared", actor=DETECTOR, from_status=current["status"]
            )

    @staticmethod
    def _update(conn: Connection, alert_id: int, **values: Any) -> Mapping[Any, Any]:
        update = (
            sa.update(_ALERTS)
            .where(_ALERTS.c.id == alert_id)
            .values(version=_ALERTS.c.version + 1, **values)
            .returning(*_ALERTS.c)
        )
        return conn.execute(update).mappings().one()

    @staticmethod
    def _locked(conn: Connection, alert_id: int) -> Mapping[Any, Any]:
        # FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock
        query = sa.select(_ALERTS).where(_ALERTS.c.id == alert_id).with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound("alert", str(alert_id))
        return row

    def get(self, alert_id: int) -> Alert:
        with read(self._engine) as conn:
            row = conn.execute(sa.select(_ALERTS).where(_ALERTS.c.id == alert_id)).mappings()
            found = row.first()
        if found is None:
            raise NotFound("alert", str(alert_id))
        return _row_to_alert(found)

    def list(
        self,
        *,
        status: AlertStatus | None = None,
        device_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]:
        query = sa.select(_ALERTS)
        if status is not None:
            query = query.where(_ALERTS.c.status == status)
        if device_id is not None:
            if "\x00" in device_id:  # PostgreSQL text cannot hold NUL: no alert has it
                return []
            query = query.where(_ALERTS.c.device_id == device_id)
        # ids grow with every new alert, so id order is opening order, without clock ties
        query = query.order_by(_ALERTS.c.id.desc()).limit(limit).offset(offset)
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [_row_to_alert(r) for r in rows]

    def acknowledge(self, alert_id: int, *, actor: str, comment: str = "") -> Alert:
        with write(self._engine) as conn:
            current = self._locked(conn, alert_id)
            if current["status"] != "open":  # idempotent, and never reopens
                return _row_to_alert(current)
            now = self._clock()
            row = self._update(
                conn,
                alert_id,
                status="acknowledged",
                acknowledged_at=now,
                acknowledged_by=actor,
                updated_at=now,
            )
            return self._record(
                conn, row, action="acknowledged", actor=actor, from_status="open", comment=comment
            )

    def assign(self, alert_id: int, *, actor: str, assignee: str) -> Alert:
        with write(self._engine) as conn:
            current = self._locked(conn, alert_id)
            if current["status"] == "resolved" or current["assignee"] == assignee:
                return _row_to_alert(current)
            row = self._update(conn, alert_id, assignee=assignee, updated_at=self._clock())
            return self._record(
                conn,
                row,
                action="assigned",
                actor=actor,
                from_status=current["status"],
                assignee=assignee,
            )

    def resolve(self, alert_id: int, *, actor: str, note: str = "") -> Alert:
        with write(self._engine) as conn:
            current = self._locked(conn, alert_id)
            if current["status"] == "resolved":
                return _row_to_alert(current)
            now = self._clock()
            row = self._update(conn, alert_id, status="resolved", resolved_at=now, updated_at=now)
            return self._record(
                conn,
                row,
                action="resolved",
                actor=actor,
                from_status=current["status"],
                comment=note,
            )

    def events(
        self, alert_id: int, *, limit: int = 1000, offset: int = 0
    ) -> builtins.list[AlertEvent]:
        query = (
            sa.select(_EVENTS)
            .where(_EVENTS.c.alert_id == alert_id)
            .order_by(_EVENTS.c.id)
            .limit(limit)
            .offset(offset)
        )
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
            if not rows:
                exists = conn.execute(sa.select(_ALERTS.c.id).where(_ALERTS.c.id == alert_id))
                if exists.first() is None:
                    raise NotFound("alert", str(alert_id))
        return [_row_to_event(r) for r in rows]

    def changes_since(
        self, after_id: int, *, limit: int = 500, ids: Sequence[int] = ()
    ) -> builtins.list[AlertChange]:
        picked = _EVENTS.c.id > after_id
        if ids:
            picked = sa.or_(picked, _EVENTS.c.id.in_(list(ids)))
        query = (
            sa.select(_EVENTS, *[c.label(f"a_{c.name}") for c in _ALERTS.c])
            .join(_ALERTS, _ALERTS.c.id == _EVENTS.c.alert_id)
            .where(picked)
            .order_by(_EVENTS.c.id)
            .limit(limit)
        )
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AlertChange(
                _row_to_alert({c.name: r[f"a_{c.name}"] for c in _ALERTS.c}),
                _row_to_event(r),
            )
            for r in rows
        ]

    def last_change_id(self) -> int:
        with read(self._engine) as conn:
            newest = conn.execute(sa.select(sa.func.max(_EVENTS.c.id))).scalar()
        return int(newest or 0)

    def _due(self, now: float) -> sa.ColumnElement[bool]:
        return sa.and_(
            _ALERTS.c.status == "open",
            _ALERTS.c.notified_at <= float(now) - self._renotify_after_s,
        )

    def due_renotifications(self, now: float) -> builtins.list[Alert]:
        if not self._renotify_after_s:
            return []
        query = sa.select(_ALERTS).where(self._due(now)).order_by(_ALERTS.c.id)
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [_row_to_alert(r) for r in rows]

    def record_renotify(self, alert_id: int, now: float) -> Alert | None:
        if not self._renotify_after_s:
            return None
        with write(self._engine) as conn:
            # the due condition in the UPDATE itself: of two sweeps at once, one records it
            row = (
                conn.execute(
                    sa.update(_ALERTS)
                    .where(_ALERTS.c.id == alert_id, self._due(now))
                    .values(notified_at=float(now))
                    .returning(*_ALERTS.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            return self._record(
                conn, row, action="renotify", actor=SYSTEM, from_status="open", at=float(now)
            )

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()


class SqliteAlertStore(SqlAlertStore):
    """``SqlAlertStore`` on a SQLite file of its own engine, migrated on opening."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        renotify_after_s: float = DEFAULT_RENOTIFY_AFTER_S,
    ) -> None:
        super().__init__(
            open_migrated(sqlite_url(path)),
            clock=clock,
            renotify_after_s=renotify_after_s,
            owns_engine=True,
        )
