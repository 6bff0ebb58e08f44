"""SqliteTelemetryStore refuses what it cannot keep faithfully (real SQLite file)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sealscope.errors import PointsRejected
from sealscope.storage import Point, Series, TelemetryQuery
from sealscope.storage.sqlite import SqliteTelemetryStore


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1.5", None])
async def test_sqlite_store_refuses_non_finite_values_and_writes_nothing(
    tmp_path: Path, value: object
) -> None:
    store = SqliteTelemetryStore(tmp_path / "telemetry.db")
    series = Series("valve", (("device_id", "ACME-V-1"), ("site", "a\nb")))
    try:
        good = Point(series, 1_000, {"p_in_kpa": 1.0})
        bad = Point(series, 2_000, {"p_in_kpa": value})  # type: ignore[dict-item]
        with pytest.raises(PointsRejected, match=r"'p_in_kpa'.*not a finite number"):
            await store.write([good, bad])
        q = TelemetryQuery("ACME-V-1", "valve", "p_in_kpa", 0, 10_000)
        assert await store.query(q) == []
        # a tag line protocol cannot carry is no problem here
        await store.write([good])
        assert await store.query(q) == [(1_000, 1.0)]
    finally:
        await store.close()
