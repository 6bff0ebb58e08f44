"""One way to open sealscope's SQLite state database (registry, alerts, dead letters).

Every adapter opens its connection through ``Database`` so they all agree on the pragmas:
WAL (readers never block the single writer, and the API and ingest may share the file),
a busy timeout (a second process waits for the write lock instead of failing), foreign
keys on. One connection per adapter is shared across threads (``check_same_thread=False``)
and serialised by a lock, because the FastAPI threadpool and ingest may call one instance
concurrently.

Schema changes are numbered per component in ``schema_version``; ``migrate`` applies the
steps a file has not seen yet inside one write transaction, so two processes opening the
same fresh file cannot both create the tables. A file whose schema is newer than this build
raises ``ConfigError`` rather than being written by code that does not know it.

Errors that can pass (locked past the timeout, disk I/O or full) are translated into
``StoreUnavailable``: the caller may retry. Anything else (a bad statement) is a bug and
propagates as it is.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sealscope.db.engine import SQLITE_TRANSIENT
from sealscope.errors import ConfigError, StoreUnavailable

__all__ = ["Database", "Migration"]

# One migration: the statements that take a component's schema from version n to n+1.
Migration = Sequence[str]

_BUSY_TIMEOUT_MS = 5000


def _is_transient(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in SQLITE_TRANSIENT


class Database:
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = _BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the stdlib never
            # opens an implicit transaction behind our back.
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            # NORMAL is durable across application crashes in WAL mode; only a power loss
            # can lose the last commits, which is acceptable for this state.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self.write() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " component TEXT PRIMARY KEY,"
                    " version INTEGER NOT NULL)"
                )
        except sqlite3.OperationalError as exc:
            if not _is_transient(exc):
                raise
            raise StoreUnavailable(f"cannot open {self.path}: {exc}", retry_after_s=1.0) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so a
        read-then-write inside it cannot be overtaken by another connection."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.rollback()
                    raise
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error:
                    self._conn.rollback()
                    raise
            except sqlite3.OperationalError as exc:
                if not _is_transient(exc):
                    raise
                raise StoreUnavailable(f"{self.path}: {exc}", retry_after_s=1.0) from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.OperationalError as exc:
                if not _is_transient(exc):
                    raise
                raise StoreUnavailable(f"{self.path}: {exc}", retry_after_s=1.0) from exc

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Bring ``component``'s tables up to ``len(migrations)``; returns that version."""
        with self.write() as conn:
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
            current = row["version"] if row else 0
            if current > len(migrations):
                raise ConfigError(
                    "state_db",
                    f"{self.path}: {component} schema is version {current}, newer than this"
                    f" build's {len(migrations)}; upgrade sealscope",
                )
            for step in migrations[current:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(migrations)),
            )
        return len(migrations)

    def schema_version(self, component: str) -> int:
        with self.read() as conn:
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
        return row["version"] if row else 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()
