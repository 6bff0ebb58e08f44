"""``sealscope bench fault``: the whole chain under load while its parts are killed.

Started here, on free loopback ports: Mosquitto, InfluxDB 1.x behind the v2 write shim,
a NATS server with JetStream, ``--ingest`` ingest processes on one shared subscription
(each with its own spool, all on one state database) and ``--workers`` detector workers
on the partitioned batch log. A publisher sends ``--rounds`` rounds of one uplink per
device (a day of hourly readings each; a third of the valves start to leak, then are
fixed) at ``--rate`` messages/s, with a province-wide reconnect in the middle (a quarter
of the rounds at once), retrying anything the broker did not acknowledge. Meanwhile, one
after another: an ingest process is SIGKILLed and started again, a detector worker is
SIGKILLed (its partitions move), the broker is restarted, NATS is SIGKILLed and started
again, and InfluxDB is stopped for a while.

At the end it reconciles every acknowledged sample against the store (count and sum of
readings per device: lost or duplicated) and every alert against single-process
detection of the same uplinks (missing, extra, different), prints what was late (the
time from the last publish until all was stored and detected), and exits 1 unless
nothing was lost, duplicated or different.

The broker is restarted with SIGTERM, not killed: what Mosquitto acknowledged but had not
yet written to its persistence file is its own durability setting (``autosave_*``), not
sealscope's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope import wire
from sealscope.alerts import AlertStore
from sealscope.registry import Device

__all__ = ["FaultReport", "run_bench_fault"]

log = logging.getLogger(__name__)

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z
_HOUR = 3600.0
_DB = "telemetry"
_TOKEN = "fault-run-token-not-secret"


# -- the load ------------------------------------------------------------------------------


def fleet(devices: int) -> list[Device]:
    return [
        Device(
            device_id=f"FAULT-V-{i:06d}",
            kind="valve",
            manufacturer="FAULT",
            model="BV-50",
            batch=f"L{i % 10}",
            site=f"site-{i % 20}",
            region="fault",
            dn=50,
            pn=16,
            leakage_class="D",
        )
        for i in range(devices)
    ]


def uplink(index: int, device: Device, day: int, seed: int = 1) -> bytes:
    """Day ``day`` of one valve: 24 hourly readings. Every third valve leaks ten times its
    baseline from day 5 + index % 4 for eight days."""
    rng = random.Random(seed * 1_000_003 + index * 1009 + day)
    leaking = index % 3 == 1 and 5 + index % 4 <= day < 13 + index % 4
    c = 0.01 * (10 if leaking else 1)
    samples = []
    for h in range(24):
        t = T0 + (day * 24 + h) * _HOUR
        p_in = max(0.0, 600 + 150 * math.sin(2 * math.pi * h / 24) + rng.gauss(0, 6))
        p_out = 20 + 10 * rng.random()
        leak = c * math.sqrt(max(p_in - p_out, 0.0)) * math.exp(rng.gauss(0, 0.15))
        samples.append(
            {
                "t": t,
                "p_in_kpa": round(p_in, 2),
                "p_out_kpa": round(p_out, 2),
                "leak_mm3s": round(leak, 2),
                "position_pct": round(rng.random(), 1),
            }
        )
    return json.dumps({"v": 1, "seq": day, "samples": samples}).encode()


def topic(device: Device) -> str:
    return f"sealscope/v1/dev/{device.device_id}/telemetry"


class Publisher:
    """QoS 1 publishes; anything not acknowledged in time is sent again (a retry after a
    broker restart is a duplicate the store collapses)."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"fault-pub-{secrets.token_hex(3)}"
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async(host, port)
        self.client.loop_start()
        self.acked = 0
        self.retries = 0

    def send(self, messages: list[tuple[str, bytes]], timeout_s: float = 10.0) -> None:
        pending = messages
        while pending:
            infos: list[tuple[tuple[str, bytes], mqtt.MQTTMessageInfo | None]] = []
            for t, payload in pending:
                try:
                    infos.append(((t, payload), self.client.publish(t, payload, qos=1)))
                except (ValueError, RuntimeError):
                    infos.append(((t, payload), None))
            deadline = time.monotonic() + timeout_s
            failed = []
            for item, info in infos:
                if info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS:
                    with contextlib.suppress(RuntimeError, ValueError):
                        info.wait_for_publish(max(0.05, deadline - time.monotonic()))
                    if info.is_published():
                        continue
                failed.append(item)
            self.acked += len(pending) - len(failed)
            if failed:
                self.retries += len(failed)
                time.sleep(0.5)
            pending = failed

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the processes -------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from composition.servers.process import spawn

        # dies with the run (and with the thread that starts it: the event loop's)
        self.proc = spawn(self.argv, log_path=self.log_path, env=self.env)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class FaultReport:
    devices: int
    rounds: int
    messages_acked: int = 0
    publish_retries: int = 0
    load_s: float = 0.0
    settle_s: float = 0.0
    points_expected: int = 0
    points_stored: int = 0
    lost_devices: list[str] = field(default_factory=list)
    duplicated_devices: list[str] = field(default_factory=list)
    alerts_expected: int = 0
    alerts_found: int = 0
    alerts_missing: list[tuple[Any, ...]] = field(default_factory=list)
    alerts_extra: list[tuple[Any, ...]] = field(default_factory=list)
    faults: list[tuple[float, str]] = field(default_factory=list)
    settled: bool = False
    # batches the detectors got more than the reorder window late, per device (from the
    # partition checkpoints), and the alert rows of those devices that differ: detection
    # of a device with a late batch is not in event-time order, so it is not compared
    late_batches: dict[str, int] = field(default_factory=dict)
    alerts_late: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.settled
            and not self.lost_devices
            and not self.duplicated_devices
            and not self.alerts_missing
            and not self.alerts_extra
        )

    def summary(self) -> str:
        lines = [
            f"load: {self.devices} devices x {self.rounds} daily uplinks = "
            f"{self.messages_acked} messages acknowledged by the broker "
            f"({self.publish_retries} publishes retried) in {self.load_s:.1f} s "
            f"({self.messages_acked / max(self.load_s, 1e-9):.0f} msg/s)",
            "faults (s after the load started):",
            *(f"  {t:6.1f}  {what}" for t, what in self.faults),
            f"samples: {self.points_expected} acknowledged, {self.points_stored} stored; "
            f"lost on {len(self.lost_devices)} devices, duplicated on "
            f"{len(self.duplicated_devices)}",
            f"alerts: {self.alerts_expected} expected (single-process detection), "
            f"{self.alerts_found} raised; {len(self.alerts_missing)} missing or different, "
            f"{len(self.alerts_extra)} extra",
            f"late batches (on the log more than the reorder window after a newer one of "
            f"their device): {sum(self.late_batches.values())} on "
            f"{len(self.late_batches)} devices; {len(self.alerts_late)} alert rows of those "
            f"devices differ (not counted as missing or extra)",
            f"late: everything stored and detected {self.settle_s:.1f} s after the last "
            f"publish" + ("" if self.settled else " -- NOT SETTLED (timed out)"),
            "result: " + ("PASS (nothing lost, duplicated or different)" if self.ok else "FAIL"),
        ]
        for what, rows in (
            ("missing", self.alerts_missing),
            ("extra", self.alerts_extra),
            ("late", self.alerts_late),
        ):
            lines += [f"  {what}: {row}" for row in rows[:5]]
        lines += [f"  lost: {d}" for d in self.lost_devices[:5]]
        lines += [f"  duplicated: {d}" for d in self.duplicated_devices[:5]]
        return "\n".join(lines)


