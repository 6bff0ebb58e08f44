"""The ingest service against a real Mosquitto and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics import DetectionService
from composition.servers import MosquittoServer
from ingest import IngestService
from sealscope.alerts import SqliteAlertStore
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage.influxdb import InfluxStore
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.storage.sqlite import SqliteTelemetryStore
from tests.ingest.conftest import (
    INGEST_START_S,
    ingest_process,
    ingest_settings,
    telemetry_rows,
)
from tests.ingest.streams import T0, Stream, fleet, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _influx_settings(influx: Any) -> dict[str, object]:
    return {
        "store": "influxdb",
        "influx_url": influx.write_url,
        "influx_token": influx.token,
        "influx_org": influx.org,
        "influx_bucket": influx.bucket,
    }


async def test_ingest_stores_every_sample_and_dead_letters_the_rest(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(5)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=200)
    settings = ingest_settings(tmp_path, broker)
    bad = [
        ("sealscope/v1/dev/TST-V-0001/telemetry", b'{"v": 1, "seq": 1, "samples": [{"t": "x"}]}'),
        ("sealscope/v1/dev/TST-V-0002/telemetry", b'{"v": 7, "seq": 1, "blob": true}'),
        ("sealscope/v1/dev/NOBODY-1/telemetry", next(iter(stream.payloads()))[1]),
    ]
    messages = list(stream.payloads())
    messages[100:100] = bad  # in the middle of the stream
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, messages, client_id="pub-1"
            )
            await wait_until(
                lambda: (
                    telemetry_rows(settings.telemetry_db)[0] == stream.points and dead.count() == 3
                ),
                30,
                "all points stored and three dead letters",
            )
        rows, p_sum = telemetry_rows(settings.telemetry_db)
        assert rows == stream.points
        assert p_sum == pytest.approx(stream.p_in_sum)
        letters = {d.code: d for d in dead.list()}
        assert set(letters) == {"malformed", "unknown_version", "unknown_device"}
        assert letters["malformed"].payload == bad[0][1]
        assert "samples[0].t" in letters["malformed"].reason
        assert letters["unknown_device"].device_id == "NOBODY-1"
        assert ingest.stats.acked == len(messages)
    finally:
        await store.close()
        dead.close()


async def test_ingest_keeps_its_session_across_a_broker_restart(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(3)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=600)
    messages = list(stream.payloads())
    settings = ingest_settings(tmp_path, broker)
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, messages[:300], client_id="pub-a"
            )
            await asyncio.to_thread(broker.restart)
            # published while ingest is still reconnecting: the broker queues them
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, messages[300:], client_id="pub-b"
            )
            await wait_until(
                lambda: telemetry_rows(settings.telemetry_db)[0] == stream.points,
                30,
                "every point after the broker restart",
            )
        assert telemetry_rows(settings.telemetry_db)[1] == pytest.approx(stream.p_in_sum)
        assert dead.count() == 0
    finally:
        await store.close()
        dead.close()


async def test_ingest_killed_with_sigkill_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(20)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=3000)
    settings = ingest_settings(tmp_path, broker)
    log = tmp_path / "ingest.log"
    proc = ingest_process(settings, log)
    killed = threading.Event()

    def kill_midway(i: int) -> None:
        # once a third is out and some of it is stored, crash the ingest
        if i == 1000:
            deadline = 30.0
            while telemetry_rows(settings.telemetry_db)[0] == 0 and deadline > 0:
                threading.Event().wait(0.05)
                deadline -= 0.05
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.set()

    try:
        # the ingest's persistent session must exist before we publish
        await wait_until(
            lambda: "subscribed to" in log.read_text(), INGEST_START_S, "ingest subscribed"
        )
        await asyncio.to_thread(
            publish_all,
            broker.host,
            broker.port,
            stream.payloads(),
            client_id="pub-k",
            between=kill_midway,
        )
        assert killed.is_set()
        stored_at_kill = telemetry_rows(settings.telemetry_db)[0]
        assert 0 < stored_at_kill < stream.points
        proc = ingest_process(settings, log)
        await wait_until(
            lambda: telemetry_rows(settings.telemetry_db)[0] == stream.points,
            60,
            "every point after the restart",
        )
        rows, p_sum = telemetry_rows(settings.telemetry_db)
        assert rows == stream.points
        assert p_sum == pytest.approx(stream.p_in_sum)
        dead = SqliteDeadLetterStore(settings.state_db)
        assert dead.count() == 0
        dead.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert "stopped" in log.read_text()


def test_stream_values_are_distinct() -> None:
    # the exact-sum assertions above only mean something if no two points coincide
    stream = Stream(fleet(2), messages=10, samples=3)
    seen = set()
    for topic, payload in stream.payloads():
        for s in json.loads(payload)["samples"]:
            seen.add((topic, s["t"]))
    assert len(seen) == stream.points


async def test_ingest_rides_out_an_influxdb_outage_with_backpressure_and_loses_nothing(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    fresh_influx: Callable[..., Any],
) -> None:
    influx = fresh_influx()
    devices = fleet(10)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=3000)
    settings = ingest_settings(
        tmp_path, broker, **_influx_settings(influx), spool_max_bytes=1 << 20
    )
    store = InfluxStore.from_settings(settings)
    dead = SqliteDeadLetterStore(settings.state_db)

    def stored() -> int:
        result = influx.server.query('SELECT count("p_in_kpa") FROM "valve"', db=influx.database)
        series = result["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead, inbox_max=200
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            await asyncio.to_thread(influx.server.stop)
            publisher = asyncio.create_task(
                asyncio.to_thread(
                    publish_all, broker.host, broker.port, stream.payloads(), client_id="pub-o"
                )
            )
            await wait_until(lambda: ingest.spool.is_full(), 30, "the spool to fill")
            await wait_until(lambda: ingest.stats.backpressure_waits > 0, 30, "back-pressure")
            # bounded: at most one message over the limit
            assert ingest.spool.used_bytes() < settings.spool_max_bytes + 4096
            assert ingest.stats.store_retries > 0
            assert ingest.stats.received < stream.messages  # the broker holds the rest
            await asyncio.to_thread(influx.server.start)
            await publisher
            await wait_until(lambda: stored() == stream.points, 60, "every point in InfluxDB")
        assert dead.count() == 0
        total = influx.server.query('SELECT sum("p_in_kpa") FROM "valve"', db=influx.database)
        assert total["results"][0]["series"][0]["values"][0][1] == pytest.approx(stream.p_in_sum)
    finally:
        await store.close()
        dead.close()


async def test_ingest_flushes_batches_by_size_and_by_age(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(4)
    registry.upsert_many(devices)
    settings = ingest_settings(tmp_path, broker, batch_max_points=60, batch_max_age_s=0.3)
    store = MemoryTelemetryStore()
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            big = Stream(devices, messages=100)  # 1200 points: must go in several batches
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, big.payloads(), client_id="pub-s"
            )
            await wait_until(lambda: len(store.points) == big.points, 30, "all points")
            assert len(store.batch_sizes) >= big.points // (60 + 12)
            # a batch closes once it holds the size limit; one message may push it over
            assert max(store.batch_sizes) < 60 + big.samples * 10
            before = len(store.batch_sizes)
            # one lone message is written by age, well below the size limit
            lone = Stream(fleet(1), messages=1)
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, lone.payloads(), client_id="pub-l"
            )
            await wait_until(lambda: len(store.batch_sizes) == before + 1, 10, "an age flush")
            assert store.batch_sizes[-1] == lone.points
    finally:
        dead.close()


async def test_ingest_store_rejected_messages_are_not_counted_or_detected(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    fresh_influx: Callable[..., Any],
) -> None:
    influx = fresh_influx()
    valves = fleet(4)
    pump = Device("TST-P-0001", "pump", "TST", "CP-80", site="site-a", region="test")
    registry.upsert_many([*valves, pump])
    stream = Stream([*valves, pump], messages=50)  # every fifth message is the pump's
    pump_messages = stream.messages // 5
    valve_points = stream.points - pump_messages * stream.samples
    # InfluxDB 1.x fixes a field's type per shard: an integer p_in_kpa in "pump" makes the
    # store refuse every pump point (400) while valve points go in
    influx.server.write_lines(influx.database, f"pump,device_id=SEED p_in_kpa=1i {T0 * 10**9}")
    settings = ingest_settings(tmp_path, broker, **_influx_settings(influx))
    store = InfluxStore.from_settings(settings)
    dead = SqliteDeadLetterStore(settings.state_db)
    alerts = SqliteAlertStore(settings.state_db)
    detection = DetectionService(alerts=alerts, state_path=None)

    def stored(measurement: str) -> int:
        result = influx.server.query(
            f'SELECT count("p_in_kpa") FROM "{measurement}" WHERE "device_id" =~ /^TST-/',
            db=influx.database,
        )
        series = result["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0

    try:
        async with IngestService(
            settings=settings,
            store=store,
            registry=registry,
            dead_letters=dead,
            detection=detection,
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, stream.payloads(), client_id="pub-r"
            )
            await wait_until(
                lambda: dead.count() == pump_messages and ingest.stats.processed == 50,
                30,
                "every pump message dead-lettered",
            )
            assert await ingest.wait_stored(30)
        assert stored("valve") == valve_points
        assert stored("pump") == 0
        letters = dead.list()
        assert {(d.code, d.device_id) for d in letters} == {("store_rejected", pump.device_id)}
        assert "field type conflict" in letters[0].reason
        assert ingest.stats.points_stored == valve_points
        assert detection.slot(pump.device_id) is None
        assert detection.counters["samples_observed"] == valve_points
    finally:
        await store.close()
        dead.close()
        alerts.close()
