"""The short CI version of ``sealscope bench fault``: the whole chain under load while an
ingest process, a detector worker, the broker, NATS and InfluxDB are killed or stopped in
turn; nothing acknowledged may be lost or duplicated and the alerts must be those of
single-process detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from composition.bench.fault import run_bench_fault
from composition.bench.influxdb import find_influxd
from composition.servers import find_mosquitto, find_nats_server
from tests.conftest import _require

pytestmark = pytest.mark.e2e


async def test_the_chain_loses_duplicates_and_changes_nothing_while_its_parts_die(
    tmp_path: Path,
) -> None:
    _require(find_mosquitto(), "mosquitto")
    _require(find_influxd(), "influxdb")
    _require(find_nats_server(), "nats-server")
    lines: list[str] = []
    report = await run_bench_fault(
        devices=30,
        rounds=16,
        rate=60,
        ingest=2,
        workers=2,
        partitions=4,
        reorder_s=20,  # above an ingest restart plus NATS down (late batches are counted)
        settle_timeout_s=240,
        out=lines.append,
        workdir=tmp_path,
    )
    summary = "\n".join(lines)
    faults = [what for _, what in report.faults]
    for fault in ("SIGKILL ingest-0", "SIGKILL worker-0", "restart the broker", "SIGKILL NATS",
                  "stop InfluxDB", "province-wide reconnect"):  # fmt: skip
        assert any(f.startswith(fault) for f in faults), summary
    assert report.settled, summary
    assert report.messages_acked >= 30 * 16
    assert report.points_stored == report.points_expected == 30 * 16 * 24, summary
    assert not report.lost_devices and not report.duplicated_devices, summary
    assert report.alerts_expected > 0, "the load should make alerts to compare"
    assert not report.alerts_missing and not report.alerts_extra, summary
    assert report.ok and "PASS" in summary
