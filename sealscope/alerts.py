"""Alerts: one open alert per device and cause, raised and cleared by the detectors.

Port: ``AlertStore``. Adapter: ``SqliteAlertStore``. Categories are NAMUR NE 107.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from sealscope.errors import NotFound
from sealscope.sqlitedb import Database, Migration

__all__ = ["Alert", "AlertStatus", "AlertStore", "Category", "SqliteAlertStore"]

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


_MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS alerts (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id   TEXT NOT NULL,
            cause       TEXT NOT NULL,
            category    TEXT NOT NULL CHECK (category IN
                            ('failure', 'function_check', 'out_of_specification',
                             'maintenance_required')),
            severity    INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 5),
            status      TEXT NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'acknowledged', 'resolved')),
            summary     TEXT NOT NULL,
            evidence    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(evidence)),
            opened_at   REAL NOT NULL,
            updated_at  REAL NOT NULL,
            resolved_at REAL,
            CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
        )""",
        # The invariant itself: at most one unresolved alert per device and cause, whoever
        # writes the table (two ingest workers, a script, a future migration).
        """CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active
            ON alerts (device_id, cause) WHERE status != 'resolved'""",
        "CREATE INDEX IF NOT EXISTS alerts_by_status ON alerts (status, id)",
        "CREATE INDEX IF NOT EXISTS alerts_by_device ON alerts (device_id, id)",
    ),
)

_COLUMNS = (
    "id, device_id, cause, category, severity, status, summary, evidence,"
    " opened_at, updated_at, resolved_at"
)

# One statement, so the check-then-insert race cannot exist. The conflict target repeats the
# partial index's WHERE so SQLite resolves the conflict against that index. Re-raising keeps
# opened_at and the status (acknowledged stays acknowledged); updated_at never moves back
# when a late batch from a sleeping device is judged after a newer one.
_RAISE = f"""
    INSERT INTO alerts
        (device_id, cause, category, severity, status, summary, evidence, opened_at, updated_at)
    VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?)
    ON CONFLICT (device_id, cause) WHERE status != 'resolved' DO UPDATE SET
        category = excluded.category,
        severity = excluded.severity,
        summary = excluded.summary,
        evidence = excluded.evidence,
        updated_at = max(updated_at, excluded.updated_at)
    RETURNING {_COLUMNS}
"""


def _scalar(value: Any) -> Any:
    # detectors hand over numpy scalars (np.int64 is no int subclass); .item() unwraps them
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"evidence value {value!r} is not JSON serialisable")


def _row_to_alert(row: sqlite3.Row) -> Alert:
    return Alert(
        id=row["id"],
        device_id=row["device_id"],
        cause=row["cause"],
        category=row["category"],
        severity=row["severity"],
        status=row["status"],
        summary=row["summary"],
        evidence=json.loads(row["evidence"]),
        opened_at=float(row["opened_at"]),
        updated_at=float(row["updated_at"]),
        resolved_at=None if row["resolved_at"] is None else float(row["resolved_at"]),
    )


class SqliteAlertStore:
    """``AlertStore`` on a SQLite file (may be shared with the registry and dead letters).

    ``raise_alert`` and ``clear`` take device event times; ``set_status`` is a person acting
    now, so it stamps wall-clock time from ``clock``.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(path)
        self._clock = clock
        self._db.migrate("alerts", _MIGRATIONS)

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
        # allow_nan=False: the column must stay valid JSON for every reader
        evidence_json = json.dumps(evidence, allow_nan=False, sort_keys=True, default=_scalar)
        with self._db.write() as conn:
            row = conn.execute(
                _RAISE,
                (device_id, cause, category, severity, summary, evidence_json, float(t), float(t)),
            ).fetchone()
        return _row_to_alert(row)

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        with self._db.write() as conn:
            row = conn.execute(
                f"""UPDATE alerts
                    SET status = 'resolved', resolved_at = ?, updated_at = max(updated_at, ?)
                    WHERE device_id = ? AND cause = ? AND status != 'resolved'
                    RETURNING {_COLUMNS}""",
                (float(t), float(t), device_id, cause),
            ).fetchone()
        return _row_to_alert(row) if row else None

    def get(self, alert_id: int) -> Alert:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
        if row is None:
            raise NotFound("alert", str(alert_id))
        return _row_to_alert(row)

    def list(
        self,
        *,
        status: AlertStatus | None = None,
        device_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]:
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if device_id is not None:
            where.append("device_id = ?")
            args.append(device_id)
        sql = f"SELECT {_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # ids grow with every new alert, so id order is opening order, without clock ties
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._db.read() as conn:
            rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return [_row_to_alert(r) for r in rows]

    def set_status(self, alert_id: int, status: AlertStatus) -> Alert:
        """Acknowledge or resolve by hand.

        Idempotent, and never reopens: acknowledging an acknowledged or resolved alert
        returns it unchanged, so the caller sees the status it actually has.
        """
        if status == "open":
            raise ValueError("an alert is opened by raise_alert, not by hand")
        now = self._clock()
        with self._db.write() as conn:
            if status == "acknowledged":
                row = conn.execute(
                    f"""UPDATE alerts SET status = 'acknowledged', updated_at = ?
                        WHERE id = ? AND status = 'open' RETURNING {_COLUMNS}""",
                    (now, alert_id),
                ).fetchone()
            else:
                row = conn.execute(
                    f"""UPDATE alerts SET status = 'resolved', resolved_at = ?, updated_at = ?
                        WHERE id = ? AND status != 'resolved' RETURNING {_COLUMNS}""",
                    (now, now, alert_id),
                ).fetchone()
            if row is None:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)
                ).fetchone()
        if row is None:
            raise NotFound("alert", str(alert_id))
        return _row_to_alert(row)

    def close(self) -> None:
        self._db.close()
