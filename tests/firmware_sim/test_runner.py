"""Publishing a simulated fleet to real brokers: Mosquitto (MQTT 5 and 3.1.1) and amqtt."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiomqtt
import pytest

from firmware_sim import (
    ConnectFailed,
    Fleet,
    FleetSpec,
    MqttPublisher,
    OutgoingMessage,
    SimReport,
    run_simulation,
)
from sealscope.registry import Device
from sealscope.topics import device_filter, device_topic, parse_device_topic
from sealscope.wire import decode_state, decode_telemetry

pytestmark = pytest.mark.integration

_PROTOCOLS = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}
_WAIT_S = 30.0


class RecordingRegistry:
    """In-memory stand-in for the DeviceRegistry port; remembers what was upserted."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}

    def upsert_many(self, devices: Iterable[Device]) -> int:
        batch = list(devices)
        self.devices.update((d.device_id, d) for d in batch)
        return len(batch)


@contextlib.asynccontextmanager
async def _subscriber(
    host: str, port: int, protocol: str, topic_filter: str
) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        host, port, protocol=_PROTOCOLS[protocol], identifier=f"test-sub-{uuid.uuid4().hex[:8]}"
    ) as client:
        await client.subscribe(topic_filter, qos=1)
        yield client


async def _count_until_sentinel(
    client: aiomqtt.Client, ours: set[str], sentinel: str
) -> dict[str, int]:
    """Telemetry messages per device of ours, up to the sentinel device's message.

    Every simulator message was acknowledged before the sentinel was published on a later
    connection, so the broker has routed them all to us before it.
    """
    counts = dict.fromkeys(ours, 0)
    async with asyncio.timeout(_WAIT_S):
        async for message in client.messages:
            device_id = parse_device_topic(message.topic.value).device_id
            if device_id == sentinel:
                return counts
            if device_id in ours:
                assert isinstance(message.payload, bytes)
                decode_telemetry(message.payload, device_id=device_id)
                counts[device_id] += 1
    raise AssertionError("subscription ended before the sentinel")


async def _publish_sentinel(host: str, port: int, protocol: Any, device_id: str) -> None:
    async with MqttPublisher(host=host, port=port, protocol=protocol) as publisher:
        topic = device_topic(device_id, "telemetry")
        result = await publisher.publish_many([OutgoingMessage(topic, b"{}")])
        assert result.acked == 1


async def _run_and_count(
    host: str, port: int, protocol: Any, fleet: Fleet, **kwargs: Any
) -> tuple[SimReport, dict[str, int]]:
    sentinel = f"ZZTEST-{uuid.uuid4().hex[:10]}"
    async with _subscriber(host, port, protocol, device_filter("telemetry")) as sub:
        report = await run_simulation(
            host=host, port=port, fleet=fleet, protocol=protocol, **kwargs
        )
        await _publish_sentinel(host, port, protocol, sentinel)
        counts = await _count_until_sentinel(sub, set(fleet.device_ids), sentinel)
    return report, counts


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_run_simulation_subscriber_counts_exactly_the_reported_messages(
    mosquitto: Any, protocol: str
) -> None:
    fleet = Fleet(FleetSpec(devices=300, seed=int(uuid.uuid4().int % 10_000)))
    registry = RecordingRegistry()
    report, counts = await _run_and_count(
        mosquitto.host,
        mosquitto.port,
        protocol,
        fleet,
        uplinks=4,
        interval_s=0,
        registry=registry,
    )
    assert set(registry.devices) == set(fleet.device_ids)
    assert report.rounds == 4 and report.refused == 0
    assert report.messages_acked == 4 * 300
    assert report.samples_acked == 4 * 300 * fleet.spec.samples_per_uplink
    assert report.state_messages_acked == 300
    assert counts == report.device_messages == dict.fromkeys(fleet.device_ids, 4)
    assert sum(t.is_degrading for t in report.truth) == round(
        sum(d.kind == "valve" for d in fleet.devices) * fleet.spec.degrading_share
    )
    assert "telemetry acknowledged: 1200 messages" in report.summary()


