"""Simulator -> Mosquitto -> ingest -> store -> API, on both storage paths, values compared
one by one; a malformed message in the middle goes to the dead-letter store alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from composition.admin import create_admin_key
from composition.runtime import run_api, run_ingest
from composition.servers import MosquittoServer, free_port
from firmware_sim import Fleet, FleetSpec, run_simulation
from sealscope.config import Settings
from sealscope.registry import SqliteDeviceRegistry
from tests.ingest.streams import publish_all

pytestmark = pytest.mark.e2e

SPEC = FleetSpec(devices=8, seed=11, degrading_share=0.5, start_t=1_790_000_000.0)
ROUNDS = 50


def _expected() -> dict[str, list[tuple[int, float]]]:
    """What the twin of the published fleet said, per device: (t_ms, p_in_kpa)."""
    twin = Fleet(SPEC)
    out: dict[str, list[tuple[int, float]]] = {d: [] for d in twin.device_ids}
    for _ in range(ROUNDS):
        for uplink in twin.next_uplinks():
            for s in uplink.telemetry.samples:
                if s.p_in_kpa is not None:
                    out[uplink.device_id].append((round(s.t * 1000), s.p_in_kpa))
    return out


@pytest.mark.parametrize("store", ["sqlite", "influxdb"])
async def test_pipeline_returns_exactly_the_published_samples(
    tmp_path: Path,
    store: str,
    fresh_mosquitto: Callable[..., MosquittoServer],
    fresh_influx: Callable[..., Any],
) -> None:
    broker = fresh_mosquitto()
    extra: dict[str, Any] = {}
    if store == "influxdb":
        influx = fresh_influx()
        extra = {
            "influx_url": influx.write_url,
            "influx_token": influx.token,
            "influx_bucket": influx.bucket,
        }
    settings = Settings(
        data_dir=tmp_path / "data",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        store=store,  # type: ignore[arg-type]
        api_port=free_port(),
        batch_max_age_s=0.05,
        **extra,
    )
    settings.data_dir.mkdir(parents=True)
    admin_key = create_admin_key(settings)  # the API answers nobody without a key
    stop = asyncio.Event()
    registry = SqliteDeviceRegistry(settings.state_db)
    fleet = Fleet(SPEC)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_ingest(settings, stop=stop))
        tg.create_task(run_api(settings, stop=stop))
        try:
            api = f"http://127.0.0.1:{settings.api_port}"
            auth = {"Authorization": f"Bearer {admin_key}"}
            async with httpx.AsyncClient(base_url=api, timeout=10, headers=auth) as client:
                await _wait_http(client)
                first = await run_simulation(
                    host=broker.host, port=broker.port, fleet=fleet, uplinks=ROUNDS // 2,
                    interval_s=0, registry=registry,
                )  # fmt: skip
                malformed = b'{"v": 1, "seq": 99, "samples": [{"t": 1790000000, "p_in_kpa": "7"}]}'
                victim = fleet.device_ids[0]
                await asyncio.to_thread(
                    publish_all, broker.host, broker.port,
                    [(f"sealscope/v1/dev/{victim}/telemetry", malformed)], client_id="bad-pub",
                )  # fmt: skip
                second = await run_simulation(
                    host=broker.host, port=broker.port, fleet=fleet,
                    uplinks=ROUNDS - ROUNDS // 2, interval_s=0,
                )  # fmt: skip
                assert first.refused == second.refused == 0
                expected = _expected()
                params = {
                    "field": "p_in_kpa",
                    "start": str(SPEC.start_t - 3600),
                    "stop": str(fleet.now_t + 3600),
                    "limit": "10000",
                }

                async def stored(device_id: str) -> list[tuple[int, float]]:
                    r = await client.get(f"/api/v1/devices/{device_id}/telemetry", params=params)
                    assert r.status_code == 200, r.text
                    return [(p["t_ms"], p["value"]) for p in r.json()["points"]]

                async def all_there() -> bool:
                    for device_id, rows in expected.items():
                        if len(await stored(device_id)) < len(rows):
                            return False
                    return True

                await _wait_async(all_there, 60, "every published sample through the API")
                for device_id, rows in expected.items():
                    assert await stored(device_id) == rows, device_id

                letters = (await client.get("/api/v1/dead-letters")).json()
                assert letters["total"] == 1
                (letter,) = letters["data"]
                assert letter["device_id"] == victim
                assert "samples[0].p_in_kpa" in letter["reason"]

                degrading = {t.device_id for t in fleet.truth() if t.is_degrading}

                async def alerted() -> set[str]:
                    r = await client.get("/api/v1/alerts")
                    return {a["device_id"] for a in r.json()["data"] if a["cause"] == "seat_leak"}

                await _wait_async(lambda: _nonempty(alerted()), 30, "an alert for a degrading seal")
                assert await alerted() <= degrading
        finally:
            stop.set()
    registry.close()


async def _nonempty(result: Any) -> bool:
    return bool(await result)


async def _wait_async(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


async def _wait_http(client: httpx.AsyncClient) -> None:
    async def up() -> bool:
        try:
            return (await client.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await _wait_async(up, 20, "the API")
