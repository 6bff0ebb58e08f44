"""The state database: engines, error translation and migrations, on SQLite and a real
PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealscope.db import head_revisions, migrate, open_engine, read, sqlite_url, tables, write
from sealscope.deadletters import SqlDeadLetterStore
from sealscope.errors import ConfigError, Conflict, StoreUnavailable
from sealscope.sqlitedb import Database

# The tables as sealscope.sqlitedb's schema_version scheme made them, before Alembic.
_PRE_ALEMBIC = {
    "registry": [
        """CREATE TABLE IF NOT EXISTS devices (
            device_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('valve', 'pump')),
            manufacturer TEXT NOT NULL, model TEXT NOT NULL,
            batch TEXT NOT NULL DEFAULT '', site TEXT NOT NULL DEFAULT '',
            region TEXT NOT NULL DEFAULT '', dn INTEGER CHECK (dn > 0),
            pn INTEGER CHECK (pn > 0), seat_material TEXT NOT NULL DEFAULT '',
            leakage_class TEXT NOT NULL DEFAULT '', firmware TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS devices_by_manufacturer ON devices (manufacturer, device_id)",
        "CREATE INDEX IF NOT EXISTS devices_by_site ON devices (site, device_id)",
    ],
    "alerts": [
        """CREATE TABLE IF NOT EXISTS alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,
            cause TEXT NOT NULL, category TEXT NOT NULL, severity INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'open', summary TEXT NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(evidence)),
            opened_at REAL NOT NULL, updated_at REAL NOT NULL, resolved_at REAL
        )""",
        """CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active
            ON alerts (device_id, cause) WHERE status != 'resolved'""",
    ],
    # version 1 of the dead letters, before their size bounds
    "dead_letters": [
        """CREATE TABLE IF NOT EXISTS dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL,
            topic TEXT NOT NULL, payload BLOB NOT NULL, code TEXT NOT NULL,
            reason TEXT NOT NULL, device_id TEXT
        )""",
    ],
}


def _versions(engine: sa.Engine) -> list[str]:
    with read(engine) as conn:
        return list(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))


def test_open_engine_sqlite_sets_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path / "new" / "state.db"), busy_timeout_ms=1234)
    with read(engine) as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://root:hunter2@db/x", "not a url"])
def test_open_engine_refuses_other_databases_without_showing_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_engine(url)
    assert info.value.setting == "database_url"
    assert "hunter2" not in str(info.value)


def test_migrate_creates_the_base_tables_and_is_idempotent(db_engine: sa.Engine) -> None:
    migrate(db_engine)  # the fixture migrated already: nothing left to do
    assert _versions(db_engine) == sorted(head_revisions())
    names = set(sa.inspect(db_engine).get_table_names())
    assert {"devices", "alerts", "dead_letters", "alembic_version"} <= names


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that nothing has migrated yet."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "fresh.db")
    return request.getfixturevalue("postgres_databases").create()


def test_migrate_by_several_processes_at_once_creates_the_schema_once(fresh_url: str) -> None:
    engines = [open_engine(fresh_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine: sa.Engine) -> None:
        try:
            barrier.wait()
            migrate(engine)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert _versions(engines[0]) == sorted(head_revisions())
    for engine in engines:
        engine.dispose()


def test_migrate_upgrades_a_pre_alembic_sqlite_file_in_place(tmp_path: Path) -> None:
    path = tmp_path / "sealscope.db"
    old = Database(path)
    for component, statements in _PRE_ALEMBIC.items():
        old.migrate(component, [statements])
    with old.write() as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, manufacturer, model, created_at)"
            " VALUES ('ACME-1', 'valve', 'acme', 'BV-50', 1.0)"
        )
        conn.execute(
            "INSERT INTO alerts (device_id, cause, category, severity, summary, evidence,"
            " opened_at, updated_at) VALUES ('ACME-1', 'seat_leak', 'failure', 3, 's',"
            " '{\"ratio\": 2.5}', 1, 1)"
        )
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, code, reason)"
            " VALUES (1, 't', x'00ff', 'malformed', 'r')"
        )
    old.close()

    engine = open_engine(sqlite_url(path))
    migrate(engine)
    assert _versions(engine) == sorted(head_revisions())
    with read(engine) as conn:
        assert conn.scalar(sa.select(tables.devices.c.model)) == "BV-50"
        assert conn.scalar(sa.select(tables.alerts.c.evidence)) == {"ratio": 2.5}
    # the dead letters gained their bound columns; old rows read with their defaults
    (letter,) = SqlDeadLetterStore(engine).list()
    assert (letter.payload, letter.payload_bytes, letter.payload_sha256) == (b"\x00\xff", 0, "")
    assert SqlDeadLetterStore(engine).add(
        topic="t", payload=b"x", code="c", reason="r", device_id=None, once_per="retained"
    )
    engine.dispose()


def test_migrate_refuses_a_schema_newer_than_this_build(db_engine: sa.Engine) -> None:
    with write(db_engine) as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    try:
        with pytest.raises(ConfigError, match="newer than this build"):
            migrate(db_engine)
    finally:
        with write(db_engine) as conn:
            conn.execute(
                sa.text("UPDATE alembic_version SET version_num = :v"),
                {"v": min(head_revisions())},
            )


def test_write_unique_violation_with_a_name_is_conflict(db_engine: sa.Engine) -> None:
    row = {"device_id": "ACME-1", "kind": "valve", "manufacturer": "a", "model": "m"}
    insert = tables.devices.insert().values(created_at=1.0, **row)
    with write(db_engine) as conn:
        conn.execute(insert)
    with pytest.raises(Conflict) as info, write(db_engine, conflict=("device", "ACME-1")) as conn:
        conn.execute(insert)
    assert (info.value.kind, info.value.key) == ("device", "ACME-1")
    # without a name it stays the driver's error: a bug, not a caller's conflict
    with pytest.raises(sa.exc.IntegrityError), write(db_engine) as conn:
        conn.execute(insert)


def test_write_sqlite_locked_past_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    engine = open_engine(sqlite_url(path), busy_timeout_ms=50)
    migrate(engine)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable), write(engine) as conn:
            conn.execute(tables.dead_letters.delete())
    finally:
        other.execute("ROLLBACK")
        other.close()
    with write(engine) as conn:  # usable again once the lock is gone
        conn.execute(tables.dead_letters.delete())
    engine.dispose()


@pytest.mark.parametrize("use", [read, write])
def test_postgres_unreachable_is_store_unavailable(
    use: Callable[[sa.Engine], object],
) -> None:
    # port 1 on loopback: nothing listens, the connection is refused at once
    engine = open_engine("postgresql+psycopg://postgres:pw@127.0.0.1:1/x", connect_timeout_s=1)
    with pytest.raises(StoreUnavailable) as info, use(engine):  # type: ignore[attr-defined]
        pass
    assert "pw" not in str(info.value).replace("postgres", "")
    engine.dispose()
