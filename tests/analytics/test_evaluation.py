"""Evaluation: the scoring arithmetic on a hand-made truth, and a tiny simulated run."""

from __future__ import annotations

import math

import pytest

from composition.evaluation import AlertRecord, EvalReport, TruthRecord, run_eval, score_alerts

DAY = 86_400.0
T0 = 1_767_225_600.0


def d(days: float) -> float:
    return T0 + days * DAY


TRUTH = [
    # caught 20 days before its limit, 10 days after onset
    TruthRecord("A", onset_t=d(10), crossing_t=d(40), batch="BAD-1", is_bad_batch=True),
    # alerted only after crossing: detected, but missed before the limit
    TruthRecord("B", onset_t=d(10), crossing_t=d(30), batch="BAD-1", is_bad_batch=True),
    # a sudden step straight over the limit: no warning possible
    TruthRecord("C", onset_t=d(50), crossing_t=d(50), mode="leak_step", batch="OK-2"),
    # healthy: its alert is a false alarm
    TruthRecord("D", batch="OK-2"),
    # healthy seal, broken sensor 60..70: the sensor alert is right, the seal alert is not,
    # and a sensor alert long after the fault is false
    TruthRecord("E", batch="OK-2", sensor_faults=((d(60), d(70)),)),
    # alerted before onset (false), then again after onset (caught, 45 days of lead)
    TruthRecord("F", onset_t=d(10), crossing_t=d(60), batch="OK-3"),
    # degrading, crossing after the run
    TruthRecord("G", onset_t=d(80), crossing_t=d(200), batch="OK-3"),
]
ALERTS = [
    AlertRecord("A", "seat_leak", d(20)),
    AlertRecord("B", "seat_leak", d(35)),
    AlertRecord("D", "seat_leak", d(5)),
    AlertRecord("E", "sensor_fault", d(61)),
    AlertRecord("E", "seat_leak", d(65)),
    AlertRecord("E", "sensor_fault", d(100)),
    AlertRecord("F", "seat_leak", d(5)),
    AlertRecord("F", "seat_leak", d(15)),
]


def test_score_alerts_on_a_hand_made_truth() -> None:
    flags = {"batch:BAD-1": d(30), "batch:OK-2": d(50), "manufacturer:M": d(40)}
    r = score_alerts(TRUTH, ALERTS, start_t=T0, until_t=d(100), seed=7, risk_flags=flags)
    assert r.seed == 7 and r.devices == 7 and r.days == 100
    assert r.device_months == pytest.approx(7 * 100 / (365.25 / 12))
    assert (r.degrading, r.crossed, r.instant, r.warnable) == (5, 4, 1, 3)
    assert r.caught_before_limit == 2 and r.missed == ["B"]
    assert r.caught_share == pytest.approx(2 / 3)
    assert sorted(r.lead_times_s) == [20 * DAY, 45 * DAY]
    assert r.median_lead_days == pytest.approx(32.5)
    assert r.detected == 3  # A, B, F
    assert sorted(r.delays_s) == [5 * DAY, 10 * DAY, 25 * DAY]
    assert r.median_delay_days == pytest.approx(10.0)
    assert r.false_alarms == 4  # D, E's seal alert, E's late sensor alert, F before onset
    assert r.false_alarm_devices == ["D", "E", "F"]
    assert r.false_alarms_sensor_fault == 2
    assert r.false_alarms_by_cause == {"seat_leak": 3, "sensor_fault": 1}
    assert r.sensor_fault_devices == 1
    assert r.false_alarms_per_1000_device_months == pytest.approx(
        1000 * 4 / (7 * 100 / (365.25 / 12))
    )
    assert r.bad_batches == {"BAD-1": pytest.approx(30.0)}
    # two devices, both with onsets, the first on day 10: flagged 20 days later
    assert r.bad_batch_truth == {"BAD-1": (2, 2, pytest.approx(10.0))}
    assert r.onset_to_risk_days == [pytest.approx(20.0)]
    assert r.false_risk_batches == ["batch:OK-2"]
    assert r.other_risk_flags == ["manufacturer:M"]
    text = EvalReport([r]).summary()
    assert "BAD-1 (2 devices, 2 onsets, first on day 10): flagged day 30, 20 d after" in text
    assert "median first onset to risk alert 20 d, false risk alerts 1" in text


def test_score_alerts_with_nothing_to_find() -> None:
    r = score_alerts([TruthRecord("H")], [], start_t=T0, until_t=d(30))
    assert r.false_alarms == 0 and r.warnable == 0
    assert math.isnan(r.caught_share) and math.isnan(r.median_lead_days)
    assert r.bad_batches == {}


def test_report_summary_pools_seeds() -> None:
    a = score_alerts(TRUTH, ALERTS, start_t=T0, until_t=d(100), seed=0)
    b = score_alerts(TRUTH[:1], ALERTS[:1], start_t=T0, until_t=d(100), seed=1)
    text = EvalReport([a, b], spec="hand-made").summary()
    assert "caught before limit 3/4 = 75.0 %" in text
    assert "false alarms 4 =" in text
    assert "seed 0 missed before limit: B" in text


def test_run_eval_small_fleet_end_to_end() -> None:
    # a fast-wearing fleet so that a few days hold onsets and crossings
    overrides = {
        "sample_interval_s": 1800.0,
        "samples_per_uplink": 4,
        "onset_model": "window",
        "degrading_share": 0.3,
        "onset_uplinks": (12, 24),
        "degrade_span_uplinks": 40,
    }
    report = run_eval(devices=40, days=6, seeds=[3], spec_overrides=overrides)
    (r,) = report.seeds
    assert r.devices == 40 and r.days == 6
    assert r.samples > 40 * 6 * 40  # most of 48 samples per device-day arrive
    assert r.degrading >= 5
    assert r.detected >= 1
    assert "all seeds:" in report.summary()
