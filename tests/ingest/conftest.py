from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from composition.servers import MosquittoServer, find_mosquitto
from sealscope.registry import SqliteDeviceRegistry


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker of this test's own, so restarts and stray subscriptions stay here."""
    if find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed; CI must install it")
        pytest.skip("mosquitto is not installed")
    server = MosquittoServer(workdir=tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SqliteDeviceRegistry]:
    reg = SqliteDeviceRegistry(tmp_path / "data" / "sealscope.db")
    yield reg
    reg.close()


def telemetry_rows(db: Path) -> tuple[int, float]:
    """(rows, sum of p_in_kpa) straight from the SQLite file."""
    if not db.exists():
        return 0, 0.0
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            n, total = conn.execute("SELECT count(*), total(p_in_kpa) FROM telemetry").fetchone()
        except sqlite3.OperationalError:  # table not created yet
            return 0, 0.0
    return int(n), float(total)


async def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll a condition; fail with ``what`` if it does not hold within the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)
