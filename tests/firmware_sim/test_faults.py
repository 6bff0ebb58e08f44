"""Sensor faults are visible in the data, recorded in the truth, and leave the seal alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec
from firmware_sim.faults import FAULT_KINDS, SENSORS
from tests.firmware_sim.helpers import ENGINES, readings

FIELD = {"leak": "leak_mm3s", "pressure": "p_in_kpa"}


@pytest.mark.parametrize("engine", ENGINES)
def test_sensor_faults_show_in_readings_as_the_truth_says(engine: str) -> None:
    spec = FleetSpec(
        engine=engine,
        devices=300,
        seed=12,
        degrading_share=0.0,
        sensor_faults_per_year=150.0,  # ~ one episode every 2.4 days per device
        local_alarms=True,
        sample_interval_s=600.0,
        samples_per_uplink=6,
        transients_per_day=0.0,
    )
    twin = Fleet(spec)
    clean = readings(Fleet(spec.replace(sensor_faults_per_year=0.0)), 60)
    r = readings(twin, 60)  # 2.5 days
    seen: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
    for truth in twin.truth():
        assert not truth.is_degrading
        i = twin.index_of[truth.device_id]
        in_any = np.zeros(r["true_t"].shape[1], dtype=bool)
        for f in truth.sensor_faults:
            end = np.inf if f.end_t is None else f.end_t
            active = (r["true_t"][i] >= f.start_t) & (r["true_t"][i] < end)
            in_any |= active
            name = FIELD[f.sensor]
            got, base = r[name][i, active], clean[name][i, active]
            if not active.any() or np.isnan(base).all():
                continue
            if f.kind == "dropout":
                assert np.isnan(got).all()
            elif f.kind == "stuck" and (~np.isnan(got)).sum() > 3:
                assert np.unique(got[~np.isnan(got)]).size == 1
            elif f.kind == "drift":
                later = (got - base)[~np.isnan(base) & ~np.isnan(got)]
                if later.size > 4:  # (a later episode on the same sensor may overlap it)
                    assert np.mean(later >= -1e-9) > 0.8 and np.median(later[-4:]) > 0
            seen[f.kind] += 1
        # outside every fault episode the readings are those of the fault-free twin
        for name in FIELD.values():
            np.testing.assert_array_equal(r[name][i, ~in_any], clean[name][i, ~in_any])
    assert all(seen[k] > 0 for k in ("dropout", "stuck", "drift"))
    # a dropout is noticed by the device; nothing else raises an event in a healthy fleet
    assert set(twin.counts.events) <= {"sensor_fault", "leak_alarm"}
    assert twin.counts.events.get("sensor_fault", 0) > 0
    assert set(SENSORS) == set(FIELD)


@pytest.mark.parametrize("engine", ENGINES)
def test_false_local_alarms_happen_only_during_leak_sensor_faults(engine: str) -> None:
    spec = FleetSpec(
        engine=engine,
        devices=200,
        seed=3,
        degrading_share=0.0,
        sensor_faults_per_year=300.0,
        local_alarms=True,
        transients_per_day=0.0,
    )
    fleet = Fleet(spec)
    alarms = []
    for _ in range(40):
        step = fleet.step()
        for d, kind, payload in zip(step.device.tolist(), step.kind, step.payload, strict=True):
            if kind == "event" and b"leak_alarm" in payload:
                alarms.append((fleet.device_ids[d], json.loads(payload)["t"]))
    truth = {t.device_id: t for t in fleet.truth()}
    assert alarms  # spiking and drifting leak sensors do trip the firmware's threshold
    for device_id, t in alarms:
        assert not truth[device_id].is_degrading
        assert any(
            f.sensor == "leak" and f.start_t <= t and (f.end_t is None or t < f.end_t + 1)
            for f in truth[device_id].sensor_faults
        ), device_id
