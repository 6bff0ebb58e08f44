"""Bring a database up to this build's schema with the Alembic migrations in the package.

``migrate(engine)`` runs at every start-up and is cheap when there is nothing to do (one
read of ``alembic_version``). When there is, it holds a lock for the whole upgrade, so two
processes starting at once on a fresh database cannot both create the tables: on
PostgreSQL a session advisory lock, on SQLite the write lock (``BEGIN IMMEDIATE``), and
the migrations run inside that one transaction (DDL is transactional on both).

A database already at a revision this build does not know (written by a newer sealscope)
raises ``ConfigError`` instead of being touched.

Files from before Alembic (tables made by ``sealscope.sqlitedb``'s ``schema_version``
scheme) are upgraded in place: ``0001_base`` creates only the tables and indexes that are
missing, so an existing file is simply stamped at it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from sealscope.db.engine import open_engine, write
from sealscope.errors import ConfigError

__all__ = ["MIGRATIONS_DIR", "head_revisions", "migrate", "open_migrated"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_lock key: any constant 64-bit integer unique to this purpose
_PG_LOCK_KEY = 0x5EA15C09E_0001


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revisions() -> frozenset[str]:
    return frozenset(_script().get_heads())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in _script().walk_revisions())


def _current(conn: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(conn).get_current_heads())


def _upgrade(conn: Connection) -> None:
    current = _current(conn)
    if current == head_revisions():
        return  # another process got there first
    unknown = current - _known_revisions()
    if unknown:
        raise ConfigError(
            "database_url",
            f"the database schema is at revision {', '.join(sorted(unknown))}, newer than"
            " this build; upgrade sealscope",
        )
    command.upgrade(_config(conn), "heads")


def migrate(engine: Engine) -> None:
    """Apply every migration ``engine``'s database has not seen yet."""
    try:
        with engine.connect() as conn:
            if _current(conn) == head_revisions():
                return
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(sa.select(sa.func.pg_advisory_lock(_PG_LOCK_KEY)))
                conn.commit()
                try:
                    with conn.begin():
                        _upgrade(conn)
                finally:
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(_PG_LOCK_KEY)))
                    conn.commit()
        else:
            with write(engine) as conn:
                _upgrade(conn)
    except CommandError as exc:
        raise ConfigError("database_url", f"cannot migrate the database: {exc}") from exc


def open_migrated(url: str, **kwargs: Any) -> Engine:
    """``open_engine`` then ``migrate``: what every process does at start-up."""
    engine = open_engine(url, **kwargs)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
