from __future__ import annotations

from pathlib import Path

import pytest

from sealscope.spool import Spool, SpoolPosition


def _records(n: int, start: int = 0) -> list[tuple[str, bytes, float]]:
    return [
        (f"sealscope/v1/dev/D-{i:03d}/telemetry", b"x" * (i % 7), float(i))
        for i in range(start, start + n)
    ]


def test_spool_reads_back_what_was_appended_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300) as spool:
        for i in range(0, 50, 5):
            spool.append(_records(5, i))
        records, pos = spool.read(spool.checkpoint, max_records=1000)
        assert [r.arrival_s for r in records] == [float(i) for i in range(50)]
        assert records[3].topic == "sealscope/v1/dev/D-003/telemetry"
        assert records[3].payload == b"xxx"
        assert pos == spool.end
        assert len(list(tmp_path.glob("seg-*.log"))) > 1  # it rolled segments


def test_spool_replays_from_checkpoint_after_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200) as spool:
        spool.append(_records(30))
        first, _ = spool.read(spool.checkpoint, max_records=12)
        spool.commit(first[-1].end)

    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200) as reopened:
        rest, _ = reopened.read(reopened.checkpoint, max_records=1000)
        assert [r.arrival_s for r in rest] == [float(i) for i in range(12, 30)]


def test_spool_commit_drops_stored_segments_and_frees_bytes(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200) as spool:
        spool.append(_records(40))
        used = spool.used_bytes()
        _, pos = spool.read(spool.checkpoint, max_records=1000)
        spool.commit(pos)
        assert spool.used_bytes() == 0 < used
        assert len(list(tmp_path.glob("seg-*.log"))) == 1


def test_spool_cuts_a_torn_tail_and_keeps_the_rest(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(_records(3))
        segment = next(tmp_path.glob("seg-*.log"))
        with open(segment, "ab") as f:
            f.write(b"\x40\x00\x00\x00\x01\x02\x03\x04partial")  # a crash mid-write
    with Spool(tmp_path, max_bytes=1 << 20) as reopened:
        records, _ = reopened.read(reopened.checkpoint)
        assert [r.arrival_s for r in records] == [0.0, 1.0, 2.0]
        reopened.append(_records(1, 3))
        records, _ = reopened.read(reopened.checkpoint)
        assert [r.arrival_s for r in records] == [0.0, 1.0, 2.0, 3.0]


def test_spool_reports_full_at_its_bound(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=400, segment_bytes=10_000) as spool:
        while not spool.is_full():
            spool.append(_records(1))
        assert spool.used_bytes() >= 400
        _, pos = spool.read(spool.checkpoint)
        spool.commit(pos)
        assert not spool.is_full()


def test_spool_positions_order_across_segments() -> None:
    assert SpoolPosition(1, 500) < SpoolPosition(2, 0) < SpoolPosition(2, 1)


def test_spool_refuses_nonsense_bounds(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path, max_bytes=0)


def test_spool_counts_crashes_with_a_record_in_processing(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(_records(3))
        records, _ = spool.read(spool.checkpoint)
        assert [spool.begin(r) for r in records[:2]] == [0, 0]
        spool.finish()
        assert spool.begin(records[2]) == 0
        # the process dies here: the marker is never cleared
    for crashes in (1, 2):
        with Spool(tmp_path, max_bytes=1 << 20) as spool:
            records, _ = spool.read(spool.checkpoint)
            assert spool.begin(records[0]) == 0
            spool.finish()
            assert spool.begin(records[2]) == crashes  # and it dies again
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        records, _ = spool.read(spool.checkpoint)
        assert spool.begin(records[2]) == 3
        spool.finish()  # handled (dead-lettered) this time
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        records, _ = spool.read(spool.checkpoint)
        assert spool.begin(records[2]) == 0


def test_spool_ignores_a_torn_inflight_marker(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(_records(1))
        records, _ = spool.read(spool.checkpoint)
        spool.begin(records[0])
    marker = tmp_path / "inflight"
    data = bytearray(marker.read_bytes())
    data[0] ^= 0xFF
    marker.write_bytes(bytes(data))
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        records, _ = spool.read(spool.checkpoint)
        assert spool.begin(records[0]) == 0


def test_spool_counts_a_redelivered_copy_as_the_crashed_record(tmp_path: Path) -> None:
    poison = ("sealscope/v1/dev/D-001/telemetry", b"poison", 1.0)
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append([poison])
        records, _ = spool.read(spool.checkpoint)
        spool.begin(records[0])  # dies before its PUBACK went out
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append([(*poison[:2], 2.0), (poison[0], b"other", 3.0)])  # the broker again
        records, _ = spool.read(spool.checkpoint)
        assert [r.payload for r in records] == [b"poison", b"poison", b"other"]
        assert [spool.begin(r) for r in records] == [1, 1, 0]
