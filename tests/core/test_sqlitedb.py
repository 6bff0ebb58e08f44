"""``sealscope.sqlitedb``: the gateway's SQLite state (keys, forwarder, downlinks)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sealscope.errors import StoreUnavailable
from sealscope.sqlitedb import Database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sealscope.db"


def test_database_wal_pragmas(db_path: Path) -> None:
    db = Database(db_path)
    with db.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    db.close()


def test_database_migrate_applies_only_new_steps(db_path: Path) -> None:
    db = Database(db_path)
    assert db.migrate("demo", [["CREATE TABLE demo (a INTEGER)"]]) == 1
    # running the same step again would fail (no IF NOT EXISTS): it must be skipped
    assert db.migrate("demo", [["CREATE TABLE demo (a INTEGER)"], ["ALTER TABLE demo ADD b"]]) == 2
    with db.read() as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(demo)")]
    assert columns == ["a", "b"]
    db.close()


def test_database_locked_past_timeout_is_store_unavailable(db_path: Path) -> None:
    db = Database(db_path, busy_timeout_ms=50)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable), db.write() as conn:
            conn.execute("CREATE TABLE t (a)")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with db.write() as conn:  # usable again once the lock is gone
        conn.execute("CREATE TABLE t (a)")
    db.close()


def test_database_failed_migration_rolls_back(db_path: Path) -> None:
    db = Database(db_path)
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        db.migrate("demo", [["CREATE TABLE demo (a)", "CREATE TABLE demo (a)"]])
    assert db.schema_version("demo") == 0
    with db.read() as conn:
        assert (
            conn.execute("SELECT count(*) FROM sqlite_master WHERE name='demo'").fetchone()[0] == 0
        )
    db.close()
