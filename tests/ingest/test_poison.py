"""Poison messages against a real Mosquitto: nothing a device publishes stops ingest.

Each bad message is dead-lettered exactly once with a reason, and what comes after it is
stored, whether the message raised, nested too deep, killed the process, or is retained and
so comes back on every reconnect.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from pathlib import Path

import paho.mqtt.publish
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import ingest.processing
from composition.servers import MosquittoServer
from ingest import IngestService
from ingest.translate import DeviceCache, translate
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.errors import MessageRejected
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage.sqlite import SqliteTelemetryStore
from tests.ingest.conftest import (
    INGEST_START_S,
    ingest_process,
    ingest_settings,
    telemetry_rows,
)
from tests.ingest.crashing_ingest import MARKER
from tests.ingest.hostile import hostile_payloads
from tests.ingest.streams import T0, Stream, fleet, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

RECURSION_BOMB = b'{"v":1,"seq":1,"samples":[' + b"[" * 1000 + b"]" * 1000 + b"]}"


def _topic(device: Device, kind: str) -> str:
    return f"sealscope/v1/dev/{device.device_id}/{kind}"


def _good(devices: list[Device], n: int) -> list[tuple[str, bytes]]:
    """``n`` one-sample telemetry messages with distinct times and p_in_kpa = 1000 + i."""
    return [
        (
            _topic(devices[i % len(devices)], "telemetry"),
            json.dumps(
                {"v": 1, "seq": i, "samples": [{"t": T0 + i, "p_in_kpa": 1000 + i}]}
            ).encode(),
        )
        for i in range(n)
    ]


async def test_ingest_dead_letters_what_makes_translate_raise_and_carries_on(
    tmp_path: Path,
    broker: MosquittoServer,
    registry: SqliteDeviceRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    devices = fleet(2)
    registry.upsert_many(devices)
    # No input makes the decoders raise anything but MessageRejected any more (fuzzed in
    # tests/core/test_wire.py); a patched translate stands in for the next bug of that kind.
    real = ingest.processing.translate

    def raising(topic: str, payload: bytes, *args: object, **kwargs: object) -> object:
        if payload == b"boom":
            raise RecursionError("maximum recursion depth exceeded while deserializing")
        return real(topic, payload, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.processing, "translate", raising)
    settings = ingest_settings(tmp_path, broker)
    good = _good(devices, 10)
    messages = [*good[:5], (_topic(devices[0], "telemetry"), RECURSION_BOMB)]
    messages += [(_topic(devices[1], "event"), b"boom"), *good[5:]]
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest_:
            assert await asyncio.to_thread(ingest_.wait_connected, 10)
            await asyncio.to_thread(publish_all, broker.host, broker.port, messages, client_id="p1")
            await wait_until(
                lambda: telemetry_rows(settings.telemetry_db)[0] == 10 and dead.count() == 2,
                30,
                "ten points stored and two dead letters",
            )
        letters = {d.code: d for d in dead.list()}
        assert letters["malformed"].reason == "nesting deeper than 8"
        assert letters["malformed"].payload == RECURSION_BOMB
        assert letters["poison"].reason == (
            "RecursionError: maximum recursion depth exceeded while deserializing"
        )
        assert letters["poison"].device_id == devices[1].device_id
        assert (ingest_.stats.dead_letters, ingest_.stats.poison) == (2, 1)
    finally:
        await store.close()
        dead.close()


async def test_ingest_dead_letters_a_message_that_kills_it_after_two_crashes(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(3)
    registry.upsert_many(devices)
    stream = Stream(devices, messages=30)
    poison = (_topic(devices[0], "telemetry"), b'{"v":1,"' + MARKER + b'":1}')
    messages = list(stream.payloads())
    messages[15:15] = [poison]  # good messages on both sides of it
    settings = ingest_settings(tmp_path, broker)
    log = tmp_path / "ingest.log"
    proc = ingest_process(settings, log, module="tests.ingest.crashing_ingest")
    try:
        await wait_until(
            lambda: "subscribed to" in log.read_text(), INGEST_START_S, "ingest subscribed"
        )
        await asyncio.to_thread(publish_all, broker.host, broker.port, messages, client_id="p2")
        for _ in range(2):  # it dies on the poison, and again on its replay
            assert await asyncio.to_thread(proc.wait, INGEST_START_S) == -signal.SIGKILL
            proc = ingest_process(settings, log, module="tests.ingest.crashing_ingest")
        dead = SqliteDeadLetterStore(settings.state_db)
        try:
            await wait_until(
                lambda: (
                    (
                        telemetry_rows(settings.telemetry_db)[0] == stream.points
                        and dead.count() == 1
                    )
                    or proc.poll() is not None
                ),
                60,
                "every good point and the poison dead-lettered",
            )
            assert proc.poll() is None, log.read_text()[-3000:]
            (letter,) = dead.list()
        finally:
            dead.close()
        assert (letter.code, letter.reason) == (
            "poison",
            "crashed the ingest during processing (2 times)",
        )
        assert (letter.topic, letter.payload) == poison
        assert letter.device_id == devices[0].device_id
        assert telemetry_rows(settings.telemetry_db)[1] == pytest.approx(stream.p_in_sum)
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-2000:]


async def test_ingest_dead_letters_a_retained_bad_state_once_across_restarts(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(1)
    registry.upsert_many(devices)
    topic = _topic(devices[0], "state")
    await asyncio.to_thread(
        paho.mqtt.publish.single,
        topic,
        RECURSION_BOMB,
        qos=1,
        retain=True,
        hostname=broker.host,
        port=broker.port,
    )
    settings = ingest_settings(tmp_path, broker)
    store = SqliteTelemetryStore(settings.telemetry_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        for run in range(3):
            async with IngestService(
                settings=settings, store=store, registry=registry, dead_letters=dead
            ) as ingest_:
                assert await asyncio.to_thread(ingest_.wait_connected, 10)
                # the broker sends the retained message again on every subscribe
                await wait_until(lambda: ingest_.stats.processed >= 1, 10, "the retained state")
                assert await ingest_.wait_stored(10)
            assert ingest_.stats.dead_letters == (1 if run == 0 else 0)
            assert dead.count() == 1
        (letter,) = dead.list()
        assert (letter.topic, letter.reason) == (topic, "nesting deeper than 8")
    finally:
        await store.close()
        dead.close()


def _draw_hostile(devices: list[Device], n: int) -> list[tuple[str, bytes]]:
    """``n`` hostile (topic, payload) pairs drawn by hypothesis, without repeats."""
    drawn: dict[tuple[str, bytes], None] = {}

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        device=st.sampled_from(devices),
        kind=st.sampled_from(["telemetry", "event", "state"]),
        payload=hostile_payloads,
    )
    def collect(device: Device, kind: str, payload: bytes) -> None:
        drawn[(_topic(device, kind), payload)] = None

    collect()
    return list(drawn)


class _Registry:
    def __init__(self, devices: list[Device]) -> None:
        self.devices = {d.device_id: d for d in devices}

    def get(self, device_id: str) -> Device:
        return self.devices[device_id]


async def test_ingest_survives_hostile_payloads_dead_lettering_each_once(
    tmp_path: Path, broker: MosquittoServer, registry: SqliteDeviceRegistry
) -> None:
    devices = fleet(3)
    registry.upsert_many(devices)
    bad = _draw_hostile(devices, 200)
    cache = DeviceCache(_Registry(devices))  # type: ignore[arg-type]
    for topic, payload in bad:  # every one of them must be refused
        with pytest.raises(MessageRejected):
            translate(topic, payload, cache)
    good = _good(devices, len(bad))
    settings = ingest_settings(tmp_path, broker)
    log = tmp_path / "ingest.log"
    proc = ingest_process(settings, log)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        await wait_until(
            lambda: "subscribed to" in log.read_text(), INGEST_START_S, "ingest subscribed"
        )
        await asyncio.to_thread(publish_all, broker.host, broker.port, bad, client_id="p3")
        await asyncio.to_thread(publish_all, broker.host, broker.port, good, client_id="p4")
        await wait_until(
            lambda: (
                telemetry_rows(settings.telemetry_db)[0] == len(good) or proc.poll() is not None
            ),
            120,
            "every good message stored",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        await wait_until(lambda: dead.count() >= len(bad), 30, "a dead letter per bad input")
        letters = dead.list(limit=10 * len(bad))
        kept = sorted((d.topic, d.payload_sha256) for d in letters)
        assert kept == sorted((t, hashlib.sha256(p).hexdigest()) for t, p in bad)
        assert all(d.reason for d in letters)
        assert telemetry_rows(settings.telemetry_db)[1] == pytest.approx(
            sum(1000 + i for i in range(len(good)))
        )
    finally:
        dead.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-2000:]
