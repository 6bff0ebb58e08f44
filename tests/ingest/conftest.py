from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from composition.servers import MosquittoServer, find_mosquitto
from sealscope.config import Settings
from sealscope.registry import SqliteDeviceRegistry

# how long an ingest child process may take to subscribe: seconds on a quiet machine, over
# 60 s for one with a worker process on 2 cores at load 14
INGEST_START_S = 120


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


def ingest_settings(tmp_path: Path, broker: MosquittoServer, **extra: object) -> Settings:
    """Settings for an ingest of this test's own: its data dir, broker and client id."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "mqtt_host": broker.host,
        "mqtt_port": broker.port,
        "mqtt_client_id": f"ingest-{tmp_path.name}",
        "batch_max_age_s": 0.05,
    }
    return Settings(**(values | extra))  # type: ignore[arg-type]


def ingest_process(
    settings: Settings, log: Path, *, module: str = "composition"
) -> subprocess.Popen[bytes]:
    """``python -m <module> --data-dir ... ingest`` with the test's broker and data dir."""
    env = dict(
        os.environ,
        SEALSCOPE_MQTT_HOST=settings.mqtt_host,
        SEALSCOPE_MQTT_PORT=str(settings.mqtt_port),
        SEALSCOPE_MQTT_CLIENT_ID=settings.mqtt_client_id,
        SEALSCOPE_BATCH_MAX_AGE_S="0.05",
        SEALSCOPE_DETECT="false",
    )
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", module, "--data-dir", str(settings.data_dir), "ingest"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
