"""The two device transports against real peers, counts reconciled with what a subscriber saw:
each device its own MQTT identity under a per-device ACL, and CoAP through the gateway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from composition.servers import MosquittoServer
from firmware_sim import ConnectFailed, Fleet, FleetSpec, run_simulation
from firmware_sim.device_mqtt import DeviceMqttTransport, DeviceSession
from firmware_sim.transport import DeviceMessage
from sealscope.topics import device_topic, parse_device_topic

pytestmark = pytest.mark.integration

_WAIT_S = 30.0
_ACL = [
    "pattern write sealscope/v1/dev/%u/#",
    "pattern read sealscope/v1/dev/%u/cmd",
    "user observer",
    "topic read sealscope/#",
    "topic write sealscope/v1/dev/+/cmd",
    "topic write sealscope/test/#",
]
_OBSERVER_PW = "observer-pw-4c1f"


@asynccontextmanager
async def _observer(
    server: MosquittoServer, *filters: str, password: str | None = _OBSERVER_PW
) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        server.host,
        server.port,
        username="observer" if password else None,
        password=password,
        identifier=f"observer-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        for f in filters:
            await client.subscribe(f, qos=1)
        yield client


async def _collect_until(
    client: aiomqtt.Client, sentinel_topic: str
) -> list[tuple[str, str, bytes]]:
    """(device id, kind, payload) of every device message before the sentinel."""
    seen = []
    async with asyncio.timeout(_WAIT_S):
        async for message in client.messages:
            topic = message.topic.value
            if topic == sentinel_topic:
                return seen
            where = parse_device_topic(topic)
            assert isinstance(message.payload, bytes)
            seen.append((where.device_id, where.kind, message.payload))
    raise AssertionError("subscription ended before the sentinel")


def _unique(seen: list[tuple[str, str, bytes]]) -> set[tuple[str, str, int]]:
    return {(d, k, json.loads(p)["seq"]) for d, k, p in seen}


async def test_device_identities_publish_under_the_acl_and_counts_reconcile(
    fresh_mosquitto: Callable[..., MosquittoServer],
) -> None:
    fleet = Fleet(FleetSpec.field(devices=40, seed=31, sensor_faults_per_year=20.0))
    creds = fleet.credentials()
    broker = fresh_mosquitto(users={**creds, "observer": _OBSERVER_PW}, acl_lines=_ACL)
    sentinel = f"sealscope/test/{uuid.uuid4().hex[:8]}"
    transport = DeviceMqttTransport(
        host=broker.host, port=broker.port, credentials=creds, connections=8
    )
    async with _observer(
        broker, "sealscope/v1/dev/+/telemetry", "sealscope/v1/dev/+/event", sentinel
    ) as sub:
        report = await run_simulation(fleet=fleet, uplinks=12, transport=transport)
        await sub.publish(sentinel, b"end", qos=1)
        seen = await _collect_until(sub, sentinel)

    radio = fleet.counts
    assert report.refused == 0 and report.state_messages_acked == 40
    # a wake-up per device per round (unless the radio lost all it sent), and one for state
    assert 40 * 13 - fleet.counts.messages_lost <= transport.sessions <= 40 * 13
    # the broker saw exactly the copies the radio delivered, duplicates included
    assert len(seen) == report.copies_published == report.copies_acked == radio.copies_delivered
    assert radio.duplicate_copies > 0
    dupes = sum(n - 1 for n in Counter((d, k, p) for d, k, p in seen).values())
    assert dupes == radio.duplicate_copies
    # ... and every message the devices sent, except those the radio lost entirely
    assert len(_unique(seen)) == report.messages_acked + report.events_acked
    assert len(_unique(seen)) == radio.messages - radio.messages_lost
    assert report.messages_acked == sum(report.device_messages.values())
    assert "radio:" in report.summary() and "messages lost" in report.summary()


async def test_device_identity_cannot_publish_as_another_device(
    fresh_mosquitto: Callable[..., MosquittoServer],
) -> None:
    fleet = Fleet(FleetSpec(devices=3, seed=2))
    creds = fleet.credentials()
    broker = fresh_mosquitto(users=creds, acl_lines=_ACL)
    a, b = fleet.device_ids[:2]
    async with DeviceSession(
        host=broker.host, port=broker.port, device_id=a, password=creds[a]
    ) as session:
        outcome = await session.publish(
            [
                (device_topic(a, "telemetry"), b"{}", False),
                (device_topic(b, "telemetry"), b"{}", False),
            ]
        )
    assert outcome == [None, "Not authorized"]
    transport = DeviceMqttTransport(
        host=broker.host, port=broker.port, credentials={a: "wrong"}, connections=1
    )
    with pytest.raises(ConnectFailed) as info:
        await transport.send([DeviceMessage(a, "telemetry", b"{}")])
    assert info.value.reason.endswith("Not authorized")  # Mosquitto's MQTT 5 answer


async def test_device_identity_receives_its_command_at_the_next_wake_up(
    fresh_mosquitto: Callable[..., MosquittoServer],
) -> None:
    fleet = Fleet(FleetSpec(devices=6, seed=5, wrong_clock_share=1.0))
    creds = fleet.credentials()
    broker = fresh_mosquitto(users={**creds, "observer": _OBSERVER_PW}, acl_lines=_ACL)
    transport = DeviceMqttTransport(
        host=broker.host, port=broker.port, credentials=creds, connections=3, downlink=True
    )
    first = await run_simulation(fleet=fleet, uplinks=1, transport=transport)
    assert first.downlinks_received == 0
    target = fleet.device_ids[4]
    async with _observer(broker) as admin:
        await admin.publish(
            device_topic(target, "cmd"), b'{"id": "c1", "name": "time_sync"}', qos=1
        )
    i = fleet.index_of[target]
    assert abs(fleet.clock_base_s[i]) > 3600
    second = await run_simulation(fleet=fleet, uplinks=1, transport=transport, publish_state=False)
    assert second.downlinks_received == second.downlinks_applied == 1
    assert abs(fleet.clock_base_s[i]) < 1.0


async def test_coap_through_the_gateway_publishes_each_uplink_once(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    gateway = pytest.importorskip("gateway")
    from firmware_sim.coap import CoapTransport
    from tests.gateway.helpers import free_udp_port

    fleet = Fleet(FleetSpec.field(devices=30, seed=41))
    port = free_udp_port()
    sentinel_id = fleet.device_ids[0]
    async with gateway.Gateway(
        data_dir=tmp_path / "gw",
        state_db=tmp_path / "gw" / "sealscope.db",
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        client_id=f"test-gw-{uuid.uuid4().hex[:8]}",
        coap_host="127.0.0.1",
        coap_port=port,
        drain_timeout_s=2.0,
    ) as gw:
        keys = gw.keys.issue_many(fleet.device_ids)
        ours = set(fleet.device_ids)
        async with _observer(
            mosquitto, "sealscope/v1/dev/+/telemetry", "sealscope/v1/dev/+/event", password=None
        ) as sub:
            transport = CoapTransport(host="127.0.0.1", port=port, keys=keys, concurrency=8)
            report = await run_simulation(fleet=fleet, uplinks=8, transport=transport)
            # the gateway forwards in order: once this last uplink is out, all are
            end = {"v": 1, "seq": 4_000_000_000, "t": fleet.now_t, "kind": "tamper"}
            async with transport:
                delivery = await transport.send(
                    [DeviceMessage(sentinel_id, "event", json.dumps(end).encode())]
                )
            assert delivery.acked == [1]
            seen = []
            async with asyncio.timeout(_WAIT_S):
                async for message in sub.messages:
                    where = parse_device_topic(message.topic.value)
                    if where.device_id not in ours:
                        continue
                    assert isinstance(message.payload, bytes)
                    body = json.loads(message.payload)
                    if body.get("seq") == 4_000_000_000:
                        break
                    seen.append((where.device_id, where.kind, body["seq"]))
    radio = fleet.counts
    assert report.refused == 0
    assert radio.duplicate_copies > 0 and report.copies_acked > len(seen)
    # one canonical message per unique uplink: the gateway recognised every radio retry
    assert len(seen) == len(set(seen)) == report.messages_acked + report.events_acked
    assert len(seen) == radio.messages - radio.messages_lost
