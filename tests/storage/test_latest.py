"""``LatestReadings.latest`` on every store that has it: each device's newest point time and
newest vital values, never moved back by an older point written later."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sealscope.storage import LatestReadings, Point, Series
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.storage.sqlite import SqliteTelemetryStore

S = 1_000_000_000


@pytest.fixture(params=["memory", "sqlite", "influxdb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryTelemetryStore()
        return
    if request.param == "sqlite":
        s: Any = SqliteTelemetryStore(tmp_path / "t.db")
    else:
        from sealscope.storage.influxdb import InfluxStore

        target = request.getfixturevalue("influx")
        s = InfluxStore(
            url=target.write_url, token=target.token, org=target.org, bucket=target.bucket
        )
    yield s
    await s.close()


def _series(device_id: str, kind: str = "valve") -> Series:
    return Series(kind, (("device_id", device_id), ("site", "north")))


async def test_latest_is_the_newest_point_and_vitals(store: Any) -> None:
    assert isinstance(store, LatestReadings)
    tag = uuid.uuid4().hex[:8].upper()  # the InfluxDB database is shared by the session
    a, b = f"ACME-{tag}-1", f"PUMP-{tag}-2"
    base = int(time.time()) - 1000
    await store.write([Point(_series(a), (base + 100) * S, {"battery_v": 3.5, "p_in_kpa": 1.0})])
    # a replay of an older point, carrying a field the newer one lacks
    await store.write([Point(_series(a), (base + 50) * S, {"battery_v": 3.9, "rsrp_dbm": -80.0})])
    await store.write([Point(_series(b, "pump"), (base + 200) * S, {"speed_rpm": 2900.0})])
    latest = await store.latest()
    assert latest[a].t_ns == (base + 100) * S
    assert latest[a].values == {
        "battery_v": ((base + 100) * S, 3.5),
        "rsrp_dbm": ((base + 50) * S, -80.0),
    }
    assert latest[b].t_ns == (base + 200) * S and latest[b].values == {}
