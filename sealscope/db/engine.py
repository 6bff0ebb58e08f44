"""Open the state database (SQLite or PostgreSQL) and run transactions on it.

``open_engine(url)`` is the one place that knows the dialects:

- SQLite (the embedded default): every connection gets WAL (readers never block the
  single writer, and the API and ingest may share the file), a busy timeout (a second
  process waits for the write lock instead of failing) and foreign keys. pysqlite's own
  transaction handling is switched off so SQLAlchemy's ``BEGIN`` is real, and write
  transactions start with ``BEGIN IMMEDIATE``: the write lock is taken up front, so a
  read-then-write cannot be overtaken by another connection.
- PostgreSQL (production, ``postgresql+psycopg://``): psycopg 3 with a connection pool
  that checks a connection before handing it out (a restarted server is not an error).

``write`` and ``read`` translate errors that can pass (lock timeout, lost connection, full
disk, serialisation failure) into ``StoreUnavailable``, and on ``write`` a unique
violation into ``Conflict`` when the caller names what it was creating. Anything else (a
bad statement, a CHECK the caller broke) propagates as SQLAlchemy raised it.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from sealscope.errors import ConfigError, Conflict, StoreUnavailable

__all__ = [
    "SQLITE_TRANSIENT",
    "insert_for",
    "is_unique_violation",
    "open_engine",
    "read",
    "sqlite_url",
    "write",
]

BUSY_TIMEOUT_MS = 5000
_WRITE_OPTION = "sealscope_write"
# SQLite primary result codes of conditions that go away by themselves
SQLITE_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
_PG_UNIQUE_VIOLATION = "23505"


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def open_engine(
    url: str,
    *,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    pool_size: int = 5,
    connect_timeout_s: float = 5.0,
) -> Engine:
    """An engine for ``url``; raises ``ConfigError`` for a URL it cannot serve."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError("database_url", "not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _open_sqlite(parsed, busy_timeout_ms=busy_timeout_ms)
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
            raise ConfigError("database_url", "PostgreSQL is spoken through psycopg 3")
        # plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            pool_timeout=connect_timeout_s,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
        )
    shown = parsed.render_as_string(hide_password=True)
    raise ConfigError("database_url", f"{shown}: only sqlite and postgresql are supported")


def _open_sqlite(url: sa.URL, *, busy_timeout_ms: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        # pooled connections move between threads (FastAPI's threadpool, ingest)
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # autocommit at the driver: SQLAlchemy's begin event below issues BEGIN itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable across application crashes in WAL mode; only a power loss can
        # lose the last commits, which is acceptable for this state.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _is_transient(exc: sa.exc.SQLAlchemyError) -> bool:
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in SQLITE_TRANSIENT
    # psycopg: lost connections, serialisation failures, deadlocks, lock timeouts and
    # admin shutdowns are all OperationalError
    return isinstance(exc, sa.exc.OperationalError)


def is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) in (
            sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
            sqlite3.SQLITE_CONSTRAINT_UNIQUE,
        )
    return getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION


def insert_for(engine: Engine) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, which has ``on_conflict_do_update`` and ``excluded`` on both."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def _unavailable(engine: Engine, exc: sa.exc.SQLAlchemyError) -> StoreUnavailable:
    # the driver's message, not SQLAlchemy's: that one repeats the statement's parameters
    reason = getattr(exc, "orig", None) or exc.__class__.__name__
    where = engine.url.render_as_string(hide_password=True)
    return StoreUnavailable(f"{where}: {reason}", retry_after_s=1.0)


# SQLite has one writer at a time. Threads of one process queue for it here, promptly and
# in turn; left to SQLite's busy handler they would poll with sleeps of up to 100 ms.
_WRITER_TURNS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_TURNS_LOCK = threading.Lock()


def _writer_turn(engine: Engine) -> threading.Lock | nullcontext[None]:
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _TURNS_LOCK:
        return _WRITER_TURNS.setdefault(engine, threading.Lock())


@contextmanager
def write(engine: Engine, *, conflict: tuple[str, str] | None = None) -> Iterator[Connection]:
    """One write transaction, committed when the block ends.

    ``conflict=(kind, key)`` turns a unique violation into ``Conflict(kind, key)``.
    """
    try:
        with _writer_turn(engine), engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn
    except sa.exc.IntegrityError as exc:
        if conflict is not None and is_unique_violation(exc):
            raise Conflict(*conflict) from exc
        raise
    except sa.exc.SQLAlchemyError as exc:
        if not _is_transient(exc):
            raise
        raise _unavailable(engine, exc) from exc


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; its transaction is rolled back when the block ends."""
    try:
        with engine.connect() as conn:
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        if not _is_transient(exc):
            raise
        raise _unavailable(engine, exc) from exc
