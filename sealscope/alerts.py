"""Alerts: one open alert per device and cause, raised and cleared by the detectors.

Port: ``AlertStore``. Adapter: ``SqlAlertStore`` on the state database (SQLite or
PostgreSQL); ``SqliteAlertStore`` opens one on a file. Categories are NAMUR NE 107.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealscope.db import insert_for, open_migrated, read, sqlite_url, tables, write
from sealscope.errors import NotFound

__all__ = [
    "Alert",
    "AlertStatus",
    "AlertStore",
    "Category",
    "SqlAlertStore",
    "SqliteAlertStore",
]

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


_ALERTS = tables.alerts


def _later(current: sa.ColumnElement[float], new: sa.ColumnElement[float]) -> sa.Case[float]:
    # max(current, new) on both dialects (SQLite has max(a, b), PostgreSQL GREATEST)
    return sa.case((new > current, new), else_=current)


def _scalar(value: Any) -> Any:
    # detectors hand over numpy scalars (np.int64 is no int subclass); .item() unwraps them
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"evidence value {value!r} is not JSON serialisable")


def _row_to_alert(row: Mapping[str, Any]) -> Alert:
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
        resolved_at=None if row["resolved_at"] is None else float(row["resolved_at"]),
    )


class SqlAlertStore:
    """``AlertStore`` on the state database (SQLite or PostgreSQL), shared with the
    registry and dead letters. ``engine`` must be migrated (``sealscope.db.migrate``).

    ``raise_alert`` and ``clear`` take device event times; ``set_status`` is a person acting
    now, so it stamps wall-clock time from ``clock``.
    """

    def __init__(
        self, engine: Engine, *, clock: Callable[[], float] = time.time, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._owns_engine = owns_engine
        # One statement, so the check-then-insert race cannot exist. The conflict target
        # repeats the partial unique index's WHERE so the database resolves the conflict
        # against that index. Re-raising keeps opened_at and the status (acknowledged stays
        # acknowledged); updated_at never moves back when a late batch from a sleeping
        # device is judged after a newer one.
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
            },
        ).returning(*_ALERTS.c)

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
                    },
                )
                .mappings()
                .one()
            )
        return _row_to_alert(row)

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        t = float(t)
        with write(self._engine) as conn:
            row = (
                conn.execute(
                    sa.update(_ALERTS)
                    .where(
                        _ALERTS.c.device_id == device_id,
                        _ALERTS.c.cause == cause,
                        _ALERTS.c.status != "resolved",
                    )
                    .values(
                        status="resolved",
                        resolved_at=t,
                        updated_at=_later(_ALERTS.c.updated_at, sa.literal(t, sa.Double)),
                    )
                    .returning(*_ALERTS.c)
                )
                .mappings()
                .first()
            )
        return _row_to_alert(row) if row else None

    def get(self, alert_id: int) -> Alert:
        with read(self._engine) as conn:
            row = self._get(conn, alert_id)
        if row is None:
            raise NotFound("alert", str(alert_id))
        return _row_to_alert(row)

    @staticmethod
    def _get(conn: Connection, alert_id: int) -> Mapping[str, Any] | None:
        query = sa.select(_ALERTS).where(_ALERTS.c.id == alert_id)
        return conn.execute(query).mappings().first()

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

    def set_status(self, alert_id: int, status: AlertStatus) -> Alert:
        """Acknowledge or resolve by hand.

        Idempotent, and never reopens: acknowledging an acknowledged or resolved alert
        returns it unchanged, so the caller sees the status it actually has.
        """
        if status == "open":
            raise ValueError("an alert is opened by raise_alert, not by hand")
        now = self._clock()
        update = sa.update(_ALERTS).where(_ALERTS.c.id == alert_id)
        if status == "acknowledged":
            update = update.where(_ALERTS.c.status == "open").values(
                status="acknowledged", updated_at=now
            )
        else:
            update = update.where(_ALERTS.c.status != "resolved").values(
                status="resolved", resolved_at=now, updated_at=now
            )
        with write(self._engine) as conn:
            row = conn.execute(update.returning(*_ALERTS.c)).mappings().first()
            if row is None:
                row = self._get(conn, alert_id)
        if row is None:
            raise NotFound("alert", str(alert_id))
        return _row_to_alert(row)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()


class SqliteAlertStore(SqlAlertStore):
    """``SqlAlertStore`` on a SQLite file of its own engine, migrated on opening."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(open_migrated(sqlite_url(path)), clock=clock, owns_engine=True)
