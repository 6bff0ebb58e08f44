"""SQLite telemetry store: the embedded default, no server to install.

One wide row per (device_id, event time), one column per wire field; a repeated write of
the same point merges its fields (as InfluxDB does), so replays are idempotent. A small
``device_latest`` table keeps one row per device: its newest point time and newest vital values,
updated in the same transaction, so a fleet view reads 10,000 devices in one query. Work runs on
one dedicated thread that owns the connection, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sealscope.errors import PointsRejected, StoreUnavailable
from sealscope.storage import VITAL_FIELDS, Latest, Point, TelemetryQuery
from sealscope.wire import SAMPLE_FIELDS

__all__ = ["SqliteTelemetryStore"]

T = TypeVar("T")
_COLUMN = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _check_values(points: Sequence[Point]) -> None:
    """Only finite numbers: SQLite would keep inf (which JSON cannot carry) and turn nan into
    a missing reading."""
    for p in points:
        for name, value in p.fields.items():
            ok = isinstance(value, (int, float)) and value - value == 0
            if not ok:
                raise PointsRejected(
                    f"field {name!r} of device {p.series.device_id!r} is {value!r},"
                    " not a finite number"
                )


class SqliteTelemetryStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-telemetry")
        self._conn: sqlite3.Connection | None = None
        self._columns: list[str] = []
        self._upsert_sql = ""

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a write that returned is on disk, because the spool is trimmed after it
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS series ("
                " device_id TEXT PRIMARY KEY, measurement TEXT NOT NULL, tags TEXT NOT NULL)"
            )
            cols = ", ".join(f"{f} REAL" for f in SAMPLE_FIELDS)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS telemetry ("
                f" device_id TEXT NOT NULL, t_ns INTEGER NOT NULL, {cols},"
                " PRIMARY KEY (device_id, t_ns)) WITHOUT ROWID"
            )
            fresh = not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'device_latest'"
            ).fetchone()
            vitals = ", ".join(f"{f}_t INTEGER, {f} REAL" for f in VITAL_FIELDS)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS device_latest ("
                f" device_id TEXT PRIMARY KEY, t_ns INTEGER NOT NULL, {vitals}) WITHOUT ROWID"
            )
            self._conn = conn
            self._load_columns()
            if fresh:
                self._backfill_latest()
        return self._conn

    _latest_sql = (
        "INSERT INTO device_latest (device_id, t_ns, "
        + ", ".join(f"{f}_t, {f}" for f in VITAL_FIELDS)
        + ") VALUES (?, ?, "
        + ", ".join("?, ?" for _ in VITAL_FIELDS)
        + ") ON CONFLICT (device_id) DO UPDATE SET t_ns = max(t_ns, excluded.t_ns), "
        + ", ".join(
            f"{f} = CASE WHEN excluded.{f}_t > coalesce({f}_t, -1) THEN excluded.{f} ELSE {f} END,"
            f" {f}_t = max(coalesce({f}_t, -1), excluded.{f}_t)"
            for f in VITAL_FIELDS
        )
    )

    def _load_columns(self) -> None:
        assert self._conn is not None
        info = self._conn.execute("PRAGMA table_info(telemetry)").fetchall()
        self._columns = [row[1] for row in info if row[1] not in ("device_id", "t_ns")]
        names = ", ".join(self._columns)
        marks = ", ".join("?" for _ in self._columns)
        merge = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in self._columns)
        self._upsert_sql = (
            f"INSERT INTO telemetry (device_id, t_ns, {names}) VALUES (?, ?, {marks})"
            f" ON CONFLICT (device_id, t_ns) DO UPDATE SET {merge}"
        )

    def _backfill_latest(self) -> None:
        """Once, for a file written before ``device_latest`` existed."""
        conn = self._connection()
        conn.execute(
            "INSERT OR REPLACE INTO device_latest (device_id, t_ns)"
            " SELECT device_id, max(t_ns) FROM telemetry GROUP BY device_id"
        )
        for f in VITAL_FIELDS:
            if f in self._columns:
                conn.execute(
                    f"UPDATE device_latest SET ({f}_t, {f}) = (SELECT t_ns, {f} FROM telemetry"
                    f" WHERE telemetry.device_id = device_latest.device_id AND {f} IS NOT NULL"
                    " ORDER BY t_ns DESC LIMIT 1)"
                )

    def _add_columns(self, names: set[str]) -> None:
        conn = self._connection()
        for name in sorted(names):
            if not _COLUMN.fullmatch(name):
                raise PointsRejected(f"field name {name!r} is not a valid column name")
            conn.execute(f"ALTER TABLE telemetry ADD COLUMN {name} REAL")
        self._load_columns()

    def _write(self, points: Sequence[Point]) -> None:
        _check_values(points)
        conn = self._connection()
        unknown = {f for p in points for f in p.fields} - set(self._columns)
        if unknown:
            self._add_columns(unknown)
        columns = self._columns
        rows = [(p.series.device_id, p.t_ns, *[p.fields.get(c) for c in columns]) for p in points]
        series = {p.series.device_id: p.series for p in points}
        # per device: newest point time, and (time, value) of each vital, in VITAL_FIELDS order
        newest: dict[str, list[Any]] = {}
        blank = [-1, None] * len(VITAL_FIELDS)
        for p in points:
            row = newest.get(p.series.device_id)
            if row is None:
                row = newest[p.series.device_id] = [p.t_ns, *blank]
            elif p.t_ns > row[0]:
                row[0] = p.t_ns
            for i, f in enumerate(VITAL_FIELDS):
                if f in p.fields and p.t_ns > row[1 + 2 * i]:
                    row[1 + 2 * i] = p.t_ns
                    row[2 + 2 * i] = p.fields[f]
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO series (device_id, measurement, tags) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " measurement = excluded.measurement, tags = excluded.tags",
                [
                    (s.device_id, s.measurement, json.dumps(dict(s.tags), sort_keys=True))
                    for s in series.values()
                ],
            )
            conn.executemany(self._upsert_sql, rows)
            # one row a device; a replay of older points never moves anything back
            conn.executemany(self._latest_sql, [(d, *row) for d, row in newest.items()])
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # locked, disk full, I/O error: all worth retrying from the spool later
            raise StoreUnavailable(f"sqlite write failed: {exc}") from exc

    async def write(self, points: Sequence[Point]) -> None:
        if points:
            await self._run(self._write, points)

    def _query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        conn = self._connection()
        if q.field not in self._columns:
            return []
        if q.every_s:
            every_ns = q.every_s * 1_000_000_000
            sql = (
                f"SELECT (t_ns / ?) * ? AS bucket, avg({q.field}) FROM telemetry"
                f" WHERE device_id = ? AND t_ns >= ? AND t_ns < ? AND {q.field} IS NOT NULL"
                " GROUP BY bucket ORDER BY bucket LIMIT ?"
            )
            args: tuple[Any, ...] = (every_ns, every_ns, q.device_id, q.start_ns, q.stop_ns)
        else:
            sql = (
                f"SELECT t_ns, {q.field} FROM telemetry"
                f" WHERE device_id = ? AND t_ns >= ? AND t_ns < ? AND {q.field} IS NOT NULL"
                " ORDER BY t_ns LIMIT ?"
            )
            args = (q.device_id, q.start_ns, q.stop_ns)
        try:
            return [(int(t), float(v)) for t, v in conn.execute(sql, (*args, q.limit))]
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite query failed: {exc}") from exc

    async def query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        result: list[tuple[int, float]] = await self._run(self._query, q)
        return result

    def _latest(self) -> dict[str, Latest]:
        conn = self._connection()
        cols = ", ".join(f"{f}_t, {f}" for f in VITAL_FIELDS)
        try:
            rows = conn.execute(f"SELECT device_id, t_ns, {cols} FROM device_latest").fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite query failed: {exc}") from exc
        out: dict[str, Latest] = {}
        # 10,000 rows for a fleet view: pairs taken with zip, not indexed per field
        for device_id, t_ns, *vitals in rows:
            pairs = iter(vitals)
            values = {
                f: (int(t), float(v))
                for f, t, v in zip(VITAL_FIELDS, pairs, pairs, strict=True)
                if t is not None and t >= 0 and v is not None
            }
            out[device_id] = Latest(int(t_ns), values)
        return out

    async def latest(self) -> dict[str, Latest]:
        result: dict[str, Latest] = await self._run(self._latest)
        return result

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)
