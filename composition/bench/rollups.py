"""Dashboard reads on raw data vs the 1-minute and 1-hour rollups, on a real InfluxDB 1.6.

Loads ``devices`` valves into an influxd started here: a month at ``month_step_s`` and,
over its last day, ``day_step_s`` (finer, as a fleet reporting often sends), two fields.
Rolls the month up the way the continuous queries would (``backfill``, a day at a time),
then times, per field, raw against rollup:

* the API path: one ``InfluxStore.query`` per device, one after another (what the web
  page does for a fleet view), for a day at ``every=1m`` and a month at ``every=1h``;
* the Grafana path: one InfluxQL statement over all devices grouped by ``device_id``.

Each figure is the best of ``rounds`` runs. Prints figures; asserts only that rollup and
raw agree.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from composition.bench.influxdb import InfluxServer
from sealscope.storage import TelemetryQuery
from sealscope.storage.influxdb import InfluxStore, quote_ident
from sealscope.storage.rollups import DEFAULT_ROLLUPS, backfill, install_rollups

__all__ = ["run_bench_rollups"]

S = 1_000_000_000
DAY_S = 86_400
FIELDS = ("p_in_kpa", "leak_mm3s")
_DB = "bench"


def _load(server: InfluxServer, devices: int, start_ns: int, stop_ns: int, step_s: int) -> int:
    rng = np.random.default_rng(step_s)
    times = np.arange(start_ns, stop_ns, step_s * S)
    written = 0
    for d in range(devices):
        prefix = f"valve,device_id=BV-{d:05d},model=BV-50,site=s{d % 7} "
        p_kpa = 400 + np.cumsum(rng.normal(0, 0.5, times.size))
        leak = np.abs(rng.normal(3, 1, times.size))
        for lo in range(0, times.size, 50_000):
            sl = slice(lo, lo + 50_000)
            lines = [
                f"{prefix}p_in_kpa={p:.4f},leak_mm3s={v:.4f} {t}"
                for t, p, v in zip(
                    times[sl].tolist(), p_kpa[sl].tolist(), leak[sl].tolist(), strict=True
                )
            ]
            server.write_lines(_DB, "\n".join(lines))
            written += len(lines)
    return written


async def _best_s(rounds: int, run: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = await run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _grafana_statement(field: str, start_ns: int, stop_ns: int, every_s: int, rp: str) -> str:
    where = f"WHERE time >= {start_ns} AND time < {stop_ns}"
    group = f"GROUP BY time({every_s}s), {quote_ident('device_id')} fill(none)"
    if rp == "autogen":
        return f"SELECT mean({quote_ident(field)}) FROM {quote_ident('valve')} {where} {group}"
    source = ".".join(map(quote_ident, (_DB, rp, "valve")))
    total, count = quote_ident("sum_" + field), quote_ident("count_" + field)
    if rp == f"rp_{every_s // 60}m" or rp == f"rp_{every_s // 3600}h":
        # the rollup's own width: its buckets as stored, no aggregation
        return f"SELECT {total} / {count} FROM {source} {where} GROUP BY {quote_ident('device_id')}"
    return f"SELECT sum({total}) / sum({count}) FROM {source} {where} {group}"


def _agree(a: list[list[tuple[int, float]]], b: list[list[tuple[int, float]]]) -> None:
    for x, y in zip(a, b, strict=True):
        if [t for t, _ in x] != [t for t, _ in y] or not all(
            math.isclose(u, v, rel_tol=1e-9) for (_, u), (_, v) in zip(x, y, strict=True)
        ):
            raise AssertionError("rollup and raw means differ")


async def _measure(
    server: InfluxServer, devices: int, now_ns: int, rounds: int
) -> list[tuple[str, float, float]]:
    raw = InfluxStore(url=server.url, token=None, org="o", bucket=_DB, timeout_s=300)
    rolled = InfluxStore(
        url=server.url, token=None, org="o", bucket=_DB, rollups=DEFAULT_ROLLUPS, timeout_s=300
    )
    figures = []
    try:
        for label, span_s, every_s in (
            ("day, every 1m", DAY_S, 60),
            ("month, every 1h", 30 * DAY_S, 3600),
        ):
            start_ns, stop_ns = now_ns - span_s * S, now_ns
            for field in FIELDS:
                queries = [
                    TelemetryQuery(
                        f"BV-{d:05d}", "valve", field, start_ns, stop_ns, every_s, 100_000
                    )
                    for d in range(devices)
                ]

                async def each(store: InfluxStore, qs: list[TelemetryQuery] = queries) -> list:
                    return [await store.query(q) for q in qs]

                raw_s, raw_rows = await _best_s(rounds, lambda: each(raw))
                rolled_s, rolled_rows = await _best_s(rounds, lambda: each(rolled))
                _agree(rolled_rows, raw_rows)  # type: ignore[arg-type]
                figures.append((f"API {label}, {devices} devices, {field}", raw_s, rolled_s))

                rp = "rp_1m" if every_s == 60 else "rp_1h"
                raw_q = _grafana_statement(field, start_ns, stop_ns, every_s, "autogen")
                rolled_q = _grafana_statement(field, start_ns, stop_ns, every_s, rp)
                raw_s, _ = await _best_s(rounds, lambda: raw._get_query(raw_q))  # noqa: B023
                rolled_s, _ = await _best_s(rounds, lambda: raw._get_query(rolled_q))  # noqa: B023
                figures.append((f"Grafana {label}, {devices} devices, {field}", raw_s, rolled_s))
    finally:
        await raw.close()
        await rolled.close()
    return figures


def run_bench_rollups(
    devices: int = 100,
    *,
    month_step_s: int = 60,
    day_step_s: int = 10,
    rounds: int = 3,
    workdir: Path | None = None,
) -> list[tuple[str, float, float]]:
    """Returns and prints (what, raw seconds, rollup seconds) per read."""
    with tempfile.TemporaryDirectory(prefix="bench-rollups-") as tmp:
        server = InfluxServer(workdir=workdir or Path(tmp))
        server.start()
        try:
            server.create_database(_DB)
            # whole minutes up to now, so the rollup covers all of it and ranges align
            now_ns = time.time_ns() // (60 * S) * (60 * S)
            t0 = time.perf_counter()
            n = _load(server, devices, now_ns - 30 * DAY_S * S, now_ns - DAY_S * S, month_step_s)
            n += _load(server, devices, now_ns - DAY_S * S, now_ns, day_step_s)
            print(f"loaded {n:,} points ({len(FIELDS)} fields) in {time.perf_counter() - t0:.1f} s")
            return asyncio.run(_rollup_and_measure(server, devices, now_ns, rounds))
        finally:
            server.stop()


async def _rollup_and_measure(
    server: InfluxServer, devices: int, now_ns: int, rounds: int
) -> list[tuple[str, float, float]]:
    store = InfluxStore(url=server.url, token=None, org="o", bucket=_DB, timeout_s=600)
    try:
        await install_rollups(store)
        t0 = time.perf_counter()
        written = 0
        for rollup in DEFAULT_ROLLUPS:
            for day in range(30, 0, -1):
                lo = now_ns - day * DAY_S * S
                written += await backfill(store, rollup, lo, lo + DAY_S * S)
        print(f"rolled up {written:,} points in {time.perf_counter() - t0:.1f} s")
    finally:
        await store.close()
    figures = await _measure(server, devices, now_ns, rounds)
    print(f"{'read (best of ' + str(rounds) + ')':52} {'raw s':>8} {'rollup s':>9} {'x':>6}")
    for what, raw_s, rolled_s in figures:
        print(f"{what:52} {raw_s:8.3f} {rolled_s:9.3f} {raw_s / rolled_s:6.1f}")
    return figures
