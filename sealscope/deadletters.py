"""The dead-letter store: every message ingest could not use, with the reason.

Port: ``DeadLetterStore``. Adapter: ``SqlDeadLetterStore`` on the state database (SQLite
or PostgreSQL); ``SqliteDeadLetterStore`` opens one on a file.

Bounded three ways, so hostile input cannot fill the disk through it: a payload keeps its
first ``payload_prefix_bytes`` (with its full size and sha256), a reason its first
``REASON_MAX_CHARS``, and the table its newest ``max_count`` letters younger than
``max_age_s`` (pruned on insert, by index ranges). ``once_per`` makes a letter unique per
topic, scope and payload digest: a crash replay or a retained message redelivered on every
reconnect is kept once, not again each time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.db import insert_for, open_migrated, read, sqlite_url, tables, write

__all__ = ["DeadLetter", "DeadLetterStore", "SqlDeadLetterStore", "SqliteDeadLetterStore"]


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


_DEAD_LETTERS = tables.dead_letters
_COLUMNS = tuple(c for c in _DEAD_LETTERS.c if c.name != "once_key")
REASON_MAX_CHARS = 1000


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a letter is kept rather than lost over one character
    return value.replace("\x00", "\ufffd")


def _row_to_dead_letter(row: Mapping[Any, Any]) -> DeadLetter:
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


class SqlDeadLetterStore:
    """``DeadLetterStore`` on the state database (SQLite or PostgreSQL), shared with the
    registry and alerts. ``engine`` must be migrated (``sealscope.db.migrate``).

    Retention keeps at most ``max_count`` letters: it prunes by id range, and ids can skip
    (PostgreSQL spends a sequence value on a letter ``once_per`` refused), so after
    refusals it may keep a few fewer.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        payload_prefix_bytes: int = 4096,
        max_count: int = 100_000,
        max_age_s: float = 30 * 24 * 3600.0,
        owns_engine: bool = False,
    ) -> None:
        if payload_prefix_bytes < 0 or max_count < 1 or max_age_s <= 0:
            raise ValueError("payload_prefix_bytes >= 0, max_count >= 1 and max_age_s > 0")
        self._engine = engine
        self._clock = clock
        self._owns_engine = owns_engine
        self.payload_prefix_bytes = payload_prefix_bytes
        self.max_count = max_count
        self.max_age_s = max_age_s
        self._insert = (
            insert_for(engine)(_DEAD_LETTERS)
            .on_conflict_do_nothing(
                index_elements=[_DEAD_LETTERS.c.topic, _DEAD_LETTERS.c.once_key],
                # literal: PostgreSQL must match it to the partial index even when prepared
                index_where=sa.text("once_key IS NOT NULL"),
            )
            .returning(_DEAD_LETTERS.c.id)
        )

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
        payload = bytes(payload)  # a bytearray/memoryview is stored as bytes too, never text
        digest = hashlib.sha256(payload).hexdigest()
        once_key = f"{_text(once_per)}:{digest}" if once_per is not None else None
        now = self._clock()
        with write(self._engine) as conn:
            new_id = conn.execute(
                self._insert,
                {
                    "received_at": now,
                    "topic": _text(topic),
                    "payload": payload[: self.payload_prefix_bytes],
                    "code": _text(code),
                    "reason": _text(reason[:REASON_MAX_CHARS]),
                    "device_id": None if device_id is None else _text(device_id),
                    "payload_bytes": len(payload),
                    "payload_sha256": digest,
                    "once_key": once_key,
                },
            ).scalar()
            if new_id is None:
                return None
            # ids grow with arrival, so both bounds are index ranges: cheap on every insert
            conn.execute(
                sa.delete(_DEAD_LETTERS).where(_DEAD_LETTERS.c.id <= new_id - self.max_count)
            )
            conn.execute(
                sa.delete(_DEAD_LETTERS).where(_DEAD_LETTERS.c.received_at < now - self.max_age_s)
            )
        return int(new_id)

    def list(
        self, *, device_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        query = sa.select(*_COLUMNS)
        if device_id is not None:
            query = query.where(_DEAD_LETTERS.c.device_id == _text(device_id))
        # ids follow arrival order, so newest first is id descending
        query = query.order_by(_DEAD_LETTERS.c.id.desc()).limit(limit).offset(offset)
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [_row_to_dead_letter(r) for r in rows]

    def count(self, *, device_id: str | None = None) -> int:
        """All dead letters, or one device's (an extension of the port's ``count()``)."""
        query = sa.select(sa.func.count()).select_from(_DEAD_LETTERS)
        if device_id is not None:
            query = query.where(_DEAD_LETTERS.c.device_id == _text(device_id))
        with read(self._engine) as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()


class SqliteDeadLetterStore(SqlDeadLetterStore):
    """``SqlDeadLetterStore`` on a SQLite file of its own engine, migrated on opening."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        payload_prefix_bytes: int = 4096,
        max_count: int = 100_000,
        max_age_s: float = 30 * 24 * 3600.0,
    ) -> None:
        super().__init__(
            open_migrated(sqlite_url(path)),
            clock=clock,
            payload_prefix_bytes=payload_prefix_bytes,
            max_count=max_count,
            max_age_s=max_age_s,
            owns_engine=True,
        )
