"""NB-IoT behaviour: coverage losses and retries, duplicates, clocks, battery, downlink."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec, run_simulation
from firmware_sim.radio import battery_voltage
from firmware_sim.transport import MemoryTransport
from sealscope.wire import decode_telemetry


def _field(**overrides: object) -> Fleet:
    return Fleet(FleetSpec.field(devices=400, seed=21, **overrides))  # type: ignore[arg-type]


def test_ideal_radio_sends_every_message_once() -> None:
    fleet = Fleet(FleetSpec(devices=100, seed=1))
    for _ in range(5):
        step = fleet.step()
        assert set(step.copies.tolist()) == {1} and step.is_acked.all()
    c = fleet.counts
    assert c.messages == c.transmissions == c.copies_delivered == 500
    assert c.duplicate_copies == c.messages_lost == c.messages_unacked == 0


def test_weak_coverage_loses_and_retries_duplicates_and_counts_reconcile() -> None:
    fleet = _field()
    copies = attempts = 0
    per_device_loss = np.zeros(fleet.spec.devices)
    per_device_msgs = np.zeros(fleet.spec.devices)
    for _ in range(48):
        step = fleet.step()
        copies += int(step.copies.sum())
        attempts += int(step.attempts.sum())
        assert np.all(step.copies <= step.attempts)
        assert np.all(step.attempts <= fleet.spec.max_attempts)
        np.add.at(per_device_loss, step.device, ~step.is_acked)
        np.add.at(per_device_msgs, step.device, 1)
    c = fleet.counts
    assert c.copies_delivered == copies and c.transmissions == attempts
    assert c.duplicate_copies > 0 and c.messages_lost > 0 and c.samples_resent > 0
    deep = fleet.rsrp_base_dbm < -120
    good = fleet.rsrp_base_dbm > -100
    assert deep.any() and good.any()
    loss = per_device_loss / per_device_msgs
    assert loss[deep].mean() > 5 * max(loss[good].mean(), 1e-3)


def test_unacknowledged_samples_ride_again_with_the_next_uplink() -> None:
    fleet = _field()
    seen: dict[int, list[float]] = {}
    resent = 0
    for _ in range(24):
        step = fleet.step()
        for d, kind, payload, n in zip(
            step.device.tolist(), step.kind, step.payload, step.samples.tolist(), strict=True
        ):
            if kind != "telemetry":
                continue
            times = [s.t for s in decode_telemetry(payload).samples]
            assert len(times) == n
            old = set(seen.get(d, [])) & set(times)
            resent += len(old)
            seen.setdefault(d, []).extend(times)
    assert resent == fleet.counts.samples_resent > 0


def test_buffer_overflow_drops_the_oldest_samples() -> None:
    spec = FleetSpec.field(devices=50, seed=2, buffer_samples=24, max_attempts=1)
    fleet = Fleet(spec)
    fleet.rsrp_base_dbm[:] = -150.0  # nothing gets through
    for _ in range(5):
        step = fleet.step()
        assert step.samples.max() <= 24
    assert fleet.counts.samples_dropped > 0
    assert fleet.counts.messages_lost >= 0.95 * fleet.counts.messages


def test_device_clocks_drift_within_bounds_and_some_start_wrong() -> None:
    fleet = Fleet(FleetSpec.field(devices=2000, seed=4, wrong_clock_share=0.05))
    for _ in range(3):
        fleet.step()
    t = fleet.now_t + 30 * 86_400.0  # the clock model runs on, step or not
    everyone = np.arange(fleet.spec.devices)
    offset = fleet.device_clock(np.full(fleet.spec.devices, t), everyone) - t
    elapsed = t - fleet.spec.start_t
    wrong = np.abs(fleet.clock_offset0_s) > 3600
    assert 0.02 < wrong.mean() < 0.08
    drift = offset[~wrong] - fleet.clock_offset0_s[~wrong]
    # 20 ppm sigma: within 6 sigma over the elapsed time, and not all zero
    assert np.all(np.abs(drift) <= 6 * 20e-6 * elapsed)
    assert np.std(drift) > 5e-6 * elapsed
    truth = fleet.fleet_truth().by_id()
    for i in np.flatnonzero(wrong)[:5]:
        assert truth[fleet.device_ids[i]].clock_offset_s == fleet.clock_offset0_s[i]


def test_reported_times_carry_the_device_clock() -> None:
    fleet = Fleet(FleetSpec.field(devices=100, seed=8, wrong_clock_share=0.2))
    true_first = fleet.spec.start_t + fleet.phase_s
    step = fleet.step()
    for d, kind, payload in zip(step.device.tolist(), step.kind, step.payload, strict=True):
        if kind == "telemetry":
            t0 = decode_telemetry(payload).samples[0].t
            expected = fleet.device_clock(np.array([true_first[d]]), np.array([d]))[0]
            assert t0 == pytest.approx(expected, abs=2e-3)


def test_battery_only_goes_down_and_deep_coverage_costs_more() -> None:
    fleet = _field()
    start = fleet.battery_used_mah.copy()
    last_v = None
    for _ in range(72):
        fleet.step()
        v = battery_voltage(fleet.battery_used_mah / fleet.spec.battery_mah)
        if last_v is not None:
            assert np.all(v <= last_v)
        last_v = v
    used = fleet.battery_used_mah - start
    assert np.all(used > 0)
    deep, good = fleet.rsrp_base_dbm < -118, fleet.rsrp_base_dbm > -100
    assert used[deep].mean() > 3 * used[good].mean()
    f = np.linspace(0, 1.1, 50)
    assert np.all(np.diff(battery_voltage(f)) <= 0)


async def test_downlink_reaches_a_device_right_after_its_uplink() -> None:
    fleet = Fleet(FleetSpec(devices=30, seed=3, wrong_clock_share=1.0))
    target = next(d for i, d in enumerate(fleet.device_ids) if fleet.is_valve[i])
    i = fleet.index_of[target]
    sent = {"n": 0}

    def downlink(device_id: str) -> list[bytes]:
        if device_id != target or sent["n"] >= 2:
            return []
        sent["n"] += 1
        return [json.dumps({"id": f"c{sent['n']}", "name": n}).encode() for n in ("time_sync",)] + (
            [b'{"cmd": "stroke_test"}'] if sent["n"] == 1 else [b'{"cmd": "self_destruct"}']
        )

    assert abs(fleet.clock_offset0_s[i]) > 3600
    transport = MemoryTransport(downlink=downlink)
    report = await run_simulation(fleet=fleet, uplinks=3, transport=transport, publish_state=False)
    assert report.downlinks_received == 4 and report.downlinks_applied == 3
    # the clock was set right at the first uplink's response: later samples are on time
    last = [m for m in transport.sent if m.device_id == target][-1]
    t_last = decode_telemetry(last.payload).samples[-1].t
    true_last = fleet.spec.start_t + fleet.phase_s[i] + (3 * 10 - 1) * 60.0
    assert t_last == pytest.approx(true_last, abs=1.0)
    # the stroke test ran at the next sample: stroke, torque and current reported
    second = [m for m in transport.sent if m.device_id == target][1]
    first_sample = decode_telemetry(second.payload).samples[0]
    assert first_sample.stroke_s is not None and first_sample.torque_nm is not None
