"""The simulated fleet: determinism, schema validity over long runs, physics per asset type."""

from __future__ import annotations

import re

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec
from firmware_sim.physics import demand, required_torque_nm
from sealscope.topics import check_device_id
from sealscope.wire import decode_event, decode_state, decode_telemetry, encode
from tests.firmware_sim.helpers import ENGINES, readings


def _rounds(fleet: Fleet, n: int) -> list[tuple[list[bytes], list[int]]]:
    out = []
    for _ in range(n):
        step = fleet.step()
        out.append((step.payload, step.copies.tolist()))
    return out


@pytest.mark.parametrize("preset", ["demo", "field"])
@pytest.mark.parametrize("engine", ENGINES)
def test_fleet_same_seed_gives_same_devices_bytes_radio_and_truth(preset: str, engine: str) -> None:
    make = FleetSpec.field if preset == "field" else FleetSpec
    spec = make(devices=80, seed=7, engine=engine)
    a, b = Fleet(spec), Fleet(spec)
    assert a.devices == b.devices
    assert [encode(s) for _, s in a.states()] == [encode(s) for _, s in b.states()]
    assert _rounds(a, 6) == _rounds(b, 6)
    assert a.fleet_truth() == b.fleet_truth()
    assert a.counts == b.counts
    assert a.credentials() == b.credentials()


def test_fleet_different_seed_differs() -> None:
    a, b = Fleet(FleetSpec(devices=60, seed=7)), Fleet(FleetSpec(devices=60, seed=8))
    assert a.devices != b.devices
    assert _rounds(a, 1) != _rounds(b, 1)
    assert a.credentials() != b.credentials()


def test_fleet_devices_are_plausible_registry_records() -> None:
    fleet = Fleet(FleetSpec(devices=500, seed=1, valve_share=0.6))
    assert len(set(fleet.device_ids)) == 500
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
    assert {t for t in fleet.valve_type if t} == {"ball", "butterfly", "gate", "globe"}


