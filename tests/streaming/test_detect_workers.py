"""Detection partitioned by device over a real NATS JetStream: the alerts of detector
workers equal single-process detection on the same input, however the log delivers it,
whoever dies, whatever garbage is on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from composition.detect_worker import DetectWorker, worker_readings
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.metrics import ProcessMetrics
from sealscope.streaming import (
    BatchPublisher,
    Checkpoints,
    LogConfig,
    connect,
    decode_batch,
    partition_of,
)
from tests.streaming.fleet import (
    Batch,
    alert_record,
    fleet_batches,
    seat_leak_only,
    single_process,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

BATCHES = fleet_batches(devices=9, days=20)


@pytest.fixture(scope="module")
def reference() -> list:
    return alert_record(single_process(BATCHES, seat_leak_only))


def two_ingest_instances_order(batches: list[Batch]) -> list[tuple[int, Batch]]:
    """(instance, batch) in the order they reach the log: each device's uplinks go to the
    two instances in turn, and the second instance of each pair gets there first."""
    out: list[tuple[int, Batch]] = []
    pending: dict[str, Batch] = {}
    for batch in batches:
        device_id = batch[0].device_id
        first = pending.pop(device_id, None)
        if first is None:
            pending[device_id] = batch
        else:
            out += [(1, batch), (0, first)]  # the newer uplink is on the log first
    out += [(0, b) for b in pending.values()]
    return out


async def publish(cfg: LogConfig, order: list[tuple[int, Batch]]) -> None:
    async with BatchPublisher(cfg) as a, BatchPublisher(cfg) as b:
        instances = (a, b)
        for instance, batch in order:
            await instances[instance].put([batch])


@contextlib.asynccontextmanager
async def workers(
    cfg: LogConfig, state_db: Path, n: int, **kwargs: Any
) -> AsyncIterator[list[DetectWorker]]:
    alerts = SqliteAlertStore(state_db)
    dead = SqliteDeadLetterStore(state_db)
    running = [
        DetectWorker(
            cfg,
            alerts=alerts,
            dead_letters=dead,
            worker_id=f"w{i}",
            reorder_s=1.0,
            save_every_s=0.5,
            detectors=seat_leak_only,
            **kwargs,
        )
        for i in range(n)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in running]
    try:
        yield running
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        alerts.close()
        dead.close()


def caught_up(running: list[DetectWorker], batches: int) -> Callable[[], bool]:
    def check() -> bool:
        lag = [v for w in running for v in w.lag().values()]
        owned = sum(len(w.partitions) for w in running)
        done = sum(w.stats.batches for w in running)
        return owned == 4 and done >= batches and all(m == 0 for _, m in lag)

    return check


async def test_partitioned_detection_equals_single_process_with_batches_out_of_order(
    tmp_path: Path, batch_log: LogConfig, reference: list
) -> None:
    state_db = tmp_path / "sealscope.db"
    async with workers(batch_log, state_db, 2) as running:
        await wait_until(
            lambda: sum(len(w.partitions) for w in running) == 4, 30, "all partitions owned"
        )
        await publish(batch_log, two_ingest_instances_order(BATCHES))
        await wait_until(caught_up(running, len(BATCHES)), 120, "every batch detected")
        # the partitions were shared out, and every batch went through detection once
        assert sorted(len(w.partitions) for w in running) == [2, 2]
        assert sum(w.stats.batches for w in running) == len(BATCHES)
        late = sum(
            p.detector.service.counters["late_samples"]
            for w in running
            for p in w.partitions.values()
            if p.detector is not None
        )
        assert late == 0, "a device's batches reached its detectors out of event-time order"
        exposition = b"".join(
            _exposition(w).encode() for w in running
        )  # detector lag per partition, as Prometheus reads it
        for p in range(4):
            assert f'sealscope_detector_lag_seconds{{partition="{p}"}}'.encode() in exposition
    alerts = SqliteAlertStore(state_db)
    try:
        assert alert_record(alerts) == reference
    finally:
        alerts.close()


def _exposition(worker: DetectWorker) -> str:
    metrics = ProcessMetrics(process_collectors=False)
    metrics.add(*worker_readings(worker))
    return metrics.exposition().decode()


async def test_a_poison_batch_on_the_log_is_dead_lettered_once_and_the_partition_goes_on(
    tmp_path: Path, batch_log: LogConfig, reference: list
) -> None:
    state_db = tmp_path / "sealscope.db"
    victim = BATCHES[0][0].device_id
    subject = batch_log.subject_of(partition_of(victim, batch_log.partitions))
    half = len(BATCHES) // 2
    async with BatchPublisher(batch_log) as publisher:
        for batch in BATCHES[:half]:
            await publisher.put([batch])
    nc = await connect(batch_log.url)
    try:
        js = nc.jetstream()
        for body in (b"\x93not a batch", msgspec.msgpack.encode({"v": 1, "device": 3})):
            await js.publish(subject, body, stream=batch_log.stream)
        async with BatchPublisher(batch_log) as publisher:
            for batch in BATCHES[half:]:
                await publisher.put([batch])
        dead = SqliteDeadLetterStore(state_db)
        try:
            async with workers(batch_log, state_db, 1) as running:
                await wait_until(caught_up(running, len(BATCHES)), 120, "every batch detected")
                assert running[0].stats.dead_letters == 2
            assert dead.count() == 2
            letters = dead.list()
            assert all(d.code == "poison" and d.topic == subject for d in letters)
            assert {d.reason.split(":")[0] for d in letters} == {
                f"batch log sequence {half + 1}",
                f"batch log sequence {half + 2}",
            }
            # a new owner with no checkpoint replays the whole partition: not again
            await (await Checkpoints.open(js, batch_log)).forget(
                partition_of(victim, batch_log.partitions)
            )
            async with workers(batch_log, state_db, 1) as running:
                await wait_until(caught_up(running, 1), 120, "the partition replayed")
                assert running[0].stats.dead_letters == 0
            assert dead.count() == 2
        finally:
            dead.close()
    finally:
        await nc.close()
    alerts = SqliteAlertStore(state_db)
    try:
        assert alert_record(alerts) == reference
    finally:
        alerts.close()


def _worker_process(cfg: LogConfig, data_dir: Path, name: str, log: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        SEALSCOPE_NATS_URL=cfg.url,
        SEALSCOPE_NATS_STREAM=cfg.stream,
        SEALSCOPE_NATS_SUBJECT=cfg.subject,
        SEALSCOPE_NATS_PARTITIONS=str(cfg.partitions),
        SEALSCOPE_NATS_LEASE_TTL_S=str(cfg.lease_ttl_s),
        SEALSCOPE_DETECT_REORDER_S="1",
        SEALSCOPE_DETECT_WORKER_ID=name,
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "composition", "--data-dir", str(data_dir), "detect-worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _checkpoints_cover(cfg: LogConfig, js: Any) -> bool:
    """Every partition's checkpoint covers its last message on the log, holding none."""
    checkpoints = await Checkpoints.open(js, cfg)
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
    return True


