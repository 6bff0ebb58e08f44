"""``/metrics`` of a real ingest on a real Mosquitto, scraped over HTTP and parsed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from composition.metrics import ingest_readings
from composition.servers import MosquittoServer, free_port
from ingest import IngestService
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.metrics import ProcessMetrics
from sealscope.registry import SqliteDeviceRegistry
from sealscope.storage.sqlite import SqliteTelemetryStore
from tests.ingest.conftest import ingest_process, ingest_settings, telemetry_rows
from tests.ingest.streams import Stream, fleet, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

MALFORMED = (
    "sealscope/v1/dev/TST-V-0001/telemetry",
    b'{"v": 1, "seq": 1, "samples": [{"t": "x"}]}',
)


def scrape(url: str) -> dict[str, float]:
    """Every sample of the exposition, by name and labels (``name{k=v}``)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


async def test_ingest_metrics_count_received_stored_and_dead_lettered(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(3)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=40)
    messages = list(stream.payloads())
    messages[20:20] = [MALFORMED]
    settings = ingest_settings(tmp_path, broker)
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest:
            metrics = ProcessMetrics()
            metrics.add(*ingest_readings(ingest))
            with metrics.serve("127.0.0.1", 0) as server:
                before = await asyncio.to_thread(scrape, server.url)
                assert before["sealscope_ingest_received_total"] == 0
                assert await asyncio.to_thread(ingest.wait_connected, 10)
                await asyncio.to_thread(
                    publish_all, broker.host, broker.port, messages, client_id="pub-m"
                )
                await wait_until(
                    lambda: (
                        telemetry_rows(settings.telemetry_db)[0] == stream.points
                        and dead.count() == 1
                    ),
                    30,
                    "all points stored and one dead letter",
                )
                after = await asyncio.to_thread(scrape, server.url)
    finally:
        await store.close()
        dead.close()
    n = len(messages)
    assert after["sealscope_ingest_received_total"] == n
    assert after["sealscope_ingest_acknowledged_total"] == n
    assert after["sealscope_ingest_processed_total"] == n
    assert after["sealscope_ingest_points_stored_total"] == stream.points
    assert after["sealscope_ingest_dead_lettered_total"] == 1
    assert after["sealscope_ingest_poison_total"] == 0
    assert after["sealscope_ingest_spool_bytes"] == 0  # everything stored: nothing pending
    assert after["sealscope_ingest_spool_max_bytes"] == settings.spool_max_bytes
    assert after["sealscope_ingest_batch_write_seconds_count"] >= 1
    assert after["sealscope_ingest_batch_write_seconds_sum"] > 0
    assert after["sealscope_ingest_batch_lag_seconds"] > 0
    assert "process_cpu_seconds_total" in after
    assert "sealscope_detector_lag_seconds{partition=local}" not in after  # detection is off


async def test_ingest_process_serves_metrics_on_its_metrics_port(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    devices = fleet(2)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=10)
    settings = ingest_settings(tmp_path, broker)
    port = free_port("127.0.0.1")
    monkeypatch.setenv("SEALSCOPE_METRICS_PORT", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    child = ingest_process(settings, tmp_path / "ingest.log")
    try:

        def up() -> bool:
            with contextlib.suppress(OSError, urllib.error.URLError):
                return "sealscope_ingest_received_total" in scrape(url)
            return False

        await wait_until(up, 30, "the ingest process's metrics endpoint")
        await asyncio.to_thread(
            publish_all, broker.host, broker.port, stream.payloads(), client_id="pub-p"
        )

        def counted() -> bool:
            figures = scrape(url)
            return figures["sealscope_ingest_points_stored_total"] == stream.points

        await wait_until(counted, 30, "the stored points in the process's metrics")
        figures = scrape(url)
        assert figures["sealscope_ingest_received_total"] == stream.messages
        assert figures["sealscope_delivery_attempts_total"] == 0
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    assert child.returncode == 0, (tmp_path / "ingest.log").read_text()
