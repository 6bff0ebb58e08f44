"""Crashes around ``sealscope gateway``, on real processes: what a 2.04 is worth.

Twenty devices POST 30 uplinks each over CoAP to ``python -m composition gateway`` and
behave as ``gateway/README.md`` tells them: on a timeout or a 5.xx they resend the same
bytes until a 2.04 comes. Midway the gateway gets SIGKILL and is restarted on the same data
dir and port (or the broker gets SIGKILL and is restarted while the gateway runs). A
persistent-session subscriber on the broker then has to hold every uplink that was ever
answered 2.04, reconciled by device and ``seq``; duplicates (QoS 1 re-sends after the
crash, which the README allows) are counted and printed with the other figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap
import pytest

from composition.servers import MosquittoServer
from composition.servers.process import kill_process, spawn, stop_process
from gateway import SqliteDeviceKeys, load_pepper
from sealscope.config import Settings
from tests.gateway.helpers import Subscriber, cbor_pack, free_udp_port

pytestmark = pytest.mark.integration

DEVICES = 20
UPLINKS_PER_DEVICE = 30
CRASH_AFTER_ACKS = 300  # of the 600, so the crash lands in the middle of the stream
T0 = 1_718_000_000
ATTEMPT_TIMEOUT_S = 2.0  # a device that hears nothing for this long resends
RETRY_PAUSE_S = 0.2
RUN_TIMEOUT_S = 40.0

_READY = "gateway: CoAP on"

Uplink = tuple[str, int]  # (device id, seq)


@dataclass
class Ledger:
    """What the devices were told: every 2.04, and which uplinks needed a resend."""

    acked: set[Uplink] = field(default_factory=set)
    resent: set[Uplink] = field(default_factory=set)
    acked_at_crash: set[Uplink] | None = None
    crash_due: asyncio.Event = field(default_factory=asyncio.Event)

    def answered(self, uplink: Uplink) -> None:
        self.acked.add(uplink)
        if len(self.acked) >= CRASH_AFTER_ACKS:
            self.crash_due.set()


class GatewayProcess:
    """``python -m composition --data-dir D gateway``, started again on the same dir/port."""

    def __init__(self, data_dir: Path, broker: MosquittoServer) -> None:
        self.data_dir = data_dir
        self.coap_port = free_udp_port()
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSCOPE_")}
        self._env.update(
            SEALSCOPE_MQTT_HOST=broker.host,
            SEALSCOPE_MQTT_PORT=str(broker.port),
            SEALSCOPE_GATEWAY_MQTT_CLIENT_ID=f"test-gw-{uuid.uuid4().hex[:8]}",
            SEALSCOPE_COAP_HOST="127.0.0.1",
            SEALSCOPE_COAP_PORT=str(self.coap_port),
            SEALSCOPE_DETECT="false",
        )
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"gateway-{self.starts}.log"

    async def start(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-m", "composition", "--data-dir", str(self.data_dir), "gateway"]
        self.proc = spawn(argv, log_path=self.log_path, env=self._env)
        proc = self.proc
        await _wait(
            lambda: proc.poll() is not None or _READY in self.log_path.read_text(),
            20,
            "the gateway to serve CoAP",
        )
        assert proc.poll() is None, self.log_path.read_text()[-2000:]

    def kill(self) -> None:
        assert self.proc is not None
        kill_process(self.proc)

    def stop(self) -> int | None:
        return stop_process(self.proc) if self.proc is not None else None


async def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def _issue_keys(data_dir: Path, devices: list[str]) -> dict[str, str]:
    """Provisioned before the gateway starts, as ``sealscope keys issue`` does."""
    settings = Settings(data_dir=data_dir)
    data_dir.mkdir(parents=True)
    keys = SqliteDeviceKeys(settings.state_db, pepper=load_pepper(settings.gateway_pepper_path))
    try:
        return keys.issue_many(devices)
    finally:
        keys.close()


def _body(device: str, seq: int) -> bytes:
    return cbor_pack(device, seq, [{"t": T0 + seq, "p_in_kpa": 500 + seq}])


async def _device(coap: aiocoap.Context, port: int, device: str, key: str, ledger: Ledger) -> None:
    """One device: its uplinks in order, each resent (same bytes) until a 2.04."""
    for seq in range(1, UPLINKS_PER_DEVICE + 1):
        body = _body(device, seq)
        while True:
            request = aiocoap.Message(
                code=aiocoap.POST,
                uri=f"coap://127.0.0.1:{port}/u/{device}?k={key}",
                payload=body,
                content_format=112,
            )
            try:
                response = await asyncio.wait_for(coap.request(request).response, ATTEMPT_TIMEOUT_S)
            except (TimeoutError, aiocoap.error.Error):
                response = None  # no answer: the gateway is down or busy
            if response is not None and response.code == aiocoap.CHANGED:
                ledger.answered((device, seq))
                break
            if response is not None and response.code.class_ != 5:
                raise AssertionError(f"{device}/{seq}: {response.code} {response.payload!r}")
            ledger.resent.add((device, seq))
            await asyncio.sleep(RETRY_PAUSE_S)


async def _run_fleet(
    port: int,
    keys: dict[str, str],
    ledger: Ledger,
    crash: Callable[[], Awaitable[None]],
) -> None:
    """All devices at once; ``crash`` runs once CRASH_AFTER_ACKS uplinks were answered,
    while the devices keep sending."""

    async def crash_midway() -> None:
        await ledger.crash_due.wait()
        ledger.acked_at_crash = set(ledger.acked)
        await crash()

    coap = await aiocoap.Context.create_client_context()
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S), asyncio.TaskGroup() as tg:
            tg.create_task(crash_midway())
            for device, key in keys.items():
                tg.create_task(_device(coap, port, device, key, ledger))
    finally:
        await coap.shutdown()


def _copies(sub: Subscriber) -> dict[Uplink, list[bytes]]:
    """Every telemetry payload at the broker, by the uplink it came from."""
    copies: dict[Uplink, list[bytes]] = {}
    for m in sub.snapshot():
        uplink = (m.topic.split("/")[3], json.loads(m.payload)["seq"])
        copies.setdefault(uplink, []).append(m.payload)
    return copies


async def _reconcile(sub: Subscriber, ledger: Ledger, what: str) -> dict[Uplink, list[bytes]]:
    """Wait until every acknowledged uplink reached the subscriber; print the figures."""
    try:
        await _wait(lambda: ledger.acked <= _copies(sub).keys(), 20, "every 2.04 at the broker")
    finally:
        copies = _copies(sub)
        doubled = {u for u, c in copies.items() if len(c) > 1}
        print(
            f"\n{what}: {len(ledger.acked)} uplinks answered 2.04 "
            f"({len(ledger.acked_at_crash or ())} before the crash), "
            f"{len(ledger.resent)} resent by devices, {len(ledger.acked - copies.keys())} lost, "
            f"{sum(len(c) - 1 for c in copies.values())} duplicates at the broker "
            f"({len(doubled & ledger.resent)} of them of resent uplinks)"
        )
    # a duplicate is a copy of the same canonical message, so the idempotent store (series
    # plus event time) collapses it
    assert all(len(set(c)) == 1 for c in copies.values())
    return copies


def _fleet() -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"K{run}-V-{i:04d}" for i in range(DEVICES)]


async def test_gateway_killed_mid_stream_loses_no_acknowledged_uplink(
    tmp_path: Path, fresh_mosquitto: Callable[..., MosquittoServer]
) -> None:
    broker = fresh_mosquitto()
    sub = Subscriber(broker.host, broker.port, "sealscope/v1/dev/+/telemetry")
    gateway = GatewayProcess(tmp_path / "data", broker)
    keys = _issue_keys(gateway.data_dir, _fleet())
    ledger = Ledger()

    async def kill_and_restart() -> None:
        gateway.kill()
        await gateway.start()  # same data dir, same CoAP port

    try:
        await gateway.start()
        await _run_fleet(gateway.coap_port, keys, ledger, kill_and_restart)
        copies = await _reconcile(sub, ledger, "gateway SIGKILL")
        assert len(ledger.acked) == DEVICES * UPLINKS_PER_DEVICE
        assert ledger.acked_at_crash is not None
        assert len(ledger.acked_at_crash) < len(ledger.acked)  # the crash was mid-stream
        assert copies.keys() == ledger.acked  # nothing published that was not acknowledged
        assert gateway.starts == 2
    finally:
        code = gateway.stop()
        sub.close()
    assert code == 0, gateway.log_path.read_text()[-2000:]


async def test_gateway_holds_uplinks_while_the_broker_is_killed(
    tmp_path: Path, fresh_mosquitto: Callable[..., MosquittoServer]
) -> None:
    # persistence as `up` configures its broker, so the subscriber's session and queue
    # survive the SIGKILL and what is measured is the gateway's store and forward
    broker = fresh_mosquitto(autosave_on_changes=True, autosave_interval=1)
    sub = Subscriber(broker.host, broker.port, "sealscope/v1/dev/+/telemetry")
    gateway = GatewayProcess(tmp_path / "data", broker)
    keys = _issue_keys(gateway.data_dir, _fleet())
    ledger = Ledger()
    during_outage: list[int] = []

    async def broker_outage() -> None:
        broker.kill()
        acked_at_kill = len(ledger.acked)
        # the gateway keeps answering 2.04 from its disk queue while the broker is away
        await _wait(lambda: len(ledger.acked) >= acked_at_kill + 100, 20, "2.04s without a broker")
        during_outage.append(len(ledger.acked) - acked_at_kill)
        # on the loop's thread: the broker dies with the thread that started it
        broker.start()  # same port, same persistence file

    try:
        await gateway.start()
        await _run_fleet(gateway.coap_port, keys, ledger, broker_outage)
        copies = await _reconcile(sub, ledger, "broker SIGKILL")
        assert len(ledger.acked) == DEVICES * UPLINKS_PER_DEVICE
        assert during_outage and during_outage[0] >= 100
        assert copies.keys() == ledger.acked
    finally:
        code = gateway.stop()
        sub.close()
    assert code == 0, gateway.log_path.read_text()[-2000:]
