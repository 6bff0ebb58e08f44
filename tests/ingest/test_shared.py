"""Several ingest instances on one MQTT 5 shared subscription (``$share/sealscope-ingest/...``),
each with its own spool, on a real Mosquitto and a real InfluxDB: any instance killed with
SIGKILL mid-stream and started again, and the store holds every sample exactly once,
reconciled sample by sample."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from composition.servers import MosquittoServer
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import SqliteDeviceRegistry
from tests.ingest.conftest import INGEST_START_S
from tests.ingest.streams import T0, Stream, fleet, publish_all
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

GROUP = "sealscope-ingest"


class Instance:
    """``python -m composition ingest`` of its own data dir (spool) and client id."""

    def __init__(self, name: str, root: Path, env: dict[str, str], workers: int) -> None:
        self.name = name
        self.data_dir = root / name
        self.log = root / f"{name}.log"
        self.env = env | {
            "SEALSCOPE_MQTT_CLIENT_ID": f"ingest-{name}",
            "SEALSCOPE_INGEST_WORKERS": str(workers),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "composition", "--data-dir", str(self.data_dir), "ingest"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def subscribed(self) -> bool:
        return self.log.exists() and self.log.read_text().count("subscribed to") >= self.starts

    def children(self) -> list[int]:
        assert self.proc is not None
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def kill(self) -> list[int]:
        """SIGKILL the instance; returns its worker processes' ids (they must die with it)."""
        assert self.proc is not None
        children = self.children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return children

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stored(influx: Any) -> dict[tuple[str, int], float]:
    result = influx.server.query(
        'SELECT "p_in_kpa" FROM "valve" GROUP BY "device_id"', db=influx.database
    )
    out: dict[tuple[str, int], float] = {}
    for series in result["results"][0].get("series", []):
        device = series["tags"]["device_id"]
        for t, value in series["values"]:
            out[(device, t)] = value
    return out


def _count(influx: Any) -> int:
    result = influx.server.query('SELECT count("p_in_kpa") FROM "valve"', db=influx.database)
    series = result["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def _expected(stream: Stream) -> dict[tuple[str, int], float]:
    n = len(stream.devices)
    return {
        (stream.devices[m % n].device_id, (T0 + (m // n) * stream.samples + j) * 10**9): 500.0
        + m
        + j / 100
        for m in range(stream.messages)
        for j in range(stream.samples)
    }


async def test_shared_subscription_instances_killed_mid_stream_lose_and_duplicate_nothing(
    tmp_path: Path, broker: MosquittoServer, fresh_influx: Any
) -> None:
    influx = fresh_influx()
    devices = fleet(30)
    state_db = tmp_path / "state" / "sealscope.db"
    state_db.parent.mkdir()
    registry = SqliteDeviceRegistry(state_db)
    registry.upsert_many(devices)
    registry.close()
    # 12,000 points: enough in flight around each kill; the restarts, not the volume, are the test
    stream = Stream(devices, messages=2000, samples=6)
    env = dict(
        os.environ,
        SEALSCOPE_MQTT_HOST=broker.host,
        SEALSCOPE_MQTT_PORT=str(broker.port),
        SEALSCOPE_MQTT_SHARED_GROUP=GROUP,
        SEALSCOPE_DATABASE_URL=f"sqlite:///{state_db}",
        SEALSCOPE_STORE="influxdb",
        SEALSCOPE_INFLUX_URL=influx.write_url,
        SEALSCOPE_INFLUX_TOKEN=influx.token,
        SEALSCOPE_INFLUX_ORG=influx.org,
        SEALSCOPE_INFLUX_BUCKET=influx.bucket,
        SEALSCOPE_BATCH_MAX_AGE_S="0.05",
        SEALSCOPE_BATCH_MAX_POINTS="600",
        SEALSCOPE_DETECT="false",
    )
    # one in-process instance and two with a worker process each
    instances = [Instance(n, tmp_path, env, w) for n, w in (("a", 1), ("b", 0), ("c", 1))]
    orphans: list[int] = []
    kills = {500: instances[0], 1100: instances[1], 1600: instances[2]}
    try:
        for instance in instances:
            instance.start()
        await wait_until(
            lambda: all(i.subscribed() for i in instances), INGEST_START_S, "all subscribed"
        )
        subscribed = asyncio.get_running_loop()

        def kill_and_restart(i: int) -> None:
            instance = kills.get(i)
            if instance is None:
                return
            orphans.extend(instance.kill())
            instance.start()
            # the next kill only once this one holds its session again
            asyncio.run_coroutine_threadsafe(
                wait_until(instance.subscribed, INGEST_START_S, f"{instance.name} back"), subscribed
            ).result()

        await asyncio.to_thread(
            publish_all,
            broker.host,
            broker.port,
            stream.payloads(),
            client_id="pub-shared",
            timeout_s=120,
            between=kill_and_restart,
        )
        await wait_until(lambda: _count(influx) >= stream.points, 120, "every point stored")
        for instance in instances:
            assert instance.stop() == 0, instance.log.read_text()[-3000:]
    finally:
        for instance in instances:
            if instance.proc is not None and instance.proc.poll() is None:
                instance.proc.kill()
    assert not [pid for pid in orphans if _alive(pid)], "a killed instance left workers behind"
    # the two instances with a worker had at least that one (and spawn's resource tracker)
    assert len(orphans) >= 2
    stored = _stored(influx)
    expected = _expected(stream)
    assert stored.keys() - expected.keys() == set(), "samples nobody sent"
    assert expected.keys() - stored.keys() == set(), "lost samples"
    wrong = {k for k, v in expected.items() if stored[k] != pytest.approx(v)}
    assert not wrong
    assert _count(influx) == stream.points  # nothing twice
    dead = SqliteDeadLetterStore(state_db)
    try:
        assert dead.count() == 0
    finally:
        dead.close()
    for instance in instances:  # each took a share of the group's messages
        stored_points = re.findall(r"stored_points=(\d+)", instance.log.read_text())
        assert max(map(int, stored_points)) > 0, instance.name
