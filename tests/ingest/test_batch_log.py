"""Ingest's batch sink: what is stored reaches the NATS batch log once, on its device's
partition, whichever ingest instance stored it (real Mosquitto, SQLite and NATS)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from composition.servers import MosquittoServer
from ingest import IngestService
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import SqliteDeviceRegistry
from sealscope.storage.sqlite import SqliteTelemetryStore
from sealscope.streaming import BatchPublisher, LogConfig, connect, decode_batch, partition_of
from tests.ingest.conftest import ingest_settings, telemetry_rows
from tests.ingest.streams import Stream, fleet, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_two_ingest_instances_put_every_stored_message_on_the_log_once(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    batch_log: LogConfig,
) -> None:
    devices = fleet(8)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=160)
    messages = list(stream.payloads())
    async with contextlib.AsyncExitStack() as stack:
        instances = []
        for name in ("a", "b"):
            settings = ingest_settings(
                tmp_path / name, broker, mqtt_shared_group="ingest", mqtt_client_id=f"in-{name}"
            )
            store = SqliteTelemetryStore(settings.telemetry_db)
            stack.push_async_callback(store.close)
            dead = SqliteDeadLetterStore(settings.state_db)
            stack.callback(dead.close)
            sink = await stack.enter_async_context(BatchPublisher(batch_log))
            ingest = await stack.enter_async_context(
                IngestService(
                    settings=settings, store=store, registry=registry, dead_letters=dead, sink=sink
                )
            )
            assert await asyncio.to_thread(ingest.wait_connected, 10)
            instances.append((settings, ingest, sink))
        # everything twice: the copies land on either instance, stored and logged once
        await asyncio.to_thread(
            publish_all, broker.host, broker.port, messages + messages, client_id="pub"
        )

        def all_stored() -> bool:
            return sum(i.stats.acked for _, i, _ in instances) == 2 * len(messages) and all(
                i.spool.checkpoint == i.spool.end for _, i, _ in instances
            )

        await wait_until(all_stored, 60, "both instances stored what they took")
        assert all(i.stats.acked > 0 for _, i, _ in instances), "the group shared the load"
        stored = [telemetry_rows(s.telemetry_db)[0] for s, _, _ in instances]
        assert sum(stored) >= stream.points
        published = sum(s.stats.published for _, _, s in instances)
        duplicates = sum(s.stats.duplicates for _, _, s in instances)
        assert published == len(messages) and duplicates == len(messages)

    nc = await connect(batch_log.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(batch_log.stream, subjects_filter=">")
        assert info.state.messages == len(messages)
        subjects = info.state.subjects or {}
        expected: dict[str, int] = {}
        for device in devices:
            subject = batch_log.subject_of(partition_of(device.device_id, batch_log.partitions))
            expected[subject] = expected.get(subject, 0) + len(messages) // len(devices)
        assert subjects == expected
        msg = await js.get_msg(batch_log.stream, 1)
        batch = decode_batch(msg.data or b"")
        assert msg.subject == batch_log.subject_of(
            partition_of(batch.device.device_id, batch_log.partitions)
        )
        assert batch.device.device_id in {d.device_id for d in devices}
        assert len(batch.samples) == stream.samples
    finally:
        await nc.close()
