"""``sealscope bench ingest``: sealscope's sustained ingest rate against its ceilings.

All three figures come from one run on this machine, through the same Mosquitto and the same
InfluxDB, started here on free loopback ports:

1. the broker ceiling: messages/s Mosquitto delivers to one plain subscriber (mosquitto_sub,
   written in C, and a bare paho-mqtt subscriber, the Python client sealscope uses);
2. the store ceiling: points/s InfluxDB accepts as line protocol (pre-encoded batches);
3. sealscope: points/s through the whole ingest (fsynced spool, PUBACK after it, decode,
   enrich, batch, InfluxDB v2 write API via influxdb-client).

Each run drains the same preloaded queue: the messages are published while the subscriber
is offline (its persistent session holds them), and the clock runs from its connect to the
last message handled, so the publisher's speed does not enter the figures. The same is done
for sealscope's embedded SQLite store, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope.config import Settings
from sealscope.registry import Device

__all__ = ["run_bench_ingest"]

log = logging.getLogger(__name__)
T0 = 1_763_000_000
TOPIC_FILTER = "sealscope/v1/dev/+/telemetry"


@dataclass(frozen=True)
class Workload:
    devices: int
    messages: int
    samples: int

    @property
    def points(self) -> int:
        return self.messages * self.samples

    def device_ids(self) -> list[str]:
        return [f"BENCH-V-{i:06d}" for i in range(self.devices)]

    def payloads(self) -> Iterator[tuple[str, bytes]]:
        """Realistic valve uplinks: a dozen samples with nine readings each."""
        ids = self.device_ids()
        for m in range(self.messages):
            seq, dev = divmod(m, self.devices)
            samples = [
                {
                    "t": T0 + (seq * self.samples + j) * 300,
                    "p_in_kpa": round(900.0 + (m % 97) + j * 0.1, 2),
                    "p_out_kpa": 3.5,
                    "leak_mm3s": round(0.8 + (m % 13) / 100, 3),
                    "position_pct": 0.0,
                    "temp_c": 18.5,
                    "battery_v": 3.61,
                    "rsrp_dbm": -97.0,
                    "sinr_db": 6.5,
                    "vib_mms": 0.4,
                }
                for j in range(self.samples)
            ]
            body = json.dumps({"v": 1, "seq": seq, "samples": samples}, separators=(",", ":"))
            yield f"sealscope/v1/dev/{ids[dev]}/telemetry", body.encode()


def _publish(host: str, port: int, messages: Iterator[tuple[str, bytes]]) -> int:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()
    return len(infos)


def _create_session(host: str, port: int, client_id: str) -> None:
    """Subscribe once with a persistent session, then leave: the broker queues for it."""
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *_: done.set()
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=True, properties=props)
    client.loop_start()
    client.subscribe(TOPIC_FILTER, qos=1)
    if not done.wait(10):
        raise RuntimeError("broker did not acknowledge the subscription")
    client.disconnect()
    client.loop_stop()


def _drain_paho(host: str, port: int, client_id: str, expected: int) -> float:
    received = 0
    done = threading.Event()

    def on_message(*_: object) -> None:
        nonlocal received
        received += 1
        if received >= expected:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 2000
    start = time.perf_counter()
    client.connect(host, port, clean_start=False, properties=props)
    client.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"paho subscriber got {received} of {expected}")
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return expected / elapsed


def _influx_ceiling(url: str, database: str, lines: list[str], batch: int = 5000) -> float:
    bodies = ["\n".join(lines[i : i + batch]).encode() for i in range(0, len(lines), batch)]
    start = time.perf_counter()
    for body in bodies:
        req = urllib.request.Request(f"{url}/write?db={database}&precision=n", data=body)
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.status != 204:
                raise RuntimeError(f"influxdb answered {resp.status}")
    return len(lines) / (time.perf_counter() - start)


def _registry_devices(work: Workload) -> list[Device]:
    return [
        Device(
            device_id=d,
            kind="valve",
            manufacturer="BENCH",
            model="GV-100",
            batch=f"L{i % 20}",
            site=f"site-{i % 50}",
            region="bench",
            dn=100,
            pn=16,
            leakage_class="D",
        )
        for i, d in enumerate(work.device_ids())
    ]


async def _sealscope_rate(settings: Settings, work: Workload) -> tuple[float, float]:
    """Points/s through IngestService into the configured store, and peak inbox size."""
    from ingest import IngestService
    from sealscope.deadletters import SqliteDeadLetterStore
    from sealscope.registry import SqliteDeviceRegistry
    from sealscope.storage.factory import open_telemetry_store

    registry = SqliteDeviceRegistry(settings.state_db)
    registry.upsert_many(_registry_devices(work))
    dead = SqliteDeadLetterStore(settings.state_db)
    store = await open_telemetry_store(settings)
    try:
        start = time.perf_counter()
        async with IngestService(
            settings=settings, store=store, registry=registry, dead_letters=dead
        ) as ingest:
            while ingest.stats.points_stored < work.points:
                if time.perf_counter() - start > 600:
                    raise RuntimeError(f"stored {ingest.stats.points_stored} of {work.points}")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - start
            if dead.count():
                raise RuntimeError(f"{dead.count()} messages were dead-lettered")
        return work.points / elapsed, elapsed
    finally:
        await store.close()
        dead.close()
        registry.close()


async def run_bench_ingest(*, messages: int, samples: int, devices: int) -> int:
    from composition.bench.influxdb import InfluxServer
    from composition.bench.v2shim import V2WriteShim
    from composition.servers import MosquittoServer

    logging.getLogger("ingest").setLevel(logging.WARNING)
    work = Workload(devices=devices, messages=messages, samples=samples)
    payloads = list(work.payloads())
    mean_bytes = sum(len(p) for _, p in payloads) / len(payloads)
    print(
        f"workload: {messages} uplinks x {samples} samples = {work.points} points "
        f"from {devices} devices, {mean_bytes:.0f} bytes per message"
    )
    with tempfile.TemporaryDirectory(prefix="sealscope-bench-") as tmp:
        root = Path(tmp)
        broker = MosquittoServer(workdir=root / "mosquitto")
        influx = InfluxServer(workdir=root / "influxdb")
        broker.start()
        influx.start()
        shim = V2WriteShim(target_url=influx.url, token="bench-token-not-secret")
        shim.start()
        try:
            host, port = broker.host, broker.port
            influx.create_database("ceiling")
            influx.create_database("telemetry")

            # 1a. broker -> mosquitto_sub
            sub_rate = None
            if shutil.which("mosquitto_sub"):
                _create_session(host, port, "bench-csub")
                _publish(host, port, iter(payloads))
                cmd = [
                    "mosquitto_sub",
                    "-h",
                    host,
                    "-p",
                    str(port),
                    "-q",
                    "1",
                    "-c",
                    "-i",
                    "bench-csub",
                    "-V",
                    "5",
                    "-x",
                    "3600",
                    "-t",
                    TOPIC_FILTER,
                    "-C",
                    str(messages),
                ]
                start = time.perf_counter()
                await asyncio.to_thread(
                    subprocess.run, cmd, check=True, timeout=300, stdout=subprocess.DEVNULL
                )
                sub_rate = messages / (time.perf_counter() - start)
            # 1b. broker -> bare paho subscriber
            _create_session(host, port, "bench-paho")
            _publish(host, port, iter(payloads))
            paho_rate = _drain_paho(host, port, "bench-paho", messages)

            # 2. line protocol -> influxdb
            from sealscope.storage import Point, Series
            from sealscope.storage.lineprotocol import encode_points
            from sealscope.wire import decode_telemetry, time_to_ns

            devs = {d.device_id: d for d in _registry_devices(work)}
            points = []
            for topic, payload in payloads:
                dev = devs[topic.split("/")[3]]
                series = Series("valve", dev.tags)
                for sample in decode_telemetry(payload).samples:
                    fields = msgspec.to_builtins(sample)
                    points.append(Point(series, time_to_ns(fields.pop("t")), fields))
            lines = encode_points(points).split("\n")
            influx_rate = _influx_ceiling(influx.url, "ceiling", lines)

            # 3. sealscope ingest, both stores
            results: dict[str, tuple[float, float]] = {}
            for store in ("influxdb", "sqlite"):
                data_dir = root / f"data-{store}"
                settings = Settings(
                    data_dir=data_dir,
                    mqtt_host=host,
                    mqtt_port=port,
                    mqtt_client_id=f"bench-ingest-{store}",
                    store=store,
                    influx_url=shim.url,
                    influx_token="bench-token-not-secret",
                    influx_bucket="telemetry",
                    detect=False,
                )
                _create_session(host, port, settings.mqtt_client_id)
                _publish(host, port, iter(payloads))
                results[store] = await _sealscope_rate(settings, work)
        finally:
            shim.stop()
            influx.stop()
            broker.stop()

    broker_ceiling_pts = paho_rate * samples
    lower = min(broker_ceiling_pts, influx_rate)
    print()
    print("ceilings, measured in this run:")
    if sub_rate is not None:
        print(
            f"  mosquitto -> mosquitto_sub (C)     {sub_rate:>10,.0f} msg/s"
            f"  = {sub_rate * samples:>10,.0f} points/s"
        )
    print(
        f"  mosquitto -> bare paho subscriber  {paho_rate:>10,.0f} msg/s"
        f"  = {broker_ceiling_pts:>10,.0f} points/s"
    )
    print(f"  influxdb line protocol writes      {'':>10}        {influx_rate:>10,.0f} points/s")
    print("sealscope ingest (spool fsync -> PUBACK -> decode -> enrich -> store):")
    for store, (rate, elapsed) in results.items():
        print(
            f"  into {store:<8}                    {rate / samples:>10,.0f} msg/s"
            f"  = {rate:>10,.0f} points/s  ({elapsed:.1f} s)"
        )
    ratio = results["influxdb"][0] / lower
    print(
        f"ratio to the lower ceiling (paho subscriber vs influxdb): {ratio:.2f}  (target >= 0.50)"
    )
    return 0