def alert_record(store: AlertStore) -> list[tuple[Any, ...]]:
    """Every alert as (device, cause, category, severity, status, opened, updated, resolved)."""
    return sorted(
        (
            a.device_id,
            a.cause,
            a.category,
            a.severity,
            a.status,
            a.opened_at,
            a.updated_at,
            a.resolved_at,
        )
        for a in store.list(limit=1_000_000)
    )


def expected_alerts(devices: list[Device], rounds: int) -> list[tuple[Any, ...]]:
    """Single-process detection over the same uplinks: a round (one uplink per device) per
    flush, which per device is one flush per uplink in event-time order."""
    from analytics import DetectionService
    from sealscope.memory_alerts import MemoryAlertStore

    alerts = MemoryAlertStore()
    service = DetectionService(alerts=alerts, state_path=None)
    for day in range(rounds):
        for i, device in enumerate(devices):
            telemetry = msgspec.json.decode(uplink(i, device, day), type=wire.Telemetry)
            service.observe(device, telemetry.samples)
        service.flush()
    return alert_record(alerts)


def expected_points(devices: list[Device], rounds: int) -> dict[str, tuple[int, float]]:
    out = {}
    for i, device in enumerate(devices):
        n, total = 0, 0.0
        for day in range(rounds):
            samples = json.loads(uplink(i, device, day))["samples"]
            n += len(samples)
            total += sum(s["p_in_kpa"] for s in samples)
        out[device.device_id] = (n, total)
    return out


