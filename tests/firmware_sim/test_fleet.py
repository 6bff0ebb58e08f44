"""The simulated fleet: determinism, schema validity over long runs, physics sanity."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec
from sealscope.topics import check_device_id
from sealscope.wire import decode_state, decode_telemetry, encode


def _rounds(fleet: Fleet, n: int) -> list[list[bytes]]:
    return [[encode(u.telemetry) for u in fleet.next_uplinks()] for _ in range(n)]


def _readings(fleet: Fleet, rounds: int) -> dict[str, np.ndarray]:
    """Readings of every sample as (devices, rounds * samples) arrays; NaN = absent."""
    n, s = fleet.spec.devices, fleet.spec.samples_per_uplink
    names = ("t", "p_in_kpa", "p_out_kpa", "leak_mm3s", "position_pct", "stroke_s")
    out = {name: np.full((n, rounds * s), np.nan) for name in names}
    for r in range(rounds):
        for i, uplink in enumerate(fleet.next_uplinks()):
            for j, sample in enumerate(uplink.telemetry.samples):
                for name in names:
                    value = getattr(sample, name)
                    if value is not None:
                        out[name][i, r * s + j] = value
    return out


def test_fleet_same_seed_gives_same_devices_and_bytes() -> None:
    spec = FleetSpec(devices=60, seed=7)
    a, b = Fleet(spec), Fleet(spec)
    assert a.devices == b.devices
    assert [encode(s) for _, s in a.states()] == [encode(s) for _, s in b.states()]
    assert _rounds(a, 5) == _rounds(b, 5)
    assert a.truth() == b.truth()


def test_fleet_different_seed_differs() -> None:
    a, b = Fleet(FleetSpec(devices=60, seed=7)), Fleet(FleetSpec(devices=60, seed=8))
    assert a.devices != b.devices
    assert _rounds(a, 1) != _rounds(b, 1)


def test_fleet_devices_are_plausible_registry_records() -> None:
    fleet = Fleet(FleetSpec(devices=500, seed=1, valve_share=0.6))
    ids = [d.device_id for d in fleet.devices]
    assert len(set(ids)) == 500
    for n, device in enumerate(fleet.devices, start=1):
        check_device_id(device.device_id)
        letter = "V" if device.kind == "valve" else "P"
        assert re.fullmatch(rf"{device.manufacturer}-{letter}-{n:06d}", device.device_id)
        assert device.model and device.batch.startswith(device.manufacturer)
        assert device.site.startswith(device.region) and device.firmware
        assert device.dn is not None and device.pn in (10, 16, 25, 40)
        if device.kind == "valve":
            assert device.seat_material and device.leakage_class
    assert sum(d.kind == "valve" for d in fleet.devices) == 300
    assert len({d.manufacturer for d in fleet.devices}) >= 3


def test_fleet_spec_rejects_impossible_values() -> None:
    for bad in (
        {"devices": 0},
        {"valve_share": 1.5},
        {"samples_per_uplink": 0},
        {"onset_uplinks": (5, 2)},
        {"degrade_factor": 0.5},
    ):
        with pytest.raises(ValueError):
            FleetSpec(**bad)  # type: ignore[arg-type]


def test_fleet_payloads_decode_over_long_run() -> None:
    # Long enough for batteries to drain, demand cycles to repeat and leaks to grow fully.
    fleet = Fleet(FleetSpec(devices=150, seed=3, degrading_share=0.5))
    last_t = dict.fromkeys(fleet.device_ids, 0.0)
    for expected_seq in range(300):
        for uplink in fleet.next_uplinks():
            msg = decode_telemetry(encode(uplink.telemetry), device_id=uplink.device_id)
            assert msg.seq == expected_seq
            assert len(msg.samples) == fleet.spec.samples_per_uplink
            times = [s.t for s in msg.samples]
            assert times[0] > last_t[uplink.device_id] and times == sorted(times)
            last_t[uplink.device_id] = times[-1]
    for device_id, state in fleet.states():
        assert decode_state(encode(state), device_id=device_id).seq == 300


def test_fleet_valves_leak_only_when_closed_and_report_actuation() -> None:
    fleet = Fleet(FleetSpec(devices=100, seed=5))
    r = _readings(fleet, 40)
    valves, pumps = fleet.is_valve, ~fleet.is_valve
    closed = r["position_pct"][valves] == 0.0
    assert closed.mean() > 0.8  # mostly closed
    assert (~closed).any()  # with occasional open periods
    has_leak = ~np.isnan(r["leak_mm3s"][valves])
    np.testing.assert_array_equal(has_leak, closed)
    # Stroke time is reported exactly on the samples where the position changed.
    pos = r["position_pct"][valves]
    moved = np.zeros_like(closed)
    moved[:, 1:] = (pos[:, 1:] == 0.0) != (pos[:, :-1] == 0.0)
    np.testing.assert_array_equal(~np.isnan(r["stroke_s"][valves])[:, 1:], moved[:, 1:])
    # Closed valves see line pressure upstream and a drained downstream side.
    assert np.all(r["p_out_kpa"][valves][closed] < 20.0)
    assert np.all(r["p_in_kpa"][valves][closed] > 150.0)
    # Pumps: seal leakage on every sample, no valve position.
    assert np.all(~np.isnan(r["leak_mm3s"][pumps]))
    assert np.all(np.isnan(r["position_pct"][pumps]))


def test_fleet_degrading_valves_grow_healthy_stay_within_class() -> None:
    spec = FleetSpec(devices=200, seed=11, degrading_share=0.3)
    fleet = Fleet(spec)
    rounds = spec.onset_uplinks[1] + spec.degrade_span_uplinks + 5
    r = _readings(fleet, rounds)
    with np.errstate(invalid="ignore", divide="ignore"):
        coeff = r["leak_mm3s"] / np.sqrt(r["p_in_kpa"] - r["p_out_kpa"])
    truth = fleet.truth()
    late = slice((rounds - 5) * spec.samples_per_uplink, None)
    checked_degrading = 0
    for i, t in enumerate(truth):
        if t.kind != "valve":
            assert not t.is_degrading and t.onset_t is None
            continue
        assert t.allowable_leak_mm3s is not None and t.leak_coeff_baseline is not None
        baseline = np.nanmedian(coeff[i, :50])
        now = np.nanmedian(coeff[i, late])
        # True coefficient, free of sensor noise, at the end of the run.
        c_end = fleet.leak_coeff(r["t"][i, -1])[i]
        if t.is_degrading:
            checked_degrading += 1
            assert t.onset_t is not None and t.onset_t > spec.start_t
            assert c_end == pytest.approx(t.leak_coeff_baseline * spec.degrade_factor)
            assert now / baseline > 0.5 * spec.degrade_factor
        else:
            assert c_end == t.leak_coeff_baseline
            assert 0.8 < now / baseline < 1.25
            # Normalised to ISO 5208 test pressure (1.1 x PN), every reading is inside class.
            test_dp_kpa = 110.0 * fleet.devices[i].pn  # type: ignore[operator]
            at_test = coeff[i][~np.isnan(coeff[i])] * math.sqrt(test_dp_kpa)
            assert at_test.max() < t.allowable_leak_mm3s
    assert checked_degrading == round(sum(t.kind == "valve" for t in truth) * 0.3)


def test_fleet_degradation_is_catchable_within_minutes_at_defaults() -> None:
    # A naive stand-in for the seat-leak detector: baseline = median coefficient of the
    # first 30 closed samples, alarm when the median of the last 20 closed is 3x that.
    # At the default one round per wall second, every degrading valve must alarm within
    # 20 rounds of its onset, and no healthy valve ever.
    spec = FleetSpec(devices=300, seed=2)
    fleet = Fleet(spec)
    rounds = spec.onset_uplinks[1] + 40
    r = _readings(fleet, rounds)
    with np.errstate(invalid="ignore", divide="ignore"):
        coeff = r["leak_mm3s"] / np.sqrt(r["p_in_kpa"] - r["p_out_kpa"])
    s = spec.samples_per_uplink
    for i, t in enumerate(fleet.truth()):
        if t.kind != "valve":
            continue
        closed = np.flatnonzero(~np.isnan(coeff[i]))
        baseline = np.median(coeff[i, closed[:30]])
        alarm_round = None
        for k in range(30, len(closed)):
            if np.median(coeff[i, closed[k - 19 : k + 1]]) > 3.0 * baseline:
                alarm_round = closed[k] // s
                break
        if t.is_degrading:
            assert t.onset_t is not None
            onset_round = (t.onset_t - spec.start_t) / spec.uplink_span_s
            assert alarm_round is not None, t.device_id
            assert onset_round < alarm_round + 1 < onset_round + 20, t.device_id
        else:
            assert alarm_round is None, t.device_id
