"""Fleet risk: exact statistics, planted bad batches, homogeneous fleets, alerts, state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.fleet_risk import (
    FleetRisk,
    benjamini_hochberg,
    conditional_rate_test,
    poisson_interval,
)
from sealscope.memory_alerts import MemoryAlertStore
from sealscope.registry import Device

DAY = 86_400.0
YEAR = 365.25 * DAY
T0 = 1_767_225_600.0


def fleet(
    n: int,
    *,
    seed: int,
    valve_rate: float = 0.1,
    pump_rate: float = 0.02,
    bad_batch: str | None = None,
    bad_factor: float = 4.0,
    years: float = 1.0,
    batches: int = 16,
) -> tuple[FleetRisk, list[Device]]:
    """A fleet where each device's first seal event is exponential at its kind's rate."""
    rng = np.random.default_rng(seed)
    devices = [
        Device(
            device_id=f"D-{i:05d}",
            kind="valve" if rng.random() < 0.7 else "pump",
            manufacturer=f"M{i % 4}",
            model=f"M{i % 4}-X{(i // 4) % 3}",
            batch=f"M{i % 4}-B{(i // 12) % (batches // 4)}",
            region=f"R{rng.integers(0, 5)}",
        )
        for i in range(n)
    ]
    risk = FleetRisk()
    risk.add_devices(devices)
    start = T0 + rng.uniform(0, 30 * DAY, n)  # commissioned over a month
    end = np.full(n, T0 + years * YEAR)
    risk.observe_many([d.device_id for d in devices], start, end)
    for i, d in enumerate(devices):
        rate = valve_rate if d.kind == "valve" else pump_rate
        if d.batch == bad_batch:
            rate *= bad_factor
        t = start[i] + rng.exponential(1.0 / rate) * YEAR
        if t < end[i]:
            risk.record_event(d.device_id, float(t))
    return risk, devices


# -- statistics ----------------------------------------------------------------------------


def test_conditional_rate_test_matches_binomial_tail() -> None:
    # P(X >= 5), X ~ Bin(10, 0.2) = 0.0327934976 exactly
    assert conditional_rate_test(5, [10], [0.2]) == pytest.approx(0.0327934976, rel=1e-9)
    assert conditional_rate_test(0, [10], [0.2]) == 1.0
    # two strata convolve: Bin(1, 0.5) + Bin(1, 0.5) >= 2 is 1/4
    assert conditional_rate_test(2, [1, 1], [0.5, 0.5]) == pytest.approx(0.25)
    # a stratum where the group has no exposure adds nothing
    assert conditional_rate_test(1, [3, 100], [0.5, 0.0]) == pytest.approx(1 - 0.5**3)


def test_poisson_interval_matches_garwood_tables() -> None:
    lo, hi = poisson_interval(0)
    assert lo == 0.0 and hi == pytest.approx(3.6889, abs=1e-4)
    lo, hi = poisson_interval(10)
    assert lo == pytest.approx(4.7954, abs=1e-4) and hi == pytest.approx(18.3904, abs=1e-4)


def test_benjamini_hochberg_adjusts_in_input_order() -> None:
    q = benjamini_hochberg([0.04, 0.01, 0.03, 0.5])
    assert q.tolist() == pytest.approx([0.04 * 4 / 3, 0.04, 0.04 * 4 / 3, 0.5])


# -- fleets ------------------------------------------------------------------------------


def test_fleet_risk_finds_a_planted_bad_batch() -> None:
    risk, _ = fleet(2400, seed=3, bad_batch="M1-B2", bad_factor=4.0)
    table = risk.table()
    flagged = table.flagged()
    assert [r.key for r in flagged][:1] == ["batch:M1-B2"]
    row = flagged[0]
    assert row.strength == "strong"
    assert row.rate_ratio is not None and row.rate_ratio > 2.5
    assert row.rate_ratio_low is not None and row.rate_ratio_low > 1.5
    assert row.manufacturers == ("M1",)
    assert row.devices == 150 and row.peer_devices == 2400 - 150
    # the bad batch drags its manufacturer up too, but no unrelated batch is flagged
    assert {r.key for r in flagged} <= {"batch:M1-B2", "manufacturer:M1"}


@pytest.mark.parametrize("seed", range(12))
def test_fleet_risk_raises_nothing_on_a_homogeneous_fleet(seed: int) -> None:
    risk, _ = fleet(2400, seed=seed)
    assert risk.table().flagged() == []


def test_fleet_risk_compares_within_asset_kind() -> None:
    # valves fail 5x as often as pumps; a batch of valves only is no worse than its peers
    devices = [
        Device(device_id=f"D{i}", kind="valve" if i < 300 or i % 2 else "pump",
               manufacturer="M", model="X", batch="ALLVALVES" if i < 300 else "MIXED")
        for i in range(1200)
    ]  # fmt: skip
    risk = FleetRisk(dimensions=("batch",))
    risk.add_devices(devices)
    risk.observe_many([d.device_id for d in devices], np.full(1200, T0), np.full(1200, T0 + YEAR))
    # events exactly at the kind's rate: 20 % of valves, 4 % of pumps, in every batch
    for i, d in enumerate(devices):
        share = 0.2 if d.kind == "valve" else 0.04
        if (i * 7919) % 100 < share * 100:
            risk.record_event(d.device_id, T0 + 0.5 * YEAR)
    rows = {r.group: r for r in risk.table().rows}
    assert not rows["ALLVALVES"].flagged
    assert rows["ALLVALVES"].rate_ratio == pytest.approx(1.0, abs=0.25)
    # unstratified, the same counts would look like a 1.6x excess
    assert rows["ALLVALVES"].rate_per_year > 1.5 * rows["ALLVALVES"].peer_rate_per_year


def test_fleet_risk_does_not_flag_a_small_group_on_one_event() -> None:
    risk, _ = fleet(2000, seed=5, valve_rate=0.01, pump_rate=0.01)
    lone = Device(device_id="LONE-1", kind="valve", manufacturer="TINY", model="T1", batch="T-1")
    risk.add_devices([lone])
    risk.observe_window(lone, T0, T0 + 10 * DAY)
    risk.record_event("LONE-1", T0 + 2 * DAY)
    rows = {r.key: r for r in risk.table().rows}
    tiny = rows["batch:T-1"]
    assert tiny.events == 1 and tiny.rate_ratio is not None and tiny.rate_ratio > 50
    assert not tiny.flagged
    assert not rows["manufacturer:TINY"].flagged


def test_fleet_risk_needs_min_events_even_when_significant() -> None:
    devices = [Device(device_id=f"D{i}", kind="valve", manufacturer="M", model="X",
                      batch="SMALL" if i < 2 else "BIG") for i in range(5000)]  # fmt: skip
    risk = FleetRisk(dimensions=("batch",), min_events=3)
    risk.add_devices(devices)
    risk.observe_many([d.device_id for d in devices], np.full(5000, T0), np.full(5000, T0 + YEAR))
    risk.record_event("D0", T0 + DAY)
    risk.record_event("D1", T0 + DAY)
    small = {r.group: r for r in risk.table().rows}["SMALL"]
    assert small.events == 2 and small.p_value < 1e-6  # 2 of 2 with no peer events
    assert not small.flagged


def test_fleet_risk_table_is_independent_of_call_order() -> None:
    risk_a, devices = fleet(600, seed=9, bad_batch="M0-B1")
    state = risk_a.state_dict()
    order = np.random.default_rng(0).permutation(len(devices))
    risk_b = FleetRisk()
    risk_b.add_devices([devices[i] for i in order])
    for i in order:
        d = devices[i]
        risk_b.observe_window(d, float(state["first_t"][i]), float(state["last_t"][i]))
        if math.isfinite(state["event_t"][i]):
            risk_b.record_event(d.device_id, float(state["event_t"][i]))
    a, b = risk_a.table(), risk_b.table()
    assert [(r.key, r.events, r.devices, r.flagged) for r in b.rows] == [
        (r.key, r.events, r.devices, r.flagged) for r in a.rows
    ]
    # sums run in another slot order: equal up to rounding
    assert [r.p_value for r in b.rows] == pytest.approx([r.p_value for r in a.rows], rel=1e-9)
    assert [r.exposure_days for r in b.rows] == pytest.approx(
        [r.exposure_days for r in a.rows], rel=1e-12
    )


def test_fleet_risk_counts_first_seal_event_only() -> None:
    risk = FleetRisk(dimensions=("batch",))
    d = Device(device_id="D", kind="valve", manufacturer="M", model="X", batch="B")
    risk.add_devices([d])
    risk.observe_window(d, T0, T0 + 100 * DAY)
    assert not risk.record_event("D", T0 + 5 * DAY, cause="sensor_stuck")
    assert not risk.record_event("D", T0 + 5 * DAY, cause="fleet_risk")
    assert risk.record_event("D", T0 + 50 * DAY)
    assert risk.record_event("D", T0 + 20 * DAY)  # an earlier, late-arriving alert wins
    row = risk.table().rows[0]
    assert row.events == 1
    assert row.exposure_days == pytest.approx(20.0)  # at risk until the first event


# -- alerts and state ------------------------------------------------------------------------


def test_fleet_risk_apply_raises_one_alert_per_group_and_clears_with_hysteresis() -> None:
    risk, devices = fleet(2400, seed=3, bad_batch="M1-B2", bad_factor=4.0)
    store = MemoryAlertStore()
    changes = risk.apply(store)
    raised = {c.key for c in changes if c.action == "raised"}
    assert "batch:M1-B2" in raised
    alert = next(a for a in store.alerts.values() if a.device_id == "batch:M1-B2")
    assert alert.cause == "fleet_risk" and alert.status == "open"
    assert alert.evidence["dimension"] == "batch" and alert.evidence["group"] == "M1-B2"
    assert alert.evidence["events"] >= 3 and alert.evidence["q_value"] <= 0.01
    assert "M1-B2" in alert.summary and "per device-year" in alert.summary
    assert risk.apply(store) == []  # nothing changed: no calls

    # the batch's peers catch up: many more events elsewhere dilute the evidence
    bad = {d.device_id for d in devices if d.batch == "M1-B2"}
    for d in devices:
        if d.device_id not in bad and d.kind == "valve":
            risk.record_event(d.device_id, T0 + 0.9 * YEAR)
    cleared = [c for c in risk.apply(store) if c.action == "cleared"]
    assert "batch:M1-B2" in {c.key for c in cleared}
    assert store.get(alert.id).status == "resolved"
    assert risk.active == {}


def test_fleet_risk_state_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    risk, _ = fleet(800, seed=4, bad_batch="M2-B0", bad_factor=5.0)
    risk.apply(MemoryAlertStore())
    path = tmp_path / "risk.npz"
    risk.save(path)
    again = FleetRisk()
    again.load(path)
    assert again.table() == risk.table()
    assert again.active == risk.active
