"""``-m bench``: a day and a month of 100 devices read raw vs from the rollups, on a real
InfluxDB 1.6. Prints figures (``-s``); asserts only that rollup and raw means agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from composition.bench.influxdb import find_influxd
from composition.bench.rollups import run_bench_rollups

pytestmark = pytest.mark.bench


def test_bench_rollups_day_and_month_of_100_devices(tmp_path: Path) -> None:
    if find_influxd() is None:
        pytest.skip("influxdb is not installed")
    figures = run_bench_rollups(100, workdir=tmp_path / "influxdb")
    assert len(figures) == 8