def stored_points(influx: Any) -> dict[str, tuple[int, float]]:
    result = influx.query(
        'SELECT count("p_in_kpa"), sum("p_in_kpa") FROM "valve" GROUP BY "device_id"', db=_DB
    )
    out = {}
    for series in result.get("results", [{}])[0].get("series", []) or []:
        _, count, total = series["values"][0]
        out[series["tags"]["device_id"]] = (int(count), float(total))
    return out


# -- the run -------------------------------------------------------------------------------


async def run_bench_fault(
    *,
    devices: int = 300,
    rounds: int = 24,
    rate: float = 200.0,
    ingest: int = 3,
    workers: int = 2,
    partitions: int = 8,
    reorder_s: float = 20.0,
    settle_timeout_s: float = 300.0,
    out: Callable[[str], None] = print,
    workdir: Path | None = None,
) -> FaultReport:
    from composition.bench.influxdb import InfluxServer
    from composition.bench.v2shim import V2WriteShim
    from composition.servers import MosquittoServer, NatsServer
    from sealscope.alerts import SqliteAlertStore
    from sealscope.registry import SqliteDeviceRegistry
    from sealscope.streaming import Checkpoints, LogConfig, connect

    if ingest < 1 or workers < 1 or rounds < 4 or devices < 3:
        raise ValueError("need --ingest >= 1, --workers >= 1, --rounds >= 4, --devices >= 3")
    report = FaultReport(devices=devices, rounds=rounds)
    fleet_devices = fleet(devices)
    with contextlib.ExitStack() as stack:
        root = (
            workdir
            if workdir is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sealscope-fault-")))
        )
        broker = MosquittoServer(workdir=root / "mosquitto")
        influx = InfluxServer(workdir=root / "influxdb")
        nats_server = NatsServer(workdir=root / "nats")
        for server in (broker, influx, nats_server):
            server.start()
            stack.callback(server.stop)
        influx.create_database(_DB)
        shim = V2WriteShim(target_url=influx.url, token=_TOKEN, log_path=root / "shim.log")
        shim.start()
        stack.callback(shim.stop)
        state_db = root / "state.db"
        registry = SqliteDeviceRegistry(state_db)
        registry.upsert_many(fleet_devices)
        registry.close()
        cfg = LogConfig(url=nats_server.url, stream="FAULT", subject="fault.batches",
                        partitions=partitions, lease_ttl_s=5.0)  # fmt: skip
        env = dict(
            os.environ,
            SEALSCOPE_DATABASE_URL=f"sqlite:///{state_db}",
            SEALSCOPE_MQTT_HOST=broker.host,
            SEALSCOPE_MQTT_PORT=str(broker.port),
            SEALSCOPE_MQTT_SHARED_GROUP="ingest",
            SEALSCOPE_STORE="influxdb",
            SEALSCOPE_INFLUX_URL=shim.url,
            SEALSCOPE_INFLUX_TOKEN=_TOKEN,
            SEALSCOPE_INFLUX_BUCKET=_DB,
            SEALSCOPE_BATCH_MAX_AGE_S="0.1",
            SEALSCOPE_NATS_URL=cfg.url,
            SEALSCOPE_NATS_STREAM=cfg.stream,
            SEALSCOPE_NATS_SUBJECT=cfg.subject,
            SEALSCOPE_NATS_PARTITIONS=str(partitions),
            SEALSCOPE_NATS_LEASE_TTL_S=str(cfg.lease_ttl_s),
            # a batch of a device may reach the log this much after its successor: an
            # ingest instance killed with it in its spool stores it after its restart
            SEALSCOPE_DETECT_REORDER_S=str(reorder_s),
        )
        env.pop("SEALSCOPE_METRICS_PORT", None)
        cli = [sys.executable, "-m", "composition"]
        ingests = [
            Child(
                f"ingest-{i}",
                [*cli, "--data-dir", str(root / f"ingest-{i}"), "ingest"],
                env | {"SEALSCOPE_MQTT_CLIENT_ID": f"fault-ingest-{i}"},
                root / f"ingest-{i}.log",
            )
            for i in range(ingest)
        ]
        detectors = [
            Child(
                f"worker-{i}",
                [*cli, "--data-dir", str(root / f"worker-{i}"), "detect-worker"],
                env | {"SEALSCOPE_DETECT_WORKER_ID": f"w{i}"},
                root / f"worker-{i}.log",
            )
            for i in range(workers)
        ]
        for child in (*ingests, *detectors):
            child.start()
            stack.callback(child.stop)
        out(f"fault run in {root}: broker {broker.url}, InfluxDB {influx.url}, {nats_server.url}")
        out(f"{ingest} ingest processes, {workers} detector workers, {partitions} partitions")

        publisher = Publisher(broker.host, broker.port)
        stack.callback(publisher.close)
        # the ingest sessions subscribe and the workers hold partitions before the load
        await _wait_for_logs(ingests, b"consuming from", 180)
        await _wait_for_logs(detectors, b" from sequence ", 180)
        await asyncio.sleep(1.0)

        start = time.monotonic()

        def at(what: str) -> None:
            report.faults.append((time.monotonic() - start, what))
            out(f"  {time.monotonic() - start:6.1f} s  {what}")

        # each fault: (what, do it, then after a pause: what, undo it); None: no undo
        Step = tuple[str, Callable[[], None], float, str | None, Callable[[], None] | None]
        steps: list[Step] = [
            ("SIGKILL ingest-0", ingests[0].kill, 2.0, "start ingest-0 again", ingests[0].start),
            (f"SIGKILL {detectors[0].name}", detectors[0].kill, 0.0, None, None),
            ("restart the broker (SIGTERM, start)", broker.restart, 0.0, None, None),
            ("SIGKILL NATS", nats_server.kill, 2.0, "start NATS again", nats_server.start),
            ("stop InfluxDB", influx.stop, 5.0, "start InfluxDB again", influx.start),
            (
                f"start {detectors[0].name} again",
                detectors[0].start,
                0.0,
                None,
                None,
            ),
        ]

        burst_round = rounds // 2
        burst = max(1, rounds // 4)
        progress = [0]  # days published so far, read by the faults

        def load() -> None:
            day = 0
            while day < rounds:
                if day == burst_round:
                    at(f"province-wide reconnect: {burst} days of every device at once")
                    batch = [
                        (topic(d), uplink(i, d, day + k))
                        for k in range(burst)
                        for i, d in enumerate(fleet_devices)
                        if day + k < rounds
                    ]
                    publisher.send(batch)
                    day += burst
                    progress[0] = day
                    continue
                round_start = time.monotonic()
                messages = [(topic(d), uplink(i, d, day)) for i, d in enumerate(fleet_devices)]
                for lo in range(0, len(messages), 100):
                    publisher.send(messages[lo : lo + 100])
                    pace = round_start + (lo + 100) / rate - time.monotonic()
                    if pace > 0:
                        time.sleep(pace)
                day += 1
                progress[0] = day

        loading = asyncio.ensure_future(asyncio.to_thread(load))
        # one fault at a time, spread over the load, each on the event loop's thread: a
        # server child dies with the thread that forked it
        every = max(1, (rounds - burst) // (len(steps) + 1))
        for k, (what, do, pause, what_after, undo) in enumerate(steps, start=1):
            while progress[0] < k * every and not loading.done():
                await asyncio.wait([loading], timeout=0.1)
            at(what)
            do()
            if undo is not None:
                await asyncio.sleep(pause)
                at(what_after or "")
                undo()
        await loading
        report.load_s = time.monotonic() - start
        report.messages_acked = publisher.acked
        report.publish_retries = publisher.retries
        for child in detectors:
            if child.proc is None or child.proc.poll() is not None:
                child.start()
        if not influx.is_running:
            influx.start()
        if not nats_server.is_running:
            nats_server.start()
        out(f"load done: {publisher.acked} messages acknowledged in {report.load_s:.1f} s")

        expected = await asyncio.to_thread(expected_points, fleet_devices, rounds)
        report.points_expected = sum(n for n, _ in expected.values())
        reference = await asyncio.to_thread(expected_alerts, fleet_devices, rounds)
        report.alerts_expected = len(reference)

        settle_start = time.monotonic()
        nc = await connect(cfg.url)
        try:
            js = nc.jetstream()
            while time.monotonic() - settle_start < settle_timeout_s:
                stored = await asyncio.to_thread(_stored_or_empty, influx)
                if _matches(stored, expected) and await _detected(js, cfg, Checkpoints):
                    report.settled = True
                    break
                await asyncio.sleep(1.0)
        finally:
            await nc.close()
        report.settle_s = time.monotonic() - settle_start
        stored = await asyncio.to_thread(_stored_or_empty, influx)
        report.points_stored = sum(n for n, _ in stored.values())
        for device_id, (n, total) in expected.items():
            got_n, got_total = stored.get(device_id, (0, 0.0))
            if got_n < n:
                report.lost_devices.append(device_id)
            elif got_n > n or not math.isclose(got_total, total, rel_tol=1e-9):
                report.duplicated_devices.append(device_id)
        alerts = SqliteAlertStore(state_db)
        try:
            found = alert_record(alerts)
        finally:
            alerts.close()
        report.alerts_found = len(found)
        report.late_batches = await _late_batches(cfg, Checkpoints, connect)
        missing = [a for a in reference if a not in found]
        extra = [a for a in found if a not in reference]
        report.alerts_late = [a for a in missing + extra if a[0] in report.late_batches]
        report.alerts_missing = [a for a in missing if a[0] not in report.late_batches]
        report.alerts_extra = [a for a in extra if a[0] not in report.late_batches]
    out(report.summary())
    return report


async def _wait_for_logs(children: list[Child], text: bytes, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = [c.name for c in children if text not in c.log_path.read_bytes()]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{', '.join(waiting)} not ready after {timeout_s:.0f} s")
        dead = [c.name for c in children if c.proc is not None and c.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited at start (see its log)")
        await asyncio.sleep(0.5)


def _matches(stored: dict[str, tuple[int, float]], expected: dict[str, tuple[int, float]]) -> bool:
    # the store sums in its own order: equal counts, sums equal to rounding
    return stored.keys() == expected.keys() and all(
        stored[k][0] == n and math.isclose(stored[k][1], total, rel_tol=1e-9)
        for k, (n, total) in expected.items()
    )


def _stored_or_empty(influx: Any) -> dict[str, tuple[int, float]]:
    try:
        return stored_points(influx)
    except Exception:  # InfluxDB still starting
        return {}


async def _late_batches(cfg: Any, checkpoints_cls: Any, connect: Any) -> dict[str, int]:
    """Per device, the batches its partition's detector counted as late (checkpoints)."""
    late: dict[str, int] = {}
    nc = await connect(cfg.url, name="sealscope-fault-late")
    try:
        checkpoints = await checkpoints_cls.open(nc.jetstream(), cfg)
        for p in range(cfg.partitions):
            data, _ = await checkpoints.load(p)
            if data is not None:
                for device_id, n in msgspec.msgpack.decode(data).get("late", {}).items():
                    late[device_id] = late.get(device_id, 0) + n
    finally:
        await nc.close()
    return late


async def _detected(js: Any, cfg: Any, checkpoints_cls: Any) -> bool:
    """Every partition's checkpoint covers its last batch on the log and holds none."""
    try:
        checkpoints = await checkpoints_cls.open(js, cfg)
        for p in range(cfg.partitions):
            try:
                last = (await js.get_last_msg(cfg.stream, cfg.subject_of(p))).seq
            except Exception:
                continue  # nothing on this partition
            data, _ = await checkpoints.load(p)
            if data is None:
                return False
            cp = msgspec.msgpack.decode(data)
            if cp["received"] < last or cp["held"]:
                return False
    except Exception:  # NATS still coming back
        return False
    return True
