"""Publishing through amqtt 0.12, the in-process broker of the embedded mode (MQTT 3.1.1 only)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from amqtt.broker import Broker

from firmware_sim import Fleet, FleetSpec, run_simulation
from sealscope.topics import device_filter, parse_device_topic
from sealscope.wire import decode_telemetry

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def amqtt_port() -> AsyncIterator[int]:
    port = _free_port()
    # Plugins named in the config: amqtt deprecates (DeprecationWarning) the entry-point way.
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    yield port
    await broker.shutdown()


async def test_run_simulation_through_amqtt_subscriber_counts_match(amqtt_port: int) -> None:
    fleet = Fleet(FleetSpec(devices=200, seed=9))
    ours = set(fleet.device_ids)
    counts = dict.fromkeys(ours, 0)
    async with aiomqtt.Client(
        "127.0.0.1",
        amqtt_port,
        protocol=aiomqtt.ProtocolVersion.V311,
        identifier=f"test-sub-{uuid.uuid4().hex[:8]}",
    ) as sub:
        await sub.subscribe(device_filter("telemetry"), qos=1)
        report = await run_simulation(
            host="127.0.0.1",
            port=amqtt_port,
            fleet=fleet,
            uplinks=3,
            interval_s=0,
            protocol="3.1.1",
        )
        assert report.messages_acked == 600 and report.refused == 0
        # amqtt is the only publisher here, so the expected total is known exactly.
        received = 0
        async with asyncio.timeout(30):
            async for message in sub.messages:
                device_id = parse_device_topic(message.topic.value).device_id
                assert isinstance(message.payload, bytes)
                decode_telemetry(message.payload, device_id=device_id)
                counts[device_id] += 1
                received += 1
                if received == report.messages_acked:
                    break
    assert counts == report.device_messages == dict.fromkeys(ours, 3)
