"""``Fleet.step_batch``: the same round as ``step()``, as columns instead of JSON text."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec, SampleBatch
from sealscope.wire import SAMPLE_FIELDS, decode_telemetry
from tests.firmware_sim.helpers import hostile_field

_HOSTILE = hostile_field(40)


def _assert_round_equal(out: object, batch: SampleBatch, s: int) -> None:
    tele = [k for k, kind in enumerate(out.kind) if kind == "telemetry"]  # type: ignore[attr-defined]
    by_device = {int(out.device[k]): k for k in tele}  # type: ignore[attr-defined]
    assert sorted(by_device) == batch.device.tolist()
    for row, d in enumerate(batch.device.tolist()):
        k = by_device[d]
        assert int(out.seq[k]) == int(batch.seq[row])  # type: ignore[attr-defined]
        assert int(out.copies[k]) == int(batch.copies[row])  # type: ignore[attr-defined]
        assert int(out.attempts[k]) == int(batch.attempts[row])  # type: ignore[attr-defined]
        assert bool(out.is_acked[k]) == bool(batch.is_acked[row])  # type: ignore[attr-defined]
        assert float(out.wake_t[k]) == float(batch.wake_t[row])  # type: ignore[attr-defined]
        assert int(out.samples[k]) == s + int(batch.held_samples[row])  # type: ignore[attr-defined]
        new = decode_telemetry(out.payload[k]).samples[-s:]  # type: ignore[attr-defined]
        assert [x.t for x in new] == batch.t[row].tolist()
        for name in SAMPLE_FIELDS:
            column = batch.readings.get(name)
            got = [getattr(x, name) for x in new]
            want = [None] * s if column is None else column[row].tolist()
            assert got == [None if v != v else v for v in want], name
    events = [p for p, kind in zip(out.payload, out.kind, strict=True) if kind == "event"]  # type: ignore[attr-defined]
    assert sorted(events) == sorted(batch.events)


@pytest.mark.parametrize(
    "spec",
    [
        _HOSTILE,
        _HOSTILE.replace(buffer_samples=12, max_attempts=1),
        FleetSpec(devices=30),
        _HOSTILE.replace(buffer_samples=12, max_attempts=1, engine="compiled"),
    ],
)
def test_step_batch_carries_what_the_json_payloads_carry(spec: FleetSpec) -> None:
    as_json, as_batch = Fleet(spec), Fleet(spec)
    for _ in range(30):
        _assert_round_equal(as_json.step(), as_batch.step_batch(), spec.samples_per_uplink)
    assert as_batch.counts.as_dict() == as_json.counts.as_dict()
    assert as_batch.counts.samples_dropped > 0 or spec.radio == "ideal"


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_batches_leave_out_flat_batteries_and_keep_their_rows_while_held(engine: str) -> None:
    # a battery this small goes flat within the run: the compiled engine gathers the
    # living devices' rows into a block it reuses, but never one a batch still holds
    spec = _HOSTILE.replace(battery_mah=5.0, engine=engine)
    as_json, as_batch = Fleet(spec), Fleet(spec)
    rounds = [(as_json.step(), as_batch.step_batch()) for _ in range(24)]
    sizes = [len(batch) for _, batch in rounds]
    assert sizes[0] == spec.devices and 0 < sizes[-1] < spec.devices
    assert len(set(sizes)) > 2  # devices went flat at several rounds
    for out, batch in rounds:
        _assert_round_equal(out, batch, spec.samples_per_uplink)


def test_sample_batch_frame_round_trips() -> None:
    fleet = Fleet(_HOSTILE)
    for _ in range(12):
        batch = fleet.step_batch()
        back = SampleBatch.from_frame(batch.frame())
        assert b"".join(batch.frame_parts()) == bytes(batch.frame())
        assert back.index == batch.index and back.events == batch.events
        for name in (
            "device",
            "seq",
            "t",
            "copies",
            "attempts",
            "is_acked",
            "wake_t",
            "held_samples",
        ):
            np.testing.assert_array_equal(getattr(back, name), getattr(batch, name))
        assert back.readings.keys() == batch.readings.keys()
        for name, column in batch.readings.items():
            np.testing.assert_array_equal(back.readings[name], column)


def test_sample_batch_from_frame_refuses_other_bytes() -> None:
    with pytest.raises(ValueError, match="not a sample batch"):
        SampleBatch.from_frame(b'{"v":1}')


def test_fleet_step_batch_refuses_a_fleet_already_stepped_as_json() -> None:
    fleet = Fleet(FleetSpec(devices=3))
    fleet.step()
    with pytest.raises(RuntimeError, match="cannot mix"):
        fleet.step_batch()