async def test_run_simulation_leaves_retained_state_per_device(mosquitto: Any) -> None:
    fleet = Fleet(FleetSpec(devices=50, seed=int(uuid.uuid4().int % 10_000)))
    await run_simulation(
        host=mosquitto.host, port=mosquitto.port, fleet=fleet, uplinks=1, interval_s=0
    )
    ours, seen = set(fleet.device_ids), set()
    # Subscribing after the run: only retained messages can arrive.
    async with _subscriber(mosquitto.host, mosquitto.port, "5", device_filter("state")) as sub:
        async with asyncio.timeout(_WAIT_S):
            async for message in sub.messages:
                device_id = parse_device_topic(message.topic.value).device_id
                if device_id in ours:
                    assert message.retain and isinstance(message.payload, bytes)
                    decode_state(message.payload, device_id=device_id)
                    seen.add(device_id)
                if seen == ours:
                    break


async def test_run_simulation_until_stop_and_paced(mosquitto: Any) -> None:
    fleet = Fleet(FleetSpec(devices=20, seed=1))
    stop = asyncio.Event()
    rounds_seen: list[int] = []

    def progress(report: SimReport) -> None:
        rounds_seen.append(report.rounds)
        if report.rounds == 3:
            stop.set()

    report = await run_simulation(
        host=mosquitto.host,
        port=mosquitto.port,
        fleet=fleet,
        uplinks=None,
        interval_s=0.1,
        stop=stop,
        progress=progress,
    )
    assert rounds_seen == [1, 2, 3] and report.rounds == 3
    assert report.elapsed_s >= 0.2  # three rounds on a 0.1 s grid
    assert fleet.uplinks_done == 3


async def test_run_simulation_refuses_endless_run_without_stop() -> None:
    with pytest.raises(ValueError, match="stop"):
        await run_simulation(
            host="127.0.0.1", port=1, fleet=Fleet(FleetSpec(devices=1)), uplinks=None, interval_s=0
        )


async def test_publisher_authenticates_and_reports_bad_credentials(
    fresh_mosquitto: Callable[..., Any],
) -> None:
    broker = fresh_mosquitto(users={"sim": "s3cret-sim-pw"})
    fleet = Fleet(FleetSpec(devices=10, seed=4))
    report = await run_simulation(
        host=broker.host,
        port=broker.port,
        fleet=fleet,
        uplinks=2,
        interval_s=0,
        username="sim",
        password="s3cret-sim-pw",
        protocol="3.1.1",
    )
    assert report.messages_acked == 20
    for protocol in ("5", "3.1.1"):
        with pytest.raises(ConnectFailed) as info:
            async with MqttPublisher(
                host=broker.host,
                port=broker.port,
                username="sim",
                password="wrong",
                protocol=protocol,  # type: ignore[arg-type]
            ):
                pass
        assert info.value.reason


async def test_publisher_does_not_count_publishes_the_broker_refused(
    fresh_mosquitto: Callable[..., Any],
) -> None:
    # MQTT 5 PUBACKs carry a reason code; the ACL lets this user write state, not telemetry.
    broker = fresh_mosquitto(
        users={"sim": "s3cret-sim-pw"},
        acl_lines=["user sim", "topic write sealscope/v1/dev/+/state"],
    )
    fleet = Fleet(FleetSpec(devices=10, seed=4))
    report = await run_simulation(
        host=broker.host,
        port=broker.port,
        fleet=fleet,
        uplinks=2,
        interval_s=0,
        username="sim",
        password="s3cret-sim-pw",
        protocol="5",
    )
    assert report.state_messages_acked == 10
    assert report.messages_acked == 0 and report.samples_acked == 0
    assert report.refused == 20
    assert set(report.device_messages.values()) == {0}


async def test_publisher_connect_failure_is_translated() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(ConnectFailed):
            async with MqttPublisher(host="127.0.0.1", port=port):
                pass
