"""``sealscope bench ingest``: sealscope's sustained ingest rate against its ceilings.

Every figure comes from the same run on this machine, through the same Mosquitto and the
same InfluxDB 1.x (behind the v2 write shim, as in the tests), started here on free ports.
Each of ``--runs`` rounds measures, in this order:

1. the broker ceiling: messages/s Mosquitto delivers to a bare paho-mqtt subscriber (the
   Python client sealscope uses; mosquitto_sub, in C, is shown for reference);
2. the store ceiling: points/s InfluxDB accepts as pre-encoded line protocol on its own
   ``/write`` (and through the v2 shim both writers below go through);
3. sealscope: points/s through one ``IngestService`` in a process of its own with
   ``--workers`` worker processes (fsynced spool, PUBACK after it, decode, enrich, encode,
   InfluxDB v2 write API);
4. the bridge users write for themselves: paho with automatic acknowledgement into
   influxdb-client's batching write API (no spool), in a process of its own.

Each drains the same preloaded queue: published while the subscriber's persistent session
is offline; the clock runs from its connect to the last point stored. The ratio to the
lower of the two ceilings is printed per round, with the median and spread.

Then: latency from publish to stored (p50/p99 over samples) at 50 % and 90 % of sealscope's
median rate, for sealscope and the bridge, published live at a paced rate (sample times are
the publish time, in ms, less up to ``samples - 1`` ms: latencies read up to that high); and
the rate of one and of two sealscope instances on a shared subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope.config import Settings
from sealscope.registry import Device
from sealscope.storage import Point

__all__ = ["open_bench_worker_deps", "run_bench_ingest"]

log = logging.getLogger(__name__)
T0 = 1_763_000_000
TOPIC_FILTER = "sealscope/v1/dev/+/telemetry"
GROUP = "sealscope-ingest"
TOKEN = "bench-token-not-secret"
# where each writing process leaves its publish -> stored latencies (inherited by workers)
_LATENCY_DIR = "SEALSCOPE_BENCH_LATENCY_DIR"


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
            body = _body(seq, [T0 + (seq * self.samples + j) * 300 for j in range(self.samples)], m)
            yield f"sealscope/v1/dev/{ids[dev]}/telemetry", body


def _body(seq: int, times: Sequence[float], m: int) -> bytes:
    samples = [
        {
            "t": t,
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
        for j, t in enumerate(times)
    ]
    return json.dumps({"v": 1, "seq": seq, "samples": samples}, separators=(",", ":")).encode()


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


# -- MQTT helpers -------------------------------------------------------------------------
def _client(client_id: str, **kwargs: Any) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, **kwargs
    )


def _session_props(receive_maximum: int | None = None) -> Any:
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    if receive_maximum:
        props.ReceiveMaximum = receive_maximum
    return props


def _publish(host: str, port: int, messages: Iterator[tuple[str, bytes]]) -> int:
    client = _client("bench-pub")
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


def _create_session(host: str, port: int, client_id: str, topic: str = TOPIC_FILTER) -> None:
    """Subscribe once with a persistent session, then leave: the broker queues for it."""
    done = threading.Event()
    client = _client(client_id)
    client.on_subscribe = lambda *_: done.set()
    client.connect(host, port, clean_start=True, properties=_session_props())
    client.loop_start()
    client.subscribe(topic, qos=1)
    if not done.wait(10):
        raise RuntimeError("broker did not acknowledge the subscription")
    client.disconnect()
    client.loop_stop()


def _drop_session(host: str, port: int, client_id: str) -> None:
    """End a persistent session, or the broker queues every later publish for it."""
    client = _client(client_id)
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(host, port, clean_start=True, properties=props)
    client.disconnect()


def _drain_paho(host: str, port: int, client_id: str, expected: int) -> float:
    received = 0
    done = threading.Event()

    def on_message(*_: object) -> None:
        nonlocal received
        received += 1
        if received >= expected:
            done.set()

    client = _client(client_id)
    client.on_message = on_message
    start = time.perf_counter()
    client.connect(host, port, clean_start=False, properties=_session_props(2000))
    client.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"paho subscriber got {received} of {expected}")
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    _drop_session(host, port, client_id)
    return expected / elapsed


def _sub_rate(host: str, port: int, payloads: list[tuple[str, bytes]]) -> float | None:
    if not shutil.which("mosquitto_sub"):
        return None
    _create_session(host, port, "bench-csub")
    _publish(host, port, iter(payloads))
    cmd = ["mosquitto_sub", "-h", host, "-p", str(port), "-q", "1", "-c", "-i", "bench-csub"]
    cmd += ["-V", "5", "-x", "3600", "-t", TOPIC_FILTER, "-C", str(len(payloads))]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL)
    rate = len(payloads) / (time.perf_counter() - start)
    _drop_session(host, port, "bench-csub")
    return rate


def _influx_ceiling(url: str, path: str, lines: list[str], batch: int = 5000) -> float:
    bodies = ["\n".join(lines[i : i + batch]).encode() for i in range(0, len(lines), batch)]
    start = time.perf_counter()
    for body in bodies:
        req = urllib.request.Request(f"{url}{path}", data=body)
        req.add_header("Authorization", f"Token {TOKEN}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            if resp.status != 204:
                raise RuntimeError(f"influxdb answered {resp.status}")
    return len(lines) / (time.perf_counter() - start)


# -- latency: a store that notes publish -> stored of every sample it writes --------------
class _TimingStore:
    def __init__(self, inner: Any, out: Path | None) -> None:
        self._inner = inner
        self._out = out
        self._ms: list[float] = []

    async def write(self, points: Sequence[Point]) -> None:
        await self._inner.write(points)
        if self._out is not None:
            now_ms = time.time() * 1000
            self._ms.extend([now_ms - p.t_ns / 1e6 for p in points])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def close(self) -> None:
        if self._out is not None and self._ms:
            self._out.write_bytes(msgspec.msgpack.encode(self._ms))
        await self._inner.close()


def _latency_file() -> Path | None:
    where = os.environ.get(_LATENCY_DIR)
    return Path(where) / f"{os.getpid()}.msgpack" if where else None


@contextlib.asynccontextmanager
async def open_bench_worker_deps(settings: Settings) -> AsyncIterator[Any]:
    """The stores of a bench ingest worker process (SQLite state, InfluxDB telemetry)."""
    from ingest.workers import WorkerDeps
    from sealscope.deadletters import SqliteDeadLetterStore
    from sealscope.registry import SqliteDeviceRegistry
    from sealscope.storage.factory import open_telemetry_store

    store = _TimingStore(await open_telemetry_store(settings), _latency_file())
    state_db = Path(settings.database_url.removeprefix("sqlite:///"))  # shared by instances
    registry = SqliteDeviceRegistry(state_db)
    dead = SqliteDeadLetterStore(state_db)
    try:
        yield WorkerDeps(store, registry, dead)
    finally:
        await store.close()
        dead.close()
        registry.close()


def _read_latencies(where: Path) -> list[float]:
    out: list[float] = []
    for path in where.glob("*.msgpack"):
        out.extend(msgspec.msgpack.decode(path.read_bytes(), type=list[float]))
    return out


# -- the measured processes ---------------------------------------------------------------
@dataclass
class _Shared:
    """What a measured process and the bench share: a start time and a stored count."""

    started: Any  # mp.Value("d"): wall time it connected
    stored: Any  # mp.Value("q"): points stored
    ready: Any  # mp.Event: connected and subscribed
    stop: Any  # mp.Event
    prepared: Any  # mp.Event: workers started, not yet connected
    go: Any  # mp.Event: connect now
    cpu: Any  # mp.Value("d"): CPU seconds from go to stop, its workers included


def _shared(ctx: Any) -> _Shared:
    ready, stop, prepared, go = (ctx.Event() for _ in range(4))
    return _Shared(
        ctx.Value("d", 0.0), ctx.Value("q", 0), ready, stop, prepared, go, ctx.Value("d", 0.0)
    )


def _cpu_s(pids: Sequence[int] = ()) -> float:
    """CPU seconds used so far by this process and the given (child) processes."""
    times = os.times()
    total = times.user + times.system
    return total + sum(_pid_cpu_s(pid) for pid in pids)


def _pid_cpu_s(pid: int | None) -> float:
    """CPU seconds used so far by one process (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sealscope_main(settings: Settings, shared: _Shared, latency_dir: str | None) -> None:
    if latency_dir:
        os.environ[_LATENCY_DIR] = latency_dir
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_sealscope_instance(settings, shared))