@pytest.mark.parametrize(
    "bad",
    [
        {"devices": 0},
        {"valve_share": 1.5},
        {"samples_per_uplink": 0},
        {"onset_uplinks": (5, 2)},
        {"degrade_factor": 0.5},
        {"step_share": 0.8, "friction_share": 0.5},
        {"radio": "wifi"},
        {"leak_exponent": (0.7, 0.5)},
        {"max_attempts": 0},
    ],
)
def test_fleet_spec_rejects_impossible_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FleetSpec(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("preset", ["demo", "field"])
@pytest.mark.parametrize("engine", ENGINES)
def test_fleet_every_payload_decodes_and_seq_counts_up(preset: str, engine: str) -> None:
    spec = (
        FleetSpec.field(devices=150, seed=3, sensor_faults_per_year=20.0, engine=engine)
        if preset == "field"
        else FleetSpec(devices=150, seed=3, degrading_share=0.5, engine=engine)
    )
    fleet = Fleet(spec)
    last_seq: dict[int, int] = {}
    kinds = set()
    for _ in range(120):
        step = fleet.step()
        assert list(step.wake_t) == sorted(step.wake_t)
        for d, kind, payload, seq in zip(
            step.device.tolist(), step.kind, step.payload, step.seq.tolist(), strict=True
        ):
            kinds.add(kind)
            device_id = fleet.device_ids[d]
            if kind == "telemetry":
                msg = decode_telemetry(payload, device_id=device_id)
                times = [s.t for s in msg.samples]
                assert times == sorted(times) and len(set(times)) == len(times)
            else:
                msg = decode_event(payload, device_id=device_id)  # type: ignore[assignment]
            assert msg.seq == seq
            assert seq > last_seq.get(d, -1)
            last_seq[d] = seq
    for device_id, state in fleet.states():
        decode_state(encode(state), device_id=device_id)
    if preset == "field":
        assert kinds == {"telemetry", "event"}


@pytest.mark.parametrize("engine", ENGINES)
def test_valves_leak_only_when_closed_with_line_pressure_upstream(engine: str) -> None:
    fleet = Fleet(FleetSpec(devices=100, seed=5, transients_per_day=0.0, engine=engine))
    r = readings(fleet, 40)
    v = fleet.is_valve
    closed = r["position_pct"][v] == 0.0
    assert 0.75 < closed.mean() < 0.98
    np.testing.assert_array_equal(~np.isnan(r["leak_mm3s"][v]), closed)
    assert np.all(r["p_out_kpa"][v][closed] < 20.0)
    assert np.all(r["p_in_kpa"][v][closed] > 100.0)
    # seat leak follows Q = C * dP^n: normalised, it sits at the baseline coefficient
    dp = r["p_in_kpa"] - r["p_out_kpa"]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = r["leak_mm3s"] / dp ** fleet.leak_n[:, None]
    for i in np.flatnonzero(v & ~fleet.degrading):
        ratio = np.nanmedian(c[i]) / fleet.leak_c0[i]
        assert 0.85 < ratio < 1.15, fleet.device_ids[i]


@pytest.mark.parametrize("engine", ENGINES)
def test_valve_types_open_and_stroke_as_built(engine: str) -> None:
    fleet = Fleet(FleetSpec(devices=400, seed=6, engine=engine))
    r = readings(fleet, 30)
    for i in fleet.valve_idx:
        pos = r["position_pct"][i]
        opened = pos[pos > 0]
        if fleet.valve_type[i] in ("ball", "gate"):
            assert set(opened.tolist()) <= {100.0}
        else:
            assert np.all((opened >= 30.0) & (opened <= 100.0))
        # stroke, torque and current come together, on the sample of an actuation
        moved = ~np.isnan(r["torque_nm"][i])
        np.testing.assert_array_equal(moved, ~np.isnan(r["motor_a"][i]))
        changed = np.zeros_like(moved)
        changed[1:] = (pos[1:] == 0.0) != (pos[:-1] == 0.0)
        assert np.all(moved[1:] | ~changed[1:])
    multi_turn = [i for i in fleet.valve_idx if fleet.valve_type[i] in ("gate", "globe")]
    quarter = [i for i in fleet.valve_idx if fleet.valve_type[i] in ("ball", "butterfly")]
    # multi-turn stroke grows with DN; quarter-turn actuators run in fixed time
    big = [i for i in multi_turn if fleet.dn[i] >= 200]
    small = [i for i in multi_turn if fleet.dn[i] <= 65]
    assert np.nanmedian(r["stroke_s"][big]) > 2 * np.nanmedian(r["stroke_s"][small])
    assert np.nanmax(r["stroke_s"][quarter]) < 40.0


def test_actuation_torque_grows_with_differential_pressure_size_and_friction() -> None:
    fleet = Fleet(FleetSpec(devices=300, seed=2))
    v = fleet.valve_idx
    ones = np.ones(v.size)
    low = required_torque_nm(fleet, v, np.full(v.size, 200.0), ones)
    high = required_torque_nm(fleet, v, np.full(v.size, 1000.0), ones)
    worn = required_torque_nm(fleet, v, np.full(v.size, 200.0), 2.0 * ones)
    assert np.all(high > low) and np.all(worn > low)
    assert np.all(fleet.rated_torque_nm[v] > required_torque_nm(fleet, v, fleet.p_nom_kpa[v], ones))


@pytest.mark.parametrize("engine", ENGINES)
def test_line_pressure_sags_at_peak_demand(engine: str) -> None:
    spec = FleetSpec(
        devices=200, seed=4, transients_per_day=0.0, sample_interval_s=600.0, engine=engine
    )
    fleet = Fleet(spec)
    r = readings(fleet, 15)  # 25 hours
    d = demand(r["true_t"])
    p = r["p_in_kpa"] / fleet.p_nom_kpa[:, None]
    v = fleet.is_valve
    assert np.nanmean(p[v][d[v] > 0.75]) < np.nanmean(p[v][d[v] < 0.3]) - 0.1


@pytest.mark.parametrize("engine", ENGINES)
def test_transients_show_as_pressure_peaks(engine: str) -> None:
    base = Fleet(FleetSpec(devices=200, seed=4, transients_per_day=0.0, engine=engine))
    hammer = Fleet(FleetSpec(devices=200, seed=4, transients_per_day=200.0, engine=engine))
    calm, peaks = readings(base, 10), readings(hammer, 10)
    v = base.is_valve
    ratio_calm = calm["p_in_kpa"][v] / base.p_nom_kpa[v, None]
    ratio_peaks = peaks["p_in_kpa"][v] / base.p_nom_kpa[v, None]
    assert np.nanmax(ratio_calm) < 1.1 < np.nanmax(ratio_peaks)


@pytest.mark.parametrize("engine", ENGINES)
def test_pumps_follow_affinity_laws_and_report_seal_readings(engine: str) -> None:
    fleet = Fleet(FleetSpec(devices=200, seed=8, valve_share=0.0, engine=engine))
    r = readings(fleet, 20)
    speed, flow, vib = r["speed_rpm"], r["flow_m3h"], r["vib_mms"]
    assert np.all(~np.isnan(r["leak_mm3s"])) and np.all(np.isnan(r["position_pct"]))
    stopped = speed == 0.0
    assert stopped.any() and (~stopped).any()
    assert np.all(r["motor_a"][stopped] == 0.0) and np.all(flow[stopped] == 0.0)
    running = ~stopped
    ratio = speed / fleet.n_nom_rpm[:, None]
    q = flow / fleet.q_nom_m3h[:, None]
    assert np.nanmedian(q[running] / ratio[running]) == pytest.approx(1.0, rel=0.05)
    assert np.corrcoef(ratio[running], q[running])[0, 1] > 0.7
    v2 = vib / fleet.vib_base_mms[:, None]
    assert np.nanmedian(v2[running] / ratio[running] ** 2) == pytest.approx(1.0, rel=0.1)
    assert np.all(vib[stopped] < 0.3)
