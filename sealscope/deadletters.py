"""The dead-letter store: every message ingest could not use, with the reason.

Port: ``DeadLetterStore``. Adapter: ``SqliteDeadLetterStore``.

Bounded three ways, so hostile input cannot fill the disk through it: a payload keeps its
first ``payload_prefix_bytes`` (with its full size and sha256), a reason its first
``REASON_MAX_CHARS``, and the table its newest ``max_count`` letters younger than
``max_age_s`` (pruned on insert, by index ranges). ``once_per`` makes a letter unique per
topic, scope and payload digest: a crash replay or a retained message redelivered on every
reconnect is kept once, not again each time.
"""

from __future__ import annotations

import hashlib
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
    payload_bytes: int = 0  # size as it arrived; ``payload`` may be only a prefix of it
    payload_sha256: str = ""  # of the whole payload, hex


class DeadLetterStore(Protocol):
    def add(
        self,
        *,
        topic: str,
        payload: bytes,
        code: str,
        reason: str,
        device_id: str | None,
        once_per: str | None = None,
    ) -> int | None:
        """Keep one rejected message; returns its id, or None if ``once_per`` (a scope such
        as a spool position, or "retained") already holds this topic and payload."""
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
    (
        # rows from before this migration keep 0/'' (their payloads were stored whole)
        "ALTER TABLE dead_letters ADD COLUMN payload_bytes INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE dead_letters ADD COLUMN payload_sha256 TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE dead_letters ADD COLUMN once_key TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_once ON dead_letters (topic, once_key)"
        " WHERE once_key IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (received_at)",
    ),
)

_COLUMNS = "id, received_at, topic, payload, code, reason, device_id, payload_bytes, payload_sha256"
REASON_MAX_CHARS = 1000


def _row_to_dead_letter(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        received_at=row["received_at"],
        topic=row["topic"],
        payload=bytes(row["payload"]),
        code=row["code"],
        reason=row["reason"],
        device_id=row["device_id"],
        payload_bytes=row["payload_bytes"],
        payload_sha256=row["payload_sha256"],
    )


class SqliteDeadLetterStore:
    """``DeadLetterStore`` on a SQLite file (may be shared with the registry and alerts)."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        payload_prefix_bytes: int = 4096,
        max_count: int = 100_000,
        max_age_s: float = 30 * 24 * 3600.0,
    ) -> None:
        if payload_prefix_bytes < 0 or max_count < 1 or max_age_s <= 0:
            raise ValueError("payload_prefix_bytes >= 0, max_count >= 1 and max_age_s > 0")
        self._db = Database(path)
        self._clock = clock
        self.payload_prefix_bytes = payload_prefix_bytes
        self.max_count = max_count
        self.max_age_s = max_age_s
        self._db.migrate("dead_letters", _MIGRATIONS)

    def add(
        self,
        *,
        topic: str,
        payload: bytes,
        code: str,
        reason: str,
        device_id: str | None,
        once_per: str | None = None,
    ) -> int | None:
        payload = bytes(payload)  # a bytearray/memoryview is stored as a BLOB too, never TEXT
        digest = hashlib.sha256(payload).hexdigest()
        once_key = f"{once_per}:{digest}" if once_per is not None else None
        now = self._clock()
        with self._db.write() as conn:
            cur = conn.execute(
                "INSERT INTO dead_letters (received_at, topic, payload, code, reason, device_id,"
                " payload_bytes, payload_sha256, once_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (topic, once_key) WHERE once_key IS NOT NULL DO NOTHING",
                (
                    now,
                    topic,
                    payload[: self.payload_prefix_bytes],
                    code,
                    reason[:REASON_MAX_CHARS],
                    device_id,
                    len(payload),
                    digest,
                    once_key,
                ),
            )
            if cur.rowcount == 0:
                return None
            new_id = cur.lastrowid
            assert new_id is not None
            # ids grow with arrival, so both bounds are index ranges: cheap on every insert
            conn.execute("DELETE FROM dead_letters WHERE id <= ?", (new_id - self.max_count,))
            conn.execute("DELETE FROM dead_letters WHERE received_at < ?", (now - self.max_age_s,))
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
