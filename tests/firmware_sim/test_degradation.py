"""Wear with ground truth: onset models, modes, batches, limit crossings, truth export."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec
from firmware_sim.physics import required_torque_nm
from tests.firmware_sim.helpers import ENGINES, readings


@pytest.mark.parametrize("engine", ENGINES)
def test_window_mode_gradual_and_step_leaks_grow_healthy_stay(engine: str) -> None:
    spec = FleetSpec(devices=300, seed=11, degrading_share=0.4, step_share=0.4, engine=engine)
    fleet = Fleet(spec)
    rounds = spec.onset_uplinks[1] + spec.degrade_span_uplinks + 5
    r = readings(fleet, rounds)
    dp = r["p_in_kpa"] - r["p_out_kpa"]
    with np.errstate(invalid="ignore", divide="ignore"):
        coeff = r["leak_mm3s"] / dp ** fleet.leak_n[:, None]
    truth = {t.device_id: t for t in fleet.truth()}
    modes = set()
    for i in fleet.valve_idx:
        t = truth[fleet.device_ids[i]]
        before = r["true_t"][i] < (t.onset_t or math.inf)
        early, late = coeff[i, before][:40], coeff[i, -50:]
        if np.isnan(early).sum() > 30 or np.isnan(late).sum() > 40:
            continue  # a valve that was open most of the time says little about its seat
        ratio = np.nanmedian(late) / np.nanmedian(early)
        modes.add(t.mode)
        if t.mode == "leak_gradual":
            assert ratio > 0.5 * spec.degrade_factor
        elif t.mode == "leak_step":
            # a step: the first closed reading after the onset is already far up
            after = np.flatnonzero(~before & ~np.isnan(coeff[i]))
            assert coeff[i, after[0]] / np.nanmedian(early) > 0.2 * spec.degrade_factor
        else:
            assert t.mode == "none" and 0.8 < ratio < 1.25
    assert modes == {"none", "leak_gradual", "leak_step"}
    valves = sum(t.kind == "valve" for t in truth.values())
    assert sum(t.is_degrading for t in truth.values()) == round(valves * 0.4)


def test_weibull_onsets_bad_batches_wear_out_markedly_faster() -> None:
    fleet = Fleet(FleetSpec.field(devices=20_000, seed=5, bad_batch_share=0.25))
    truth = fleet.fleet_truth().devices
    horizon = fleet.spec.start_t + 3 * 365 * 86_400.0
    worn = np.array([t.onset_t is not None and t.onset_t < horizon for t in truth])
    bad = np.array([t.is_bad_batch for t in truth])
    assert bad.any() and (~bad).any()
    assert worn[bad].mean() > 2.0 * worn[~bad].mean()
    # onsets are never before the start: a device that wore out earlier was repaired
    onsets = [t.onset_t for t in truth if t.onset_t is not None]
    assert min(onsets) >= fleet.spec.start_t
    assert {t.mode for t in truth} == {"none", "leak_gradual", "leak_step", "friction_gradual"}
    assert all(t.mode != "friction_gradual" for t in truth if t.kind == "pump")


def test_limit_crossing_matches_true_leak_at_test_pressure() -> None:
    fleet = Fleet(FleetSpec(devices=400, seed=3, degrading_share=0.5, step_share=0.3))
    for t in fleet.truth():
        i = fleet.index_of[t.device_id]
        if t.kind != "valve" or t.mode == "none":
            assert t.limit_crossing_t is None or t.mode != "none"
            continue
        test_dp = 110.0 * fleet.pn[i]
        at_test = (
            fleet.leak_coeff(np.array(t.limit_crossing_t or t.onset_t))[i]
            * test_dp ** (fleet.leak_n[i])
        )
        assert t.allowable_leak_mm3s is not None
        if t.limit_crossing_t is None:
            # never crosses: even at full degradation the leak stays inside the class
            full = fleet.leak_coeff(np.array(1e10))[i] * test_dp ** fleet.leak_n[i]
            assert full < t.allowable_leak_mm3s
        elif t.mode == "leak_gradual":
            assert at_test == pytest.approx(t.allowable_leak_mm3s, rel=1e-6)
        else:
            assert at_test >= t.allowable_leak_mm3s


@pytest.mark.parametrize("engine", ENGINES)
def test_friction_wear_stalls_the_actuator_after_its_crossing_with_alarms(engine: str) -> None:
    spec = FleetSpec(
        engine=engine,
        devices=300,
        seed=9,
        degrading_share=0.5,
        step_share=0.0,
        friction_share=1.0,
        friction_factor=6.0,
        local_alarms=True,
        onset_uplinks=(0, 2),
        degrade_span_uplinks=10,
    )
    fleet = Fleet(spec)
    crossing = {t.device_id: t.limit_crossing_t for t in fleet.truth() if t.mode != "none"}
    assert crossing and any(c is not None for c in crossing.values())
    torque_grew = stalls = 0
    for _ in range(40):
        step = fleet.step()
        for d, kind, payload in zip(step.device.tolist(), step.kind, step.payload, strict=True):
            if kind == "event" and b"actuation_fault" in payload:
                device_id = fleet.device_ids[d]
                assert crossing.get(device_id) is not None, device_id
                t = json.loads(payload)["t"]
                assert t >= crossing[device_id] - fleet.spec.uplink_span_s
                stalls += 1
    assert stalls > 0
    v = fleet.valve_idx
    worn = fleet.friction_multiplier(np.full(v.size, fleet.now_t), v)
    torque_grew = int((worn > 1.0).sum())
    assert torque_grew == sum(fleet.mode[v] == 3)
    need = required_torque_nm(fleet, v, fleet.p_nom_kpa[v], worn)
    assert np.any(need > fleet.rated_torque_nm[v])


def test_truth_exports_to_json_and_csv_consistently(tmp_path: Path) -> None:
    fleet = Fleet(FleetSpec.field(devices=300, seed=4, sensor_faults_per_year=6.0))
    for _ in range(24 * 10):  # ten days
        fleet.step()
    truth = fleet.fleet_truth()
    assert any(d.sensor_faults for d in truth.devices)
    as_json = json.loads(Path(fleet.write_truth(str(tmp_path / "truth.json"))).read_text())
    assert as_json["until_t"] == fleet.now_t
    assert [d["device_id"] for d in as_json["devices"]] == list(fleet.device_ids)
    by_id = truth.by_id()
    for row in as_json["devices"]:
        d = by_id[row["device_id"]]
        assert row["batch"] == d.batch == fleet.devices[fleet.index_of[d.device_id]].batch
        assert row["onset_t"] == d.onset_t and row["mode"] == d.mode
        assert len(row["sensor_faults"]) == len(d.sensor_faults)
        for f in row["sensor_faults"]:
            assert f["start_t"] <= truth.until_t
    with open(truth.write(tmp_path / "truth.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["device_id"] for r in rows] == list(fleet.device_ids)
    for row in rows:
        d = by_id[row["device_id"]]
        assert row["is_degrading"] == str(d.is_degrading)
        assert row["sensor_faults"].count("@") == len(d.sensor_faults)
    with pytest.raises(ValueError):
        truth.write(tmp_path / "truth.txt")