async def test_a_worker_killed_mid_run_moves_its_partitions_and_the_alerts_stay_the_same(
    tmp_path: Path, batch_log: LogConfig
) -> None:
    batches = fleet_batches(devices=6, days=18)
    expected = alert_record(single_process(batches))  # the detectors `detect-worker` runs
    data_dir = tmp_path / "data"
    Settings(data_dir=data_dir)  # validates the directory setting the children get
    procs = {
        name: _worker_process(batch_log, data_dir, name, tmp_path / f"{name}.log")
        for name in ("w1", "w2")
    }
    nc = await connect(batch_log.url)
    try:
        js = nc.jetstream()
        order = two_ingest_instances_order(batches)
        half = len(order) // 2
        await publish(batch_log, order[:half])
        # w1 has started on its partitions (a checkpoint exists) when it dies
        await _wait_async(lambda: _checkpoint_of(batch_log, js, b"w1"), 120, "a checkpoint of w1's")
        procs["w1"].send_signal(signal.SIGKILL)
        procs["w1"].wait(timeout=10)
        await publish(batch_log, order[half:])
        await _wait_async(lambda: _checkpoints_cover(batch_log, js), 240, "all batches detected")
        owners = [
            (await (await js.key_value(batch_log.leases_bucket)).get(f"p.{p}")).value
            for p in range(batch_log.partitions)
        ]
        assert set(owners) == {b"w2"}, "the dead worker's partitions moved to the survivor"
    finally:
        await nc.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    alerts = SqliteAlertStore(data_dir / "sealscope.db")
    try:
        assert alert_record(alerts) == expected
    finally:
        alerts.close()
    # w2 took over w1's partitions where w1's checkpoints left them
    assert b"partition restored" in (tmp_path / "w2.log").read_bytes()


async def _checkpoint_of(cfg: LogConfig, js: Any, owner: bytes) -> bool:
    """A partition ``owner`` holds has a checkpoint past the start of the log."""
    checkpoints = await Checkpoints.open(js, cfg)
    leases = await js.key_value(cfg.leases_bucket)
    for p in range(cfg.partitions):
        with contextlib.suppress(Exception):
            if (await leases.get(f"p.{p}")).value != owner:
                continue
        data, _ = await checkpoints.load(p)
        if data is not None and msgspec.msgpack.decode(data)["received"] > 0:
            return True
    return False


async def _wait_async(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.2)


def test_logged_batches_round_trip_and_partition_stably() -> None:
    device, telemetry = BATCHES[0]
    from sealscope.streaming import encode_batch

    batch = decode_batch(encode_batch(device, telemetry))
    assert batch.device == device and batch.samples == telemetry.samples
    # the same partition in every process: CRC-32, not Python's salted hash
    assert partition_of("ACME-V-0000", 8) == partition_of("ACME-V-0000", 8) == 4


async def test_a_checkpoint_saved_by_a_stale_owner_is_refused(batch_log: LogConfig) -> None:
    from sealscope.streaming import CheckpointLost, ensure_log

    nc = await connect(batch_log.url)
    try:
        js = nc.jetstream()
        await ensure_log(js, batch_log)
        old_owner = await Checkpoints.open(js, batch_log)
        new_owner = await Checkpoints.open(js, batch_log)
        assert await old_owner.load(0) == (None, 0)
        revision = await old_owner.save(0, b"state 1", 0)
        data, seen = await new_owner.load(0)
        assert (data, seen) == (b"state 1", revision)
        await new_owner.save(0, b"state 2", seen)
        # the old owner stalled past its lease and saves what it had: refused, not written
        with pytest.raises(CheckpointLost):
            await old_owner.save(0, b"state 1b", revision)
        assert (await new_owner.load(0))[0] == b"state 2"
        names = [o.name for o in await old_owner.store.list(ignore_deletes=True)]
        assert len(names) == 1, "replaced and refused objects are deleted"
    finally:
        await nc.close()
