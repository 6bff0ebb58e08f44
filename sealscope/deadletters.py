"""The dead-letter store: every message ingest could not use, with the reason.

Port: ``DeadLetterStore``. Adapter: ``SqliteDeadLetterStore``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sealscope.sqlitedb import Database, Migration

__all__ = ["DeadLetter", "DeadLetterStore", "SqliteDeadLetterStore"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_at: float  # arrival time at ingest, Unix s
    topic: str
    payload: bytes
    code: str  # MessageRejected.code: malformed, unknown_version, bad_topic, unknown_device
    reason: str
    device_id: str | None = None


class DeadLetterStore(Protocol):
    def add(
        self, *, topic: str, payload: bytes, code: str, reason: str, device_id: str | None
    ) -> int:
        """Keep one rejected message; returns its id."""
        ...

    def list(
        self, *, device_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


_MIGRATIONS: tuple[Migration, ...] = (
    (
        # payload is a BLOB: the message exactly as it arrived, whatever its encoding
        """CREATE TABLE IF NOT EXISTS dead_letters (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at REAL NOT NULL,
            topic       TEXT NOT NULL,
            payload     BLOB NOT NULL,
            code        TEXT NOT NULL,
            reason      TEXT NOT NULL,
            device_id   TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS dead_letters_by_device ON dead_letters (device_id, id)",
    ),
)

_COLUMNS = "id, received_at, topic, payload, code, reason, device_id"


def _row_to_dead_letter(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        received_at=row["received_at"],
        topic=row["topic"],
        payload=bytes(row["payload"]),
        code=row["code"],
        reason=row["reason"],
        device_id=row["device_id"],
    )


class SqliteDeadLetterStore:
    """``DeadLetterStore`` on a SQLite file (may be shared with the registry and alerts)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(path)
        self._clock = clock
        self._db.migrate("dead_letters", _MIGRATIONS)

    def add(
        self, *, topic: str, payload: bytes, code: str, reason: str, device_id: str | None
    ) -> int:
        with self._db.write() as conn:
            cur = conn.execute(
                "INSERT INTO dead_letters (received_at, topic, payload, code, reason, device_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                # bytes() so a bytearray/memoryview is stored as a BLOB too, never as TEXT
                (self._clock(), topic, bytes(payload), code, reason, device_id),
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return new_id

    def list(
        self, *, device_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        sql = f"SELECT {_COLUMNS} FROM dead_letters"
        args: tuple[object, ...] = ()
        if device_id is not None:
            sql += " WHERE device_id = ?"
            args = (device_id,)
        # ids follow arrival order, so newest first is id descending
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._db.read() as conn:
            rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return [_row_to_dead_letter(r) for r in rows]

    def count(self, *, device_id: str | None = None) -> int:
        """All dead letters, or one device's (an extension of the port's ``count()``)."""
        with self._db.read() as conn:
            if device_id is None:
                row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            else:
                row = conn.execute(
                    "SELECT count(*) FROM dead_letters WHERE device_id = ?", (device_id,)
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
