"""Outboxes for the delivery tests: in memory, SQLite, and a real PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, user ``postgres``); the session
creates a uniquely named database and drops it at the end. Missing, it skips the
PostgreSQL cases, except in CI, where it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.delivery import MemoryOutbox, SqlOutbox, metadata, sqlite_engine

_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class FakeClock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"sealscope_delivery_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _fresh_pg_engine(url: str) -> Engine:
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = sqlite_engine(tmp_path / "delivery.db")
        metadata.create_all(engine)
    else:
        engine = _fresh_pg_engine(request.getfixturevalue("pg_url"))
    yield engine
    engine.dispose()


InScope = Callable[[str, str], bool]


def _everything(org_id: str, device_id: str) -> bool:
    return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def make_outbox(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_outbox(in_scope=..., risk_in_scope=...)`` on this case's backend."""
    engines: list[Engine] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("in_scope", _everything)
        kwargs.setdefault("clock", clock)
        if request.param == "memory":
            return MemoryOutbox(**kwargs)
        if request.param == "sqlite":
            engine = sqlite_engine(tmp_path / "outbox.db")
            metadata.create_all(engine)
        else:
            engine = _fresh_pg_engine(request.getfixturevalue("pg_url"))
        engines.append(engine)
        return SqlOutbox(engine, **kwargs)

    yield make
    for engine in engines:
        engine.dispose()
