"""The NB-IoT path as deployed: simulated devices -> CoAP gateway -> Mosquitto -> ingest ->
SQLite, and a platform's HTTP push through the same gateway, all assembled by the runtime
that ``sealscope gateway``, ``ingest`` and ``sim --transport coap`` use."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from composition.runtime import SimTransport, run_gateway, run_ingest, sim_transport
from composition.servers import MosquittoServer, free_port
from firmware_sim import Delivery, DeviceMessage, Fleet, FleetSpec, run_simulation
from sealscope.config import Settings
from sealscope.registry import Device, SqliteDeviceRegistry
from tests.gateway.fixtures.push_support import ONENET_TOKEN, fixture
from tests.gateway.helpers import free_udp_port

pytestmark = pytest.mark.e2e

ROUNDS = 6


def _stored(db: Path) -> set[tuple[str, int]]:
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT device_id, t_ns FROM telemetry").fetchall()
        except sqlite3.OperationalError:  # not created yet
            return set()
    return {(d, t // 1_000_000) for d, t in rows}


async def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except urllib.error.URLError:
        return 0  # not listening yet


_INGEST_PW = "ingest-pw-7d2e"


def _recording(transport: Any, *, state_points: bool) -> tuple[set[tuple[str, int]], list[int]]:
    """Wrap ``transport.send``: (device, t_ms) of every sample in an acknowledged telemetry
    message (and, with ``state_points``, of a state message's battery reading: the MQTT state
    carries it, the simulator's SenML state does not), and the count of those messages."""
    expected: set[tuple[str, int]] = set()
    acked_messages = [0]
    send = transport.send

    async def recording_send(messages: list[DeviceMessage]) -> Delivery:
        delivery: Delivery = await send(messages)
        for message, acked in zip(messages, delivery.acked, strict=True):
            if not acked:
                continue
            body = json.loads(message.payload)
            if message.kind == "telemetry":
                acked_messages[0] += 1
                for sample in body["samples"]:
                    expected.add((message.device_id, round(sample["t"] * 1000)))
            elif state_points and message.kind == "state" and "battery_v" in body:
                expected.add((message.device_id, round(body["t"] * 1000)))  # stored too
        return delivery

    transport.send = recording_send
    return expected, acked_messages


@pytest.mark.parametrize("carrier", ["coap", "mqtt-device"])
async def test_simulated_nbiot_fleet_reaches_the_store_exactly_once(
    tmp_path: Path, fresh_mosquitto: Callable[..., MosquittoServer], carrier: SimTransport
) -> None:
    # the field profile: NB-IoT radio with losses, retries (duplicates) and wrong clocks
    fleet = Fleet(FleetSpec.field(devices=12, seed=7))
    if carrier == "mqtt-device":
        # each device logs in as itself and may publish only its own topics
        broker = fresh_mosquitto(
            users={**fleet.credentials(), "sealscope-ingest": _INGEST_PW},
            acl_lines=[
                "pattern write sealscope/v1/dev/%u/#",
                "user sealscope-ingest",
                "topic read sealscope/v1/dev/#",
            ],
        )
    else:
        broker = fresh_mosquitto()
    settings = Settings(
        data_dir=tmp_path / "data",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_password=_INGEST_PW if carrier == "mqtt-device" else None,
        batch_max_age_s=0.05,
        coap_host="127.0.0.1",
        coap_port=free_udp_port(),
        push_port=free_port(),
        push_onenet_token=ONENET_TOKEN,
        detect=False,
    )
    settings.data_dir.mkdir(parents=True)
    registry = SqliteDeviceRegistry(settings.state_db)
    # the push fixture's device, registered under the name OneNET knows it by
    registry.add(Device("YJV-DN80-000321", "valve", "Yongjia Valve", "Q41F-16C DN80"))
    transport = sim_transport(
        settings, fleet, carrier, connections=8, downlink=False,
        coap_host="127.0.0.1", coap_port=settings.coap_port,
    )  # fmt: skip
    expected, acked_messages = _recording(transport, state_points=carrier == "mqtt-device")
    stop = asyncio.Event()
    db = settings.telemetry_db
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_ingest(settings, stop=stop))
        if carrier == "coap":
            tg.create_task(run_gateway(settings, stop=stop))
        try:
            push = f"http://127.0.0.1:{settings.push_port}/push/onenet"
            if carrier == "coap":
                await _wait(lambda: _post(push, b"{}") != 0, 10, "the push endpoint")
            report = await run_simulation(
                fleet=fleet, uplinks=ROUNDS, transport=transport, registry=registry
            )
            radio = fleet.counts
            # the far end refused nothing; what it acknowledged is what the report counts,
            # and the radio's losses are reported, not hidden
            assert report.refused == 0
            assert report.messages_acked == acked_messages[0] > 0
            assert report.messages_acked + report.events_acked == (
                radio.messages - radio.messages_lost
            )

            if carrier == "coap":
                # a mis-signed push is refused and stores nothing; a signed one is stored
                body = json.loads(fixture("onenet", "current_property"))
                forged = json.dumps(dict(body, signature="AAAAAAAAAAAAAAAAAAAAAA==")).encode()
                assert await asyncio.to_thread(_post, push, forged) in (401, 403)
                assert await asyncio.to_thread(_post, push, json.dumps(body).encode()) == 200
                expected.add(("YJV-DN80-000321", 1_741_711_021_000))

            await _wait(lambda: _stored(db) >= expected, 60, "every delivered sample stored")
            # a retried (duplicated) uplink is stored once: nothing beyond what was delivered
            assert _stored(db) == expected
        finally:
            stop.set()
    registry.close()
