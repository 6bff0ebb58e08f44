"""Fleet risk: exact statistics (known answers from scipy), planted bad batches, many null
groups under the false-discovery control, continuous evidence, evidence text, alerts, state."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analytics.fleet_risk import (
    FleetRisk,
    _evidence_text,
    benjamini_hochberg,
    conditional_rate_test,
    eb_shrink,
    poisson_interval,
    rate_ratio_interval,
    resampled_sum_test,
)
from sealscope.memory_alerts import MemoryAlertStore
from sealscope.registry import Device
from sealscope.risk import RiskRow

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


# -- scipy-backed statistics: known answers --------------------------------------------------


def test_single_stratum_rate_test_is_scipys_exact_binomial_test() -> None:
    for k, n, p in [(5, 10, 0.2), (12, 40, 0.1), (1, 3, 0.5), (30, 30, 0.9)]:
        want = stats.binomtest(k, n, p, alternative="greater").pvalue
        assert conditional_rate_test(k, [n], [p]) == pytest.approx(want, rel=1e-9)


def test_rate_ratio_interval_is_the_clopper_pearson_share_mapped_to_a_ratio() -> None:
    # 12 group events, 100 peer events, 4 expected at the peers' rate
    lo, hi = rate_ratio_interval(12, 4.0, 100)
    ci = stats.binomtest(12, 112).proportion_ci(0.95, "exact")
    assert lo == pytest.approx(ci.low / (1 - ci.low) * 100 / 4.0)
    assert hi == pytest.approx(ci.high / (1 - ci.high) * 100 / 4.0)
    assert lo < 12 / 4.0 < hi
    # as many events as expected: the interval covers 1
    lo, hi = rate_ratio_interval(10, 10.0, 200)
    assert lo < 1.0 < hi
    # peers without events: no finite ratio
    assert rate_ratio_interval(3, 0.0, 0) == (math.inf, math.inf)


def test_resampled_sum_test_of_zero_one_scores_is_the_binomial_tail() -> None:
    # 100 devices, 10 scoring 1: a group of 20 with k ones has sum ~ Bin(20, 0.1)
    scores = np.zeros(100)
    scores[:10] = 1.0
    groups = np.full(100, -1, dtype=np.int64)
    groups[5:25] = 0  # holds 5 of the ones
    groups[50:70] = 1  # holds none
    p = resampled_sum_test(scores, groups, np.zeros(100, np.int64), 2, step=1.0)
    assert p[0] == pytest.approx(stats.binom.sf(4, 20, 0.1), rel=1e-6)
    assert p[1] == pytest.approx(1.0)


def test_resampled_sum_test_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(1)
    n, m = 4000, 200
    # skewed scores as the growth scores are: mostly noise, a few devices far out
    scores = np.where(rng.random(n) < 0.03, 10.0, np.clip(rng.normal(0, 1, n), -3, 10))
    groups = rng.integers(0, m, n)
    strata = rng.integers(0, 2, n)
    p = resampled_sum_test(scores, groups, strata, m)
    assert np.mean(p <= 0.05) <= 0.08  # conservative, never liberal beyond noise
    assert np.mean(p <= 0.5) > 0.3  # and not degenerate


def test_eb_shrink_pools_identical_groups_and_keeps_a_real_spread() -> None:
    post, post_var, mu, tau2 = eb_shrink(np.array([1.0, 1.0, 1.0]), np.array([0.1, 0.2, 0.3]))
    assert tau2 == 0.0 and mu == pytest.approx(1.0)
    assert post.tolist() == pytest.approx([1.0, 1.0, 1.0]) and (post_var == 0).all()
    means = np.array([0.0, 1.0, 2.0, 10.0])
    var = np.full(4, 0.5)
    post, _, mu, tau2 = eb_shrink(means, var)
    # equal variances: DerSimonian-Laird is the sample variance minus the sampling variance
    assert tau2 == pytest.approx(np.var(means, ddof=1) - 0.5)
    assert mu == pytest.approx(means.mean())
    shrink = tau2 / (tau2 + 0.5)
    assert post.tolist() == pytest.approx((mu + shrink * (means - mu)).tolist())


# -- continuous evidence ---------------------------------------------------------------------


def levels_fleet(
    n: int, *, seed: int, batches: int = 200, bad_batch: str | None = None, bad_share: float = 0.3
) -> tuple[FleetRisk, list[Device]]:
    """A fleet 120 days after commissioning whose devices report a degradation level: a few
    percent drift up everywhere, ``bad_share`` of ``bad_batch`` does."""
    rng = np.random.default_rng(seed)
    devices = [
        Device(
            device_id=f"L-{i:05d}",
            kind="valve" if rng.random() < 0.7 else "pump",
            manufacturer=f"M{i % 4}",
            model=f"M{i % 4}-X",
            batch=f"B{rng.integers(0, batches):03d}",
            region=f"R{rng.integers(0, 5)}",
        )
        for i in range(n)
    ]
    risk = FleetRisk()
    risk.add_devices(devices)
    ids = [d.device_id for d in devices]
    risk.observe_many(ids, np.full(n, T0), np.full(n, T0 + DAY))
    risk.observe_levels(ids, np.zeros(n), np.zeros(n, np.int8))  # commissioned
    risk.observe_many(ids, np.full(n, T0), np.full(n, T0 + 120 * DAY))
    share = np.array([bad_share if d.batch == bad_batch else 0.03 for d in devices])
    going = rng.random(n) < share
    level = rng.normal(0.0, 0.05, n) + np.where(going, rng.uniform(0.3, 2.0, n), 0.0)
    risk.observe_levels(ids, level, np.zeros(n, np.int8), np.full(n, np.inf))
    return risk, devices


@pytest.mark.parametrize("seed", range(6))
def test_fdr_raises_nothing_on_many_null_groups(seed: int) -> None:
    # 200 batches, 4 makers, 5 regions: ~210 tests a run, every group like its peers
    risk, _ = levels_fleet(5000, seed=seed)
    table = risk.table()
    assert table.tests > 200
    assert table.flagged() == []
    assert min(r.q_value for r in table.rows) > 0.01


def test_continuous_evidence_finds_a_bad_batch_before_any_alert() -> None:
    risk, devices = levels_fleet(3000, seed=2, batches=50, bad_batch="B007")
    flagged = risk.table().flagged()
    assert [r.key for r in flagged][:1] == ["batch:B007"]
    row = flagged[0]
    assert row.events == 0 and row.event_p_value == 1.0  # no alert yet: growth alone
    assert row.growth_p_value is not None and row.growth_p_value < 1e-6
    assert row.growth_ratio is not None and row.growth_ratio_low is not None
    assert row.growth_ratio_low > 2.0
    in_batch = sum(d.batch == "B007" for d in devices)
    assert row.growth_devices == in_batch and 5 <= row.growing < in_batch
    # its devices come from every maker here, so no "of model ..."
    assert row.evidence_text.startswith(
        f"batch B007: seat leak growing {row.growth_ratio:.1f}x faster than its peers (95 % CI "
    )
    assert f"{row.growing} of {in_batch} devices" in row.evidence_text


def test_levels_of_a_young_record_are_censored() -> None:
    risk, _ = levels_fleet(600, seed=3, batches=10, bad_batch="B001", bad_share=0.9)
    young = FleetRisk(min_growth_days=200.0)  # longer than the 120 days observed
    young.load_state_dict(risk.state_dict())
    row = next(r for r in young.table().rows if r.key == "batch:B001")
    assert row.growth_devices == 0 and row.growth_p_value is None and not row.flagged


def test_evidence_text_reads_as_a_quality_engineer_would() -> None:
    row = {
        "dimension": "batch",
        "group": "B-2026-07",
        "models": ("D371X",),
        "manufacturers": ("ACME",),
        "growth_ratio": 4.06,
        "growth_ratio_low": 2.31,
        "growth_ratio_high": 5.8,
        "growing": 11,
        "growth_devices": 60,
        "rate_ratio": 3.2,
        "rate_ratio_low": 1.4,
        "rate_ratio_high": None,
        "events": 5,
        "devices": 60,
        "near_limit": 2,
    }
    assert _evidence_text(row, "seat leak") == (
        "batch B-2026-07 of model D371X: seat leak growing 4.1x faster than its peers "
        "(95 % CI 2.3-5.8), 11 of 60 devices growing or alerted; seal alerts at 3.2x its "
        "peers' rate (95 % CI 1.4-inf), 5 of 60 devices; 2 projected to reach their class "
        "limit within 90 days"
    )
    quiet = {"dimension": "region", "group": "north", "events": 0, "devices": 9}
    assert _evidence_text(quiet) == "region north: no degradation evidence yet"


def test_risk_row_reads_tables_saved_before_the_new_fields() -> None:
    risk, _ = fleet(400, seed=1)
    row = risk.table().rows[0]
    old = row.as_dict()
    for name in ("models", "event_p_value", "growth_ratio", "evidence_text", "growing"):
        old.pop(name)
    again = RiskRow.from_dict(old)
    assert again.key == row.key and again.models == () and again.evidence_text == ""


def test_state_with_levels_round_trips_and_v1_state_still_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    risk, _ = levels_fleet(600, seed=4, batches=10, bad_batch="B002")
    path = tmp_path / "risk.npz"
    risk.save(path)
    again = FleetRisk()
    again.load(path)
    assert again.table() == risk.table()
    v1 = {k: v for k, v in risk.state_dict().items() if not k.startswith(("level", "ttl"))}
    v1["version"] = np.array([1])
    old = FleetRisk()
    old.load_state_dict(v1)
    assert all(r.growth_devices == 0 for r in old.table().rows)
