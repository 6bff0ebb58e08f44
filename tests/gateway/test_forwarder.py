"""Store and forward against a broker of the test's own: outages, restarts, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiocoap
import pytest

from composition.servers import MosquittoServer
from gateway import CanonicalMessage, Forwarder
from sealscope import wire
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.errors import SpoolFull
from tests.gateway.helpers import Received, Subscriber, cbor_pack, device_id, post_uplink
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = 1_718_000_000


def seqs(messages: list[Received]) -> list[int]:
    return [wire.decode_telemetry(m.payload).seq for m in messages]


def first_seen(messages: list[Received]) -> list[int]:
    """Sequence numbers in order of first arrival (QoS 1 may redeliver after an outage)."""
    out: list[int] = []
    for s in seqs(messages):
        if s not in out:
            out.append(s)
    return out


def telemetry(dev: str, seq: int) -> CanonicalMessage:
    body = wire.Telemetry(v=1, seq=seq, samples=[wire.Sample(t=T0 + seq, p_in_kpa=float(seq))])
    return CanonicalMessage(dev, "telemetry", wire.encode(body))


async def test_forwarder_keeps_uplinks_through_a_broker_outage_in_order(
    gateway_factory: Any,
    coap: aiocoap.Context,
    fresh_mosquitto: Callable[..., MosquittoServer],
    subscribe: Callable[..., Subscriber],
) -> None:
    broker = fresh_mosquitto()
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/telemetry", broker)
    async with gateway_factory(server=broker) as gw:
        key = gw.keys.issue(dev)

        async def send(seq: int) -> None:
            raw = cbor_pack(dev, seq, [{"t": T0 + seq, "p_in_kpa": seq}])
            assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED

        for seq in range(10):
            await send(seq)
        await sub.wait_count(10)
        broker.stop()
        for seq in range(10, 40):  # answered from the disk queue while the broker is away
            await send(seq)
        assert gw.forwarder.backlog() > 0
        broker.start()
        for seq in range(40, 45):
            await send(seq)
        await sub.wait_for(lambda m: set(seqs(m)) >= set(range(45)), timeout_s=20)
    assert first_seen(sub.snapshot()) == list(range(45))


async def test_forwarder_backlog_survives_a_gateway_restart(
    gateway_factory: Any,
    coap: aiocoap.Context,
    fresh_mosquitto: Callable[..., MosquittoServer],
    subscribe: Callable[..., Subscriber],
) -> None:
    broker = fresh_mosquitto()
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/telemetry", broker)
    broker.stop()
    async with gateway_factory(server=broker, drain_timeout_s=0.1) as gw:
        key = gw.keys.issue(dev)
        for seq in range(20):
            raw = cbor_pack(dev, seq, [{"t": T0 + seq, "p_in_kpa": seq}])
            assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED
    broker.start()
    async with gateway_factory(server=broker) as gw:
        await sub.wait_for(lambda m: set(seqs(m)) >= set(range(20)), timeout_s=15)
        assert await gw.forwarder.wait_drained(5)
        # the checkpoint is committed a moment after the last PUBACK, not with it
        await wait_until(lambda: gw.forwarder.backlog() == 0, 5, "the checkpoint to catch up")
    assert first_seen(sub.snapshot()) == list(range(20))
    assert len(sub.snapshot()) == 20


async def test_forwarder_dedup_key_is_remembered_across_restarts(
    tmp_path: Path, mosquitto: MosquittoServer, subscribe: Callable[..., Subscriber]
) -> None:
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/telemetry")

    def forwarder() -> Forwarder:
        return Forwarder(
            directory=tmp_path / "spool",
            state_db=tmp_path / "state.db",
            host=mosquitto.host,
            port=mosquitto.port,
        )

    async with forwarder() as fwd:
        assert await fwd.submit([telemetry(dev, 1)], dedup_key="k1")
        assert not await fwd.submit([telemetry(dev, 1)], dedup_key="k1")
        assert await fwd.submit([telemetry(dev, 2)], dedup_key=None)
        assert await fwd.submit([telemetry(dev, 2)], dedup_key=None)  # no key: no dedup
    async with forwarder() as fwd:
        assert not await fwd.submit([telemetry(dev, 1)], dedup_key="k1")
        assert await fwd.submit([telemetry(dev, 3)], dedup_key="k3")
        assert await fwd.wait_drained(5)
    messages = await sub.wait_count(4)
    assert seqs(messages) == [1, 2, 2, 3]


async def test_forwarder_dedup_window_ends(tmp_path: Path, mosquitto: MosquittoServer) -> None:
    now = [1_000.0]
    async with Forwarder(
        directory=tmp_path / "spool",
        state_db=tmp_path / "state.db",
        host=mosquitto.host,
        port=mosquitto.port,
        dedup_window_s=60,
        clock=lambda: now[0],
    ) as fwd:
        dev = device_id()
        assert await fwd.submit([telemetry(dev, 1)], dedup_key="k")
        now[0] += 61
        assert await fwd.submit([telemetry(dev, 1)], dedup_key="k")


async def test_forwarder_full_spool_pushes_back(
    tmp_path: Path, fresh_mosquitto: Callable[..., MosquittoServer]
) -> None:
    broker = fresh_mosquitto()
    broker.stop()
    async with Forwarder(
        directory=tmp_path / "spool",
        state_db=tmp_path / "state.db",
        host=broker.host,
        port=broker.port,
        max_bytes=4096,
        drain_timeout_s=0.1,
    ) as fwd:
        dev = device_id()
        with pytest.raises(SpoolFull):
            for seq in range(1000):
                await fwd.submit([telemetry(dev, seq)], dedup_key=f"k{seq}")
        assert fwd.backlog() >= 4096


async def test_forwarder_dead_letters_what_the_broker_refuses(
    tmp_path: Path,
    fresh_mosquitto: Callable[..., MosquittoServer],
    subscribe: Callable[..., Subscriber],
) -> None:
    broker = fresh_mosquitto(
        users={"gw": "gw-pass-1", "reader": "reader-pass-1"},
        acl_lines=[
            "user gw",
            "topic write sealscope/v1/dev/+/telemetry",
            "user reader",
            "topic read sealscope/v1/dev/#",
        ],
    )
    dead = SqliteDeadLetterStore(tmp_path / "state.db")
    dev = device_id()
    reader = Subscriber(
        broker.host, broker.port, f"sealscope/v1/dev/{dev}/#", auth=("reader", "reader-pass-1")
    )
    try:
        async with Forwarder(
            directory=tmp_path / "spool",
            state_db=tmp_path / "state.db",
            host=broker.host,
            port=broker.port,
            username="gw",
            password="gw-pass-1",
            dead_letters=dead,
        ) as fwd:
            state = wire.State(v=1, t=T0, fw="1.0")
            assert await fwd.submit(
                [CanonicalMessage(dev, "state", wire.encode(state), retain=True)], dedup_key=None
            )
            assert await fwd.submit([telemetry(dev, 1)], dedup_key=None)
            assert await fwd.wait_drained(5)
            assert fwd.stats.refused == 1 and fwd.stats.published == 1
        (letter,) = dead.list(device_id=dev)
        assert letter.code == "refused_by_broker" and letter.topic.endswith("/state")
        messages = await reader.wait_count(1)
        assert [m.topic for m in messages] == [f"sealscope/v1/dev/{dev}/telemetry"]
    finally:
        reader.close()
        dead.close()
