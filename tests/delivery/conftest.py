"""Outboxes for the delivery tests: in memory, and on migrated SQLite and PostgreSQL state
databases (PostgreSQL: a fresh database per test from the session's server, see
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from sealscope.db import open_migrated, sqlite_url
from sealscope.delivery import MemoryOutbox, SqlOutbox


@dataclass
class FakeClock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _everything(org_id: str, device_id: str) -> bool:
    return True


def _migrated(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Engine:
    if backend == "sqlite":
        return open_migrated(sqlite_url(tmp_path / "state.db"))
    return open_migrated(request.getfixturevalue("postgres_databases").create())


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    engine = _migrated(request, request.param, tmp_path)
    yield engine
    engine.dispose()


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
        engine = _migrated(request, request.param, tmp_path)
        engines.append(engine)
        return SqlOutbox(engine, **kwargs)

    yield make
    for engine in engines:
        engine.dispose()
