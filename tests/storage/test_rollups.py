"""Rollups on a real InfluxDB 1.6: policies and continuous queries, and reads that take the
rollup where it fits and the raw data where it does not, with the raw means either way."""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from sealscope.errors import ConfigError
from sealscope.storage import Point, Series, TelemetryQuery
from sealscope.storage.influxdb import InfluxStore, quote_ident
from sealscope.storage.rollups import (
    DEFAULT_ROLLUPS,
    Rollup,
    backfill,
    install_rollups,
    install_statements,
)

pytestmark = pytest.mark.integration

S = 1_000_000_000
# an hour boundary within the minute rollup's retention (13 weeks)
T0_NS = (time.time_ns() // (3600 * S) - 6) * 3600 * S
DEVICES = ("PV-1", "PV-2", 'it\'s "odd" = yes')
ROLLUP_1M, ROLLUP_1H = DEFAULT_ROLLUPS


@dataclass
class Stores:
    raw: InfluxStore
    rolled: InfluxStore
    server: Any
    database: str


@pytest.fixture
async def stores(influx: Any) -> AsyncIterator[Stores]:
    database = f"rollups_{uuid.uuid4().hex[:10]}"
    influx.server.create_database(database)
    kwargs = {"url": influx.write_url, "token": influx.token, "org": influx.org}
    raw = InfluxStore(bucket=database, **kwargs)
    rolled = InfluxStore(bucket=database, rollups=DEFAULT_ROLLUPS, **kwargs)
    yield Stores(raw, rolled, influx.server, database)
    await raw.close()
    await rolled.close()
    influx.server.query(f"DROP DATABASE {quote_ident(database)}")


def _points(start_ns: int, stop_ns: int, *, seed: int) -> list[Point]:
    """Every 7 s (not a divisor of a minute), a random walk per device and field."""
    rng = np.random.default_rng(seed)
    times = np.arange(start_ns, stop_ns, 7 * S)
    points = []
    for device in DEVICES:
        series = Series("valve", (("device_id", device), ("site", "s1")))
        p_kpa = 400 + np.cumsum(rng.normal(0, 1, times.size))
        leak = np.abs(rng.normal(3, 1, times.size))
        points += [
            Point(series, int(t), {"p_in_kpa": float(p), "leak_mm3s": float(v)})
            for t, p, v in zip(times, p_kpa, leak, strict=True)
        ]
    return points


async def _write(store: InfluxStore, points: list[Point]) -> None:
    for lo in range(0, len(points), 5_000):
        await store.write(points[lo : lo + 5_000])


def _q(device: str, field: str, start_ns: int, stop_ns: int, every_s: int) -> TelemetryQuery:
    return TelemetryQuery(device, "valve", field, start_ns, stop_ns, every_s=every_s)


def _assert_same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    assert [t for t, _ in a] == [t for t, _ in b]
    for (_, x), (_, y) in zip(a, b, strict=True):
        assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (x, y)


# ranges inside [T0, T0 + 3h): aligned to hours, aligned to minutes only, and unaligned
RANGES = [
    (0, 3 * 3600),
    (60, 2 * 3600 + 120),
    (17, 3 * 3600 - 23),
    (3599, 7201),
]


async def test_rollups_reads_match_raw_means_and_come_from_the_rollup(stores: Stores) -> None:
    await _write(stores.raw, _points(T0_NS, T0_NS + 3 * 3600 * S, seed=1))
    await install_rollups(stores.rolled)
    for rollup in DEFAULT_ROLLUPS:
        assert await backfill(stores.rolled, rollup, T0_NS, T0_NS + 3 * 3600 * S) > 0
    cases = [
        _q(device, field, T0_NS + a * S, T0_NS + b * S, every_s)
        for device in DEVICES
        for field in ("p_in_kpa", "leak_mm3s")
        for a, b in RANGES
        for every_s in (60, 300, 3600, 7200)
    ]
    before = [await stores.raw.query(q) for q in cases]
    for q, expected in zip(cases, before, strict=True):
        assert expected, q
        _assert_same(await stores.rolled.query(q), expected)

    # a late sample inside whole rollup buckets: raw sees it, the rollup (not yet re-run) not,
    # which shows where each read came from
    late = Point(Series("valve", (("device_id", "PV-1"), ("site", "s1"))), T0_NS + 3 * S, {})
    await stores.raw.write([late._replace(t_ns=T0_NS + 600 * S + 3, fields={"p_in_kpa": 1e6})])
    q = _q("PV-1", "p_in_kpa", T0_NS, T0_NS + 3 * 3600 * S, 60)
    raw_now, rolled_now = await stores.raw.query(q), await stores.rolled.query(q)
    _assert_same(rolled_now, before[cases.index(q)])
    assert dict(raw_now)[T0_NS + 600 * S] > 1e4

    # once the rollup is recomputed over that range, both agree again
    await backfill(stores.rolled, ROLLUP_1M, T0_NS + 600 * S, T0_NS + 660 * S)
    _assert_same(await stores.rolled.query(q), raw_now)


async def test_rollups_range_newer_than_the_rollup_falls_back_to_raw(stores: Stores) -> None:
    await install_rollups(stores.rolled)
    await _write(stores.raw, _points(T0_NS, T0_NS + 2 * 3600 * S, seed=2))
    for rollup in DEFAULT_ROLLUPS:
        await backfill(stores.rolled, rollup, T0_NS, T0_NS + 3600 * S)
    for every_s in (60, 3600):
        for device in DEVICES:
            # the second hour exists only raw
            q = _q(device, "leak_mm3s", T0_NS + 1800 * S, T0_NS + 2 * 3600 * S, every_s)
            expected = await stores.raw.query(q)
            assert expected[-1][0] >= T0_NS + 3600 * S
            _assert_same(await stores.rolled.query(q), expected)
    # a range the rollup has never seen at all
    q = _q("PV-2", "p_in_kpa", T0_NS + 3600 * S, T0_NS + 2 * 3600 * S, 60)
    _assert_same(await stores.rolled.query(q), await stores.raw.query(q))


async def test_rollups_limit_and_empty_ranges(stores: Stores) -> None:
    await _write(stores.raw, _points(T0_NS, T0_NS + 3600 * S, seed=3))
    # PV-1 moved site ten minutes in: two series, both its own
    moved = Series("valve", (("device_id", "PV-1"), ("site", "s2")))
    await stores.raw.write(
        [Point(moved, T0_NS + t * S, {"p_in_kpa": 500.0 + t}) for t in range(0, 600, 5)]
    )
    await install_rollups(stores.rolled)
    await backfill(stores.rolled, ROLLUP_1M, T0_NS, T0_NS + 3600 * S)
    q = _q("PV-1", "p_in_kpa", T0_NS + 30 * S, T0_NS + 3600 * S, 60)
    q = dataclasses.replace(q, limit=5)
    rows = await stores.rolled.query(q)
    assert len(rows) == 5
    _assert_same(rows, await stores.raw.query(q))
    for q in (
        _q("nobody", "p_in_kpa", T0_NS, T0_NS + 3600 * S, 60),
        _q("PV-1", "no_such_field", T0_NS, T0_NS + 3600 * S, 60),
        _q("PV-1", "p_in_kpa", T0_NS + 3600 * S, T0_NS + 7200 * S, 60),
    ):
        assert await stores.rolled.query(q) == []


async def test_install_rollups_is_idempotent_and_updates_retention(stores: Stores) -> None:
    await install_rollups(stores.rolled, raw_retention="52w")
    await install_rollups(stores.rolled, raw_retention="52w")
    changed = (Rollup(60, retention="4w", late="30m"), ROLLUP_1H)
    await install_rollups(stores.rolled, changed)
    db = quote_ident(stores.database)
    policies = stores.server.query(f"SHOW RETENTION POLICIES ON {db}")["results"][0]
    durations = {row[0]: row[1] for row in policies["series"][0]["values"]}
    assert durations == {"autogen": "8736h0m0s", "rp_1m": "672h0m0s", "rp_1h": "0s"}
    shown = stores.server.query("SHOW CONTINUOUS QUERIES")["results"][0]["series"]
    ours = {row[0]: row[1] for s in shown if s["name"] == stores.database for row in s["values"]}
    assert set(ours) == {"cq_1m", "cq_1h"}
    assert "RESAMPLE EVERY 1m FOR 30m" in ours["cq_1m"]
    assert "GROUP BY time(1h), *" in ours["cq_1h"]


def test_rollup_choice_takes_the_widest_that_divides_the_bucket() -> None:
    store = InfluxStore(url="http://127.0.0.1:1", token=None, org="o", bucket="b",
                        rollups=DEFAULT_ROLLUPS)  # fmt: skip
    chosen = {
        every: (r.label if (r := store._rollup_for(_q("d", "f", 0, 1, every))) else None)
        for every in (0, 30, 60, 90, 120, 3600, 5400, 7200, 86_400)
    }
    assert chosen == {
        0: None, 30: None, 60: "1m", 90: None, 120: "1m",
        3600: "1h", 5400: "1m", 7200: "1h", 86_400: "1h",
    }  # fmt: skip


@pytest.mark.parametrize("bad", ["13 weeks", "90d; DROP DATABASE x", "", "-1d", "1y"])
def test_rollup_refuses_durations_influxql_cannot_take(bad: str) -> None:
    with pytest.raises(ConfigError):
        Rollup(60, retention=bad)
    with pytest.raises(ConfigError):
        Rollup(60, late=bad)
    with pytest.raises(ConfigError):
        install_statements("db", raw_retention=bad)


def test_install_statements_quote_names() -> None:
    statements = install_statements('we"ird', (ROLLUP_1M,))
    assert statements[0] == (
        'CREATE RETENTION POLICY "rp_1m" ON "we\\"ird" DURATION 13w REPLICATION 1'
    )
    assert 'INTO "we\\"ird"."rp_1m".:MEASUREMENT FROM "we\\"ird"."autogen"./.*/' in statements[1]