async def _sealscope_instance(settings: Settings, shared: _Shared) -> None:
    from ingest import IngestService

    async with (
        open_bench_worker_deps(settings) as deps,
        IngestService(
            settings=settings,
            store=deps.store,
            registry=deps.registry,
            dead_letters=deps.dead_letters,
            open_worker_deps=open_bench_worker_deps,
            connect_on_enter=False,
        ) as ingest,
    ):
        shared.prepared.set()
        await asyncio.to_thread(shared.go.wait)
        shared.started.value = time.time()
        cpu_at_go = _cpu_s(ingest.worker_pids)
        ingest.connect()
        await asyncio.to_thread(ingest.wait_connected, 60)
        shared.ready.set()
        while not shared.stop.is_set():
            shared.stored.value = ingest.stats.points_stored
            if ingest.stats.dead_letters:
                raise RuntimeError(f"{ingest.stats.dead_letters} messages were dead-lettered")
            await asyncio.sleep(0.005)
        shared.cpu.value = _cpu_s(ingest.worker_pids) - cpu_at_go


def _bridge_main(
    host: str,
    port: int,
    client_id: str,
    url: str,
    bucket: str,
    tags: dict[str, dict[str, str]],
    shared: _Shared,
    latency_dir: str | None,
) -> None:
    """What users write for themselves: paho (acknowledging on receipt) into the batching
    write API of influxdb-client, with the registry's tags from a dict."""
    from influxdb_client import InfluxDBClient, WriteOptions, WritePrecision

    latencies: list[float] = []
    lock = threading.Lock()

    def success(_conf: Any, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        lines = text.split("\n")
        now_ms = time.time() * 1000
        with lock:
            shared.stored.value += len(lines)
            if latency_dir:
                latencies.extend(now_ms - int(line.rsplit(" ", 1)[1]) / 1e6 for line in lines)

    def error(_conf: Any, _data: Any, exc: Exception) -> None:
        log.error("bridge: write failed: %s", exc)

    influx = InfluxDBClient(url=url, token=TOKEN, org="sealscope")
    write_api = influx.write_api(
        write_options=WriteOptions(batch_size=5000, flush_interval=200),
        success_callback=success,
        error_callback=error,
    )

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        device_tags = tags[msg.topic.split("/")[3]]
        records = []
        for sample in body["samples"]:
            t = sample.pop("t")
            t_ns = (round(t) * 1_000_000) if t >= 1e11 else round(t * 1000) * 1_000_000
            records.append(
                {"measurement": "valve", "tags": device_tags, "fields": sample, "time": t_ns}
            )
        write_api.write(bucket=bucket, record=records, write_precision=WritePrecision.NS)  # type: ignore[arg-type]

    client = _client(client_id)
    client.on_message = on_message
    client.on_subscribe = lambda *_: shared.ready.set()
    client.on_connect = lambda c, *_: c.subscribe(TOPIC_FILTER, qos=1)
    shared.prepared.set()
    shared.go.wait()
    shared.started.value = time.time()
    cpu_at_go = _cpu_s()
    client.connect(host, port, clean_start=False, properties=_session_props(2000))
    client.loop_start()
    shared.stop.wait()
    shared.cpu.value = _cpu_s() - cpu_at_go
    client.disconnect()
    client.loop_stop()
    _drop_session(host, port, client_id)
    write_api.close()
    influx.close()
    if latency_dir:
        Path(latency_dir, f"{os.getpid()}.msgpack").write_bytes(msgspec.msgpack.encode(latencies))


@dataclass
class _Env:
    root: Path
    host: str
    port: int
    influx: Any  # InfluxServer
    shim_url: str
    work: Workload
    workers: int
    n: int = 0

    def database(self, label: str) -> str:
        self.n += 1
        name = f"m{self.n}_{label}"
        self.influx.create_database(name)
        return name

    def settings(self, client_id: str, database: str, *, shared: bool = False) -> Settings:
        return Settings(
            data_dir=self.root / f"data-{client_id}-{self.n}",
            database_url=f"sqlite:///{self.root / 'state.db'}",
            mqtt_host=self.host,
            mqtt_port=self.port,
            mqtt_client_id=client_id,
            mqtt_shared_group=GROUP if shared else None,
            store="influxdb",
            influx_url=self.shim_url,
            influx_token=TOKEN,
            influx_bucket=database,
            ingest_workers=self.workers,
            detect=False,
        )


def _wait_all(
    shared: list[_Shared], expected: int, procs: list[Any], timeout_s: float = 600
) -> float:
    """Seconds from the first connect to ``expected`` points stored (summed)."""
    deadline = time.monotonic() + timeout_s
    while sum(s.stored.value for s in shared) < expected:
        if time.monotonic() > deadline or any(p.exitcode is not None for p in procs):
            got = sum(s.stored.value for s in shared)
            raise RuntimeError(f"stored {got} of {expected} points")
        time.sleep(0.002)
    end = time.time()
    return end - min(s.started.value for s in shared)


def _go(shared: list[_Shared], procs: list[Any]) -> None:
    """Start the processes; let them connect together once all are prepared."""
    for p in procs:
        p.start()
    deadline = time.monotonic() + 120
    for s in shared:
        if not s.prepared.wait(max(0.1, deadline - time.monotonic())):
            raise RuntimeError("a measured process did not start")
    for s in shared:
        s.go.set()


def _finish(shared: list[_Shared], procs: list[Any]) -> None:
    for s in shared:
        s.stop.set()
    for p in procs:
        p.join(120)
        if p.exitcode != 0:
            raise RuntimeError(f"{p.name} ended with {p.exitcode}")


def _drain_sealscope(
    env: _Env, payloads: list[tuple[str, bytes]], instances: int
) -> tuple[float, float]:
    """Points/s of ``instances`` sealscope instances draining the same preloaded queue, and
    their CPU µs per point (workers included)."""
    ctx = multiprocessing.get_context("spawn")
    database = env.database(f"sealscope{instances}")
    many = instances > 1
    settings = [env.settings(f"bench-ingest-{i}", database, shared=many) for i in range(instances)]
    for s in settings:
        topic = f"$share/{GROUP}/{TOPIC_FILTER}" if many else TOPIC_FILTER
        _create_session(env.host, env.port, s.mqtt_client_id, topic)
    _publish(env.host, env.port, iter(payloads))
    shared = [_shared(ctx) for _ in settings]
    procs = [
        ctx.Process(target=_sealscope_main, args=(s, sh, None), name=s.mqtt_client_id)
        for s, sh in zip(settings, shared, strict=True)
    ]
    try:
        _go(shared, procs)
        elapsed = _wait_all(shared, env.work.points, procs)
    finally:
        _finish(shared, procs)
    for s in settings:
        _drop_session(env.host, env.port, s.mqtt_client_id)
    cpu_us = sum(sh.cpu.value for sh in shared) * 1e6 / env.work.points
    return env.work.points / elapsed, cpu_us


def _bridge_process(
    ctx: Any, env: _Env, database: str, shared: _Shared, latency_dir: str | None
) -> Any:
    tags = {d.device_id: dict(d.tags) for d in _registry_devices(env.work)}
    client_id = f"bench-bridge-{env.n}"
    if latency_dir is None:  # draining: its session holds the preloaded queue
        _create_session(env.host, env.port, client_id)
    return ctx.Process(
        target=_bridge_main,
        args=(env.host, env.port, client_id, env.shim_url, database, tags, shared),
        kwargs={"latency_dir": latency_dir},
        name="bridge",
    )


def _drain_bridge(env: _Env, payloads: list[tuple[str, bytes]]) -> tuple[float, float]:
    ctx = multiprocessing.get_context("spawn")
    database = env.database("bridge")
    shared = _shared(ctx)
    proc = _bridge_process(ctx, env, database, shared, None)
    _publish(env.host, env.port, iter(payloads))
    try:
        _go([shared], [proc])
        elapsed = _wait_all([shared], env.work.points, [proc])
    finally:
        _finish([shared], [proc])
    return env.work.points / elapsed, shared.cpu.value * 1e6 / env.work.points


def _paced_publish(env: _Env, rate_msg_s: float, seconds: float) -> int:
    """Publish live at ``rate_msg_s``; each sample's time is its publish time (ms)."""
    ids = env.work.device_ids()
    samples = env.work.samples
    client = _client("bench-paced")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect(env.host, env.port)
    client.loop_start()
    total = int(rate_msg_s * seconds)
    start = time.perf_counter()
    infos = []
    for m in range(total):
        due = start + m / rate_msg_s
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        now_ms = int(time.time() * 1000)
        # a device publishes at most every devices/rate s: its times never collide
        times = [now_ms - (samples - 1 - j) for j in range(samples)]
        seq, dev = divmod(m, env.work.devices)
        infos.append(
            client.publish(f"sealscope/v1/dev/{ids[dev]}/telemetry", _body(seq, times, m), qos=1)
        )
    achieved = total / (time.perf_counter() - start)
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()
    return int(achieved)


def _latency(env: _Env, who: str, rate_msg_s: float, seconds: float) -> tuple[int, list[float]]:
    ctx = multiprocessing.get_context("spawn")
    database = env.database(f"lat_{who}")
    latency_dir = env.root / f"latency-{env.n}"
    latency_dir.mkdir()
    shared = _shared(ctx)
    if who == "sealscope":
        settings = env.settings(f"bench-live-{env.n}", database)
        proc = ctx.Process(
            target=_sealscope_main, args=(settings, shared, str(latency_dir)), name=who
        )
    else:
        proc = _bridge_process(ctx, env, database, shared, str(latency_dir))
    try:
        _go([shared], [proc])
        if not shared.ready.wait(120):
            raise RuntimeError(f"{who} did not subscribe")
        achieved = _paced_publish(env, rate_msg_s, seconds)
        _wait_all([shared], int(rate_msg_s * seconds) * env.work.samples, [proc])
    finally:
        _finish([shared], [proc])
    if who == "sealscope":
        _drop_session(env.host, env.port, settings.mqtt_client_id)
    return achieved, _read_latencies(latency_dir)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the bench ----------------------------------------------------------------------------
async def run_bench_ingest(
    *,
    messages: int,
    samples: int,
    devices: int,
    runs: int = 3,
    workers: int = 1,
    latency_s: float = 8.0,
) -> int:
    return await asyncio.to_thread(
        _run,
        messages=messages,
        samples=samples,
        devices=devices,
        runs=runs,
        workers=workers,
        latency_s=latency_s,
    )


def _run(
    *, messages: int, samples: int, devices: int, runs: int, workers: int, latency_s: float
) -> int:
    from composition.bench.influxdb import InfluxServer
    from composition.bench.v2shim import V2WriteShim
    from composition.servers import MosquittoServer
    from sealscope.registry import SqliteDeviceRegistry
    from sealscope.storage import Series
    from sealscope.storage.lineprotocol import encode_points
    from sealscope.wire import decode_telemetry, time_to_ns

    logging.getLogger("ingest").setLevel(logging.WARNING)
    work = Workload(devices=devices, messages=messages, samples=samples)
    payloads = list(work.payloads())
    mean_bytes = sum(len(p) for _, p in payloads) / len(payloads)
    load = os.getloadavg()
    print(
        f"workload: {messages} uplinks x {samples} samples = {work.points} points from "
        f"{devices} devices, {mean_bytes:.0f} bytes per message; sealscope with "
        f"{workers} worker process(es); {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start",
        flush=True,
    )
    devs = {d.device_id: d for d in _registry_devices(work)}
    points = []
    for topic, payload in payloads:
        dev = devs[topic.split("/")[3]]
        series = Series("valve", dev.tags)
        for sample in decode_telemetry(payload).samples:
            fields = msgspec.to_builtins(sample)
            points.append(Point(series, time_to_ns(fields.pop("t")), fields))
    lines = encode_points(points).split("\n")

    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="sealscope-bench-") as tmp:
        root = Path(tmp)
        broker = MosquittoServer(workdir=root / "mosquitto")
        influx = InfluxServer(workdir=root / "influxdb")
        broker.start()
        influx.start()
        shim = V2WriteShim(target_url=influx.url, token=TOKEN)
        shim.start()
        try:
            registry = SqliteDeviceRegistry(root / "state.db")
            registry.upsert_many(list(devs.values()))
            registry.close()
            env = _Env(root, broker.host, broker.port, influx, shim.url, work, workers)
            for r in range(runs):
                row: dict[str, float] = {}
                sub = _sub_rate(env.host, env.port, payloads)
                if sub is not None:
                    row["mosquitto_sub"] = sub * samples
                _create_session(env.host, env.port, f"bench-paho-{r}")
                _publish(env.host, env.port, iter(payloads))
                row["paho"] = _drain_paho(env.host, env.port, f"bench-paho-{r}", messages) * samples
                db = env.database("ceiling")
                row["influx"] = _influx_ceiling(influx.url, f"/write?db={db}&precision=n", lines)
                db = env.database("ceiling_shim")
                row["influx_shim"] = _influx_ceiling(
                    shim.url, f"/api/v2/write?org=sealscope&bucket={db}&precision=ns", lines
                )
                services_at = [_pid_cpu_s(server.pid) for server in (influx, broker)]
                row["sealscope"], row["sealscope_cpu"] = _drain_sealscope(env, payloads, 1)
                row["influx_cpu"], row["broker_cpu"] = (
                    (_pid_cpu_s(server.pid) - at) * 1e6 / work.points
                    for server, at in zip((influx, broker), services_at, strict=True)
                )
                row["bridge"], row["bridge_cpu"] = _drain_bridge(env, payloads)
                row["lower"] = min(row["paho"], row["influx"])
                rounds.append(row)
                print(
                    f"round {r + 1}: paho {row['paho']:,.0f}  influxdb {row['influx']:,.0f}"
                    f" (via shim {row['influx_shim']:,.0f})  sealscope {row['sealscope']:,.0f}"
                    f"  bridge {row['bridge']:,.0f} points/s;  sealscope/lower "
                    f"{row['sealscope'] / row['lower']:.2f}",
                    flush=True,
                )
            scaling = [_drain_sealscope(env, payloads, n)[0] for n in (1, 2)]
            median_msg_s = statistics.median(r["sealscope"] for r in rounds) / samples
            latency: dict[tuple[str, int], tuple[int, list[float]]] = {}
            for share in (50, 90):
                for who in ("sealscope", "bridge"):
                    rate = median_msg_s * share / 100
                    latency[(who, share)] = _latency(env, who, rate, latency_s)
        finally:
            shim.stop()
            influx.stop()
            broker.stop()

    def spread(key: str) -> str:
        values = [r[key] for r in rounds]
        return f"{statistics.median(values):>10,.0f}  ({min(values):,.0f} .. {max(values):,.0f})"

    print()
    print(f"points/s, median of {runs} rounds (min .. max), each measured in this run:")
    if "mosquitto_sub" in rounds[0]:
        print(f"  mosquitto -> mosquitto_sub (C)          {spread('mosquitto_sub')}")
    print(f"  mosquitto -> bare paho subscriber       {spread('paho')}   broker ceiling")
    print(f"  influxdb /write, pre-encoded lines      {spread('influx')}   store ceiling")
    print(f"  influxdb through the v2 shim            {spread('influx_shim')}")
    print(f"  sealscope ingest, {workers} worker(s)           {spread('sealscope')}")
    print(f"  bridge: paho auto-ack -> batching API   {spread('bridge')}")
    print("CPU µs per point (all its processes, from connect to the last point stored):")
    print(f"  sealscope                               {spread('sealscope_cpu')}")
    print(f"  bridge                                  {spread('bridge_cpu')}")
    print(f"  influxd, storing sealscope's points     {spread('influx_cpu')}")
    print(f"  mosquitto, carrying them                {spread('broker_cpu')}")
    # what 0.7 of the lower ceiling costs in cores, at the CPU per point measured above
    target = 0.7 * statistics.median(r["lower"] for r in rounds)
    per_point = statistics.median(
        r["sealscope_cpu"] + r["influx_cpu"] + r["broker_cpu"] for r in rounds
    )
    print(
        f"at 0.7 of the lower ceiling ({target:,.0f} points/s) sealscope, influxd and "
        f"mosquitto together need {target * per_point / 1e6:.1f} cores "
        f"({per_point:.0f} µs per point); this machine has {os.cpu_count()}"
    )
    ratios = [r["sealscope"] / r["lower"] for r in rounds]
    bridge_ratios = [r["bridge"] / r["lower"] for r in rounds]
    print(
        f"sealscope / lower ceiling: median {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}; target >= 0.7)"
    )
    print(
        f"bridge    / lower ceiling: median {statistics.median(bridge_ratios):.2f} "
        f"(rounds: {', '.join(f'{x:.2f}' for x in bridge_ratios)})"
    )
    print(
        f"instances on $share/{GROUP}/...: 1 -> {scaling[0]:,.0f}, 2 -> {scaling[1]:,.0f} "
        f"points/s (x{scaling[1] / scaling[0]:.2f})"
    )
    print("publish -> stored latency, ms over samples (offered msg/s: achieved):")
    for (who, share), (achieved, values) in latency.items():
        offered = median_msg_s * share / 100
        print(
            f"  {who:<9} at {share} % ({offered:,.0f}: {achieved:,.0f} msg/s)  "
            f"p50 {_pct(values, 0.5):7.0f}   p99 {_pct(values, 0.99):7.0f}"
            f"   ({len(values):,} samples)"
        )
    return 0
