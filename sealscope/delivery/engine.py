"""A SQLite engine fit for the outbox until ``sealscope.db`` provides the shared one.

Transactions start with ``BEGIN IMMEDIATE``: a transaction that reads and then writes
(``enqueue`` reads subscriptions, then inserts) takes the write lock up front, so it waits
on the busy timeout instead of failing when another connection wrote in between. WAL lets
readers and the single writer (several processes too) work at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["sqlite_engine"]

_BUSY_TIMEOUT_S = 10.0


def sqlite_engine(path: str | Path) -> Engine:
    engine = sa.create_engine(
        f"sqlite:///{Path(path)}",
        connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would BEGIN (deferred) behind our back
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
