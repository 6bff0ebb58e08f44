"""InfluxStore -> v2 shim -> real influxd, and InfluxQL reads back."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from composition.servers import free_port
from sealscope.config import Settings
from sealscope.errors import PointsRejected, StoreUnavailable
from sealscope.storage import Point, Series, TelemetryQuery, TelemetryStore
from sealscope.storage.influxdb import InfluxStore, quote_ident, quote_literal

pytestmark = pytest.mark.integration

T0_NS = 1_700_000_000_000_000_000
_ESCAPE_LIKE = re.compile(r"\\(?=[\\, =]|$)")
S = 1_000_000_000


def store_for(target: Any, **overrides: Any) -> InfluxStore:
    kwargs = {
        "url": target.write_url,
        "token": target.token,
        "org": target.org,
        "bucket": target.bucket,
    }
    return InfluxStore(**{**kwargs, **overrides})


@pytest.fixture
async def store(influx: Any) -> AsyncIterator[InfluxStore]:
    s = store_for(influx)
    yield s
    await s.close()


def series(device_id: str, measurement: str = "valve") -> Series:
    tags = (
        ("device_id", device_id),
        ("model", "BV-50"),
        ("manufacturer", "ACME"),
        ("batch", "L2024-07"),
        ("site", "yongjia-3"),
        ("region", "wenzhou"),
    )
    return Series(measurement=measurement, tags=tags)


def points(device_id: str, n: int, *, measurement: str = "valve") -> list[Point]:
    s = series(device_id, measurement)
    return [Point(s, T0_NS + i * S, {"p_in_kpa": 100.0 + i, "leak_mm3s": i / 10}) for i in range(n)]


def new_device() -> str:
    return f"ACME-{uuid.uuid4().hex[:10]}"


def count(target: Any, device_id: str, measurement: str = "valve") -> int:
    result = target.server.query(
        f'SELECT count("p_in_kpa") FROM {quote_ident(measurement)} '
        f'WHERE "device_id" = {quote_literal(device_id)}',
        target.database,
    )
    rows = result["results"][0].get("series", [])
    return int(rows[0]["values"][0][1]) if rows else 0


def window(device_id: str, **kwargs: Any) -> TelemetryQuery:
    return TelemetryQuery(
        device_id=device_id,
        measurement=kwargs.pop("measurement", "valve"),
        field=kwargs.pop("field", "p_in_kpa"),
        start_ns=T0_NS,
        stop_ns=T0_NS + 3600 * S,
        **kwargs,
    )


async def test_influx_store_is_a_telemetry_store(store: InfluxStore) -> None:
    assert isinstance(store, TelemetryStore)
    assert await store.ping()


async def test_influx_store_raw_query_returns_points_in_time_order(
    store: InfluxStore, influx: Any
) -> None:
    device = new_device()
    written = points(device, 30)
    await store.write(written[15:] + written[:15])  # out of order, as sleepy devices send
    rows = await store.query(window(device))
    assert rows == [(p.t_ns, p.fields["p_in_kpa"]) for p in written]
    assert await store.query(window(device, field="leak_mm3s", limit=3)) == [
        (T0_NS, 0.0),
        (T0_NS + S, 0.1),
        (T0_NS + 2 * S, 0.2),
    ]
    tagged = influx.server.query(
        f'SELECT * FROM "valve" WHERE "device_id" = {quote_literal(device)} LIMIT 1',
        influx.database,
    )["results"][0]["series"][0]
    row = dict(zip(tagged["columns"], tagged["values"][0], strict=True))
    assert row["model"] == "BV-50"
    assert row["batch"] == "L2024-07"
    assert row["region"] == "wenzhou"


async def test_influx_store_downsampled_query_means_per_bucket(store: InfluxStore) -> None:
    device = new_device()
    await store.write(points(device, 30))
    rows = await store.query(window(device, every_s=10))
    # T0 is a multiple of 10 s, so buckets hold 0..9, 10..19, 20..29
    assert rows == [(T0_NS, 104.5), (T0_NS + 10 * S, 114.5), (T0_NS + 20 * S, 124.5)]


async def test_influx_store_window_and_device_bound_the_query(store: InfluxStore) -> None:
    device, other = new_device(), new_device()
    await store.write(points(device, 10) + points(other, 10))
    q = TelemetryQuery(
        device_id=device,
        measurement="valve",
        field="p_in_kpa",
        start_ns=T0_NS + 2 * S,
        stop_ns=T0_NS + 5 * S,
    )
    assert await store.query(q) == [
        (T0_NS + 2 * S, 102.0),
        (T0_NS + 3 * S, 103.0),
        (T0_NS + 4 * S, 104.0),
    ]
    assert await store.query(window(new_device())) == []


async def test_influx_store_same_points_twice_is_one_copy(store: InfluxStore, influx: Any) -> None:
    device = new_device()
    batch = points(device, 25)
    await store.write(batch)
    await store.write(batch)
    assert count(influx, device) == 25


async def test_influx_store_quotes_caller_supplied_names(store: InfluxStore, influx: Any) -> None:
    device = "ACME-q'uo\"te\\" + uuid.uuid4().hex[:6]
    measurement = 'pump "m\\1'
    await store.write(points(device, 3, measurement=measurement))
    assert len(await store.query(window(device, measurement=measurement))) == 3
    # an injection attempt is just a device id that matches nothing
    await store.write(points(new_device(), 3))
    assert await store.query(window("x' OR device_id =~ /.*/ OR '1'='1")) == []


async def test_influx_store_field_type_conflict_is_rejected(
    store: InfluxStore, influx: Any
) -> None:
    device, measurement = new_device(), f"conflict_{uuid.uuid4().hex[:8]}"
    # seed the field as an integer in the same shard (types are per shard in 1.x); the
    # store always writes floats
    influx.server.write_lines(
        influx.database, f"{measurement},device_id={device} p_in_kpa=1i {T0_NS - S}"
    )
    with pytest.raises(PointsRejected) as excinfo:
        await store.write(points(device, 2, measurement=measurement))
    assert excinfo.value.status == 400
    assert "field type conflict" in str(excinfo.value)


async def test_influx_store_influxd_stopped_is_unavailable(
    fresh_influx: Callable[..., Any],
) -> None:
    target = fresh_influx()
    store = store_for(target)
    try:
        device = new_device()
        await store.write(points(device, 2))
        target.server.stop()
        with pytest.raises(StoreUnavailable):
            await store.write(points(device, 2))
        with pytest.raises(StoreUnavailable):
            await store.query(window(device))
        target.shim.stop()
        with pytest.raises(StoreUnavailable):
            await store.write(points(device, 2))
        assert not await store.ping()
    finally:
        await store.close()


async def test_influx_store_wrong_token_is_unavailable_not_rejected(influx: Any) -> None:
    # an auth failure is an operator's problem to fix: the spool must keep the data
    store = store_for(influx, token="not-the-token")
    try:
        with pytest.raises(StoreUnavailable):
            await store.write(points(new_device(), 1))
        with pytest.raises(StoreUnavailable):
            await store.query(window(new_device()))
    finally:
        await store.close()


async def test_influx_store_splits_batches_on_413(fresh_influx: Callable[..., Any]) -> None:
    target = fresh_influx(max_body_size=4000)
    store = store_for(target)
    try:
        device = new_device()
        batch = points(device, 300)  # ~50 kB of line protocol
        await store.write(batch)
        assert count(target, device) == 300
        huge = Point(series("X" * 5000), T0_NS, {"p_in_kpa": 1.0})
        with pytest.raises(PointsRejected) as excinfo:
            await store.write([huge])
        assert excinfo.value.status == 413
    finally:
        await store.close()


@pytest.mark.parametrize(("retry_after", "expected_s"), [("7", 7.0), (None, None)])
@pytest.mark.parametrize("status", [429, 503])
async def test_influx_store_throttled_is_unavailable_with_retry_after(
    status: int, retry_after: str | None, expected_s: float | None
) -> None:
    async def throttled(request: web.Request) -> web.Response:
        headers = {"Retry-After": retry_after} if retry_after else None
        return web.json_response(
            {"code": "too many requests", "message": "slow down"}, status=status, headers=headers
        )

    app = web.Application()
    app.router.add_post("/api/v2/write", throttled)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = InfluxStore(url=f"http://127.0.0.1:{port}", token="t0k3n-x", org="o", bucket="b")
    try:
        with pytest.raises(StoreUnavailable) as excinfo:
            await store.write(points(new_device(), 1))
        assert excinfo.value.retry_after_s == expected_s
    finally:
        await store.close()
        await runner.cleanup()


async def test_influx_store_never_logs_the_token(
    fresh_influx: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = fresh_influx(max_body_size=2000)
    store = store_for(target)
    try:
        await store.write(points(new_device(), 100))  # split on 413, logged at debug
        await store.query(window(new_device(), every_s=60))
        assert await store.ping()
        target.server.stop()
        with pytest.raises(StoreUnavailable) as excinfo:
            await store.write(points(new_device(), 1))
    finally:
        await store.close()
    assert "writing halves" in caplog.text
    for text in (caplog.text, str(excinfo.value), repr(store), repr(target)):
        assert target.token not in text


def test_influx_store_from_settings() -> None:
    settings = Settings(
        store="influxdb",
        influx_url="http://127.0.0.1:9999/",
        influx_token=SecretStr("s3cr3t-value"),
        influx_org="acme",
        influx_bucket="telemetry",
        influx_database="telemetry_v1",
        influx_timeout_s=3.0,
    )
    store = InfluxStore.from_settings(settings)
    assert (store.url, store.org, store.bucket, store.database, store.timeout_s) == (
        "http://127.0.0.1:9999",
        "acme",
        "telemetry",
        "telemetry_v1",
        3.0,
    )
    assert "s3cr3t" not in repr(store)


def _carried() -> st.SearchStrategy[str]:
    """Text line protocol can carry: its separators and any printable character (a backslash
    only where it cannot read as an escape)."""
    chars = st.one_of(
        st.sampled_from(list(",= #\"'\\")), st.characters(exclude_categories=("Cc", "Cs"))
    )
    return st.text(chars, min_size=1, max_size=16).filter(
        lambda t: _ESCAPE_LIKE.search(t) is None and t != "time"
    )


async def _write_and_read(
    target: Any, measurement: str, site: str, field: str, value: float
) -> dict[str, Any]:
    store = store_for(target)
    device = new_device()
    tags = (("device_id", device), ("site", site), ("model", "BV-50"))
    try:
        await store.write([Point(Series(measurement, tags), T0_NS, {field: value})])
    finally:
        await store.close()
    result = target.server.query(
        f"SELECT * FROM {quote_ident(measurement)} WHERE device_id = {quote_literal(device)}",
        target.database,
    )["results"][0]
    assert "error" not in result, result
    [series] = result["series"]
    [row] = series["values"]
    return dict(zip(series["columns"], row, strict=True))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    measurement=_carried().filter(lambda t: not t.startswith("#")),
    site=_carried(),
    field=_carried().filter(lambda t: t not in ("device_id", "site", "model")),
    value=st.floats(allow_nan=False, allow_infinity=False),
)
@example(measurement="valve", site='a, =b "q" 永嘉', field="p in,k=pa", value=-0.0)
@example(measurement="v a,l=ve", site="c:\\x", field="f\\y", value=1.7976931348623157e308)
def test_influx_store_hostile_names_and_tags_round_trip_through_influxdb(
    influx: Any, measurement: str, site: str, field: str, value: float
) -> None:
    row = asyncio.run(_write_and_read(influx, measurement, site, field, value))
    assert row["site"] == site
    assert row["model"] == "BV-50"
    # InfluxDB writes 6.005356164153935e16 as 60053561641539350: read it back as a float
    assert float(row[field]) == value


async def test_influx_store_newline_tag_is_rejected_and_nothing_is_written(
    store: InfluxStore, influx: Any
) -> None:
    device = new_device()
    good = points(device, 3)
    bad = Point(Series("valve", (("device_id", device), ("site", "a\nb"))), T0_NS, {"p_in_kpa": 1})
    with pytest.raises(PointsRejected, match="U\\+000A"):
        await store.write([*good, bad])
    with pytest.raises(PointsRejected, match="not a finite number"):
        await store.write([Point(series(device), T0_NS, {"p_in_kpa": math.nan})])
    assert count(influx, device) == 0
    await store.write(good)  # the rest of the batch is fine on its own
    assert count(influx, device) == 3
