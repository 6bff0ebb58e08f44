"""Ingest with worker processes (``SEALSCOPE_INGEST_WORKERS``) on a real Mosquitto and SQLite:
the same contract as in one process, and any worker killable at any time."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from composition.servers import MosquittoServer
from ingest import IngestService
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import SqliteDeviceRegistry
from sealscope.storage.sqlite import SqliteTelemetryStore
from tests.ingest.conftest import ingest_settings, telemetry_rows
from tests.ingest.streams import Stream, fleet, publish_all
from tests.ingest.worker_deps import MARKER, open_killing_deps, open_sqlite_deps

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_workers_store_every_sample_and_dead_letter_the_rest_once(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(10)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=1500)
    bad = [
        ("sealscope/v1/dev/TST-V-0001/telemetry", b'{"v": 1, "seq": 1, "samples": [{"t": "x"}]}'),
        ("sealscope/v1/dev/NOBODY-1/telemetry", next(iter(stream.payloads()))[1]),
    ]
    messages = list(stream.payloads())
    messages[700:700] = bad
    settings = ingest_settings(tmp_path, broker, ingest_workers=2, batch_max_points=600)
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings,
            store=store,
            registry=registry,
            dead_letters=dead,
            open_worker_deps=open_sqlite_deps,
        ) as ingest:
            assert len(ingest.worker_pids) == 2
            assert await asyncio.to_thread(ingest.wait_connected, 20)
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, messages, client_id="pub-w"
            )
            assert await ingest.wait_stored(60)
            pids = ingest.worker_pids
        rows, p_sum = telemetry_rows(settings.telemetry_db)
        assert rows == stream.points
        assert p_sum == pytest.approx(stream.p_in_sum)
        assert sorted(d.code for d in dead.list()) == ["malformed", "unknown_device"]
        assert ingest.stats.points_stored == stream.points
        assert ingest.stats.processed == len(messages)
        assert ingest.stats.dead_letters == 2
        assert ingest.spool.checkpoint == ingest.spool.end
        assert not any(_alive(p) for p in pids)  # stopped with the service
    finally:
        await store.close()
        dead.close()


async def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(20)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=3000)
    settings = ingest_settings(tmp_path, broker, ingest_workers=2, batch_max_points=600)
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings,
            store=store,
            registry=registry,
            dead_letters=dead,
            open_worker_deps=open_sqlite_deps,
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 20)
            killed: list[int] = []

            def kill_a_worker(i: int) -> None:
                if i in (800, 2000):  # one worker, then the other (its replacement)
                    pid = ingest.worker_pids[len(killed) % 2]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

            await asyncio.to_thread(
                publish_all,
                broker.host,
                broker.port,
                stream.payloads(),
                client_id="pub-wk",
                between=kill_a_worker,
            )
            assert await ingest.wait_stored(90)
            assert ingest.stats.worker_restarts == 2
            assert not set(killed) & set(ingest.worker_pids)
        rows, p_sum = telemetry_rows(settings.telemetry_db)
        assert rows == stream.points
        assert p_sum == pytest.approx(stream.p_in_sum)
        assert dead.count() == 0
    finally:
        await store.close()
        dead.close()


async def test_a_message_that_kills_workers_is_dead_lettered_after_two_crashes(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(3)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=60)
    poison = (f"sealscope/v1/dev/{devices[0].device_id}/telemetry", b'{"v":1,"' + MARKER + b'":1}')
    messages = list(stream.payloads())
    messages[30:30] = [poison]
    settings = ingest_settings(tmp_path, broker, ingest_workers=1)
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings,
            store=store,
            registry=registry,
            dead_letters=dead,
            open_worker_deps=open_killing_deps,
        ) as ingest:
            assert await asyncio.to_thread(ingest.wait_connected, 20)
            await asyncio.to_thread(
                publish_all, broker.host, broker.port, messages, client_id="pub-wp"
            )
            assert await ingest.wait_stored(60)
            assert ingest.stats.worker_restarts == 2
        (letter,) = dead.list()
        assert (letter.code, letter.reason) == (
            "poison",
            "crashed the ingest during processing (2 times)",
        )
        assert (letter.topic, letter.payload) == poison
        rows, p_sum = telemetry_rows(settings.telemetry_db)
        assert rows == stream.points
        assert p_sum == pytest.approx(stream.p_in_sum)
    finally:
        await store.close()
        dead.close()
