"""``sealscope detect`` on recorded-style rig data: quantised channels, slow drifts,
warm-up, telling a seal leak from gear damage, the CLI as a user meets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.evidence import fmt_rul, tidy_evidence
from analytics.multivariate import RobustMahalanobis, chi2_quantile
from analytics.offline import run_detect
from analytics.resolution import resolution
from composition.cli import main
from tests.analytics.recorded_rigs import (
    PUMP_HEADER,
    VALVE_HEADER,
    pump_loop,
    read_flags,
    valve_bench,
    write_csv,
)


def test_resolution_finds_the_quantum_of_a_stepped_channel() -> None:
    assert resolution([8.1, 8.2, 8.2, 8.0, 8.2]) == pytest.approx(0.1)
    assert resolution([3.0, 3.0]) == 0.0


def test_multivariate_quantised_channel_keeps_a_bounded_scale_and_threshold() -> None:
    data = pump_loop(4000, drift_c=0.0)
    x = data[:, 1:6]
    model = RobustMahalanobis().fit(x)
    assert model.scale_ is not None and model.resolution_ is not None
    # the 0.1 bar transmitters sit on one level most of the time: spread >= half a step
    assert (model.scale_[:2] >= 0.05 - 1e-12).all()
    assert model.threshold_ < 3 * float(chi2_quantile(1 - model.alpha, 5))


def test_detect_quantised_channel_carrying_the_fault_is_detected(tmp_path: Path) -> None:
    data = pump_loop(12_000, drift_c=0.0, fault=(9000, 9600), discharge_drop_bar=0.5)
    src = write_csv(tmp_path / "pump.csv", PUMP_HEADER, data)
    summary = run_detect(input=src, output=tmp_path / "o.csv", time_column="time")
    flag, causes = read_flags(tmp_path / "o.csv")
    assert flag[9000:9600].mean() > 0.9
    assert flag[:9000].mean() < 0.01 and flag[9700:].mean() < 0.01
    assert all(
        "p_discharge_bar" in c for c, f in zip(causes[9000:9600], flag[9000:9600], strict=True) if f
    )
    assert summary.scales["p_discharge_bar"][0] == pytest.approx(0.1)


def test_detect_slow_temperature_drift_flags_under_one_percent(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "drift.csv", PUMP_HEADER, pump_loop(20_000, drift_c=2.0))
    summary = run_detect(input=src, output=tmp_path / "o.csv", time_column="time")
    assert summary.rows_flagged < 0.01 * summary.rows, summary.report()
    assert summary.drift_sigma["fluid_c"] > 3  # followed, and the report says so
    assert "baseline followed" in summary.report()


def test_detect_step_fault_during_a_drift_is_still_detected(tmp_path: Path) -> None:
    data = pump_loop(20_000, drift_c=2.0, fault=(15_000, 15_600))
    src = write_csv(tmp_path / "drift.csv", PUMP_HEADER, data)
    summary = run_detect(input=src, output=tmp_path / "o.csv", time_column="time")
    flag, _ = read_flags(tmp_path / "o.csv")
    assert flag[15_000:15_600].mean() > 0.9
    assert flag[:15_000].mean() < 0.01
    seg = [s for s in summary.segments if s.rows > 100]
    assert seg and ("vib_mms" in seg[0].explanation and "motor_a" in seg[0].explanation)


def test_detect_warmup_is_reported_and_skipped(tmp_path: Path) -> None:
    data = pump_loop(12_000, drift_c=0.5, warmup_rows=400)
    src = write_csv(tmp_path / "warm.csv", PUMP_HEADER, data)
    seen = run_detect(input=src, output=tmp_path / "a.csv", time_column="time")
    assert 300 <= seen.warmup_rows <= 1200, seen.warmup_by_channel
    assert {"fluid_c", "flow_lmin"} <= set(seen.warmup_by_channel)
    assert "--skip-warmup" in seen.report()
    skipped = run_detect(input=src, output=tmp_path / "b.csv", time_column="time", skip_warmup=True)
    flag, causes = read_flags(tmp_path / "b.csv")
    assert (
        skipped.warmup_skipped and causes[: skipped.warmup_rows] == ["warmup"] * skipped.warmup_rows
    )
    assert flag.mean() < 0.01
    assert skipped.rows_scored == 12_000 - skipped.warmup_rows
    given = run_detect(input=src, output=tmp_path / "c.csv", time_column="time", warmup_rows=700)
    assert given.warmup_rows == 700 and read_flags(tmp_path / "c.csv")[1][699] == "warmup"


VALVE_MAP = (
    "leak=leak_mlmin:ml/min,pin=P1_bar:bar,pout=P2_bar:bar,pos=position,"
    "current=motor_a,vib=vib_mms,temp=temp_c"
)


def test_detect_tells_a_seal_leak_from_gear_damage(tmp_path: Path) -> None:
    seal = write_csv(tmp_path / "seal.csv", VALVE_HEADER, valve_bench(seal_leak_from=3000))
    gear = write_csv(tmp_path / "gear.csv", VALVE_HEADER, valve_bench(gear_damage_from=3000))
    kw = {"time_column": "time", "columns": VALVE_MAP, "train_rows": (0, 1999)}
    a = run_detect(input=seal, output=tmp_path / "a.csv", **kw)
    b = run_detect(input=gear, output=tmp_path / "b.csv", **kw)
    assert a.detectors == ["seat_leak", "multivariate"] == b.detectors
    seal_segs = [s for s in a.segments if s.cause.startswith("seat_leak")]
    assert seal_segs and "leak/ΔP^0.5" in seal_segs[0].explanation
    assert sum(s.rows for s in seal_segs) > 2500
    assert not any(s.cause.startswith("seat_leak") for s in b.segments)
    gear_segs = [s for s in b.segments if s.rows > 100]
    assert gear_segs and all(s.cause.startswith("multivariate:") for s in gear_segs)
    assert "vib_mms" in gear_segs[0].explanation and "motor_a" in gear_segs[0].explanation


def test_cli_detect_train_rows_flow_units_and_detectors_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(tmp_path / "pump.csv", PUMP_HEADER, pump_loop(3000, drift_c=0.0))
    out = tmp_path / "o.csv"
    argv = ["detect", str(src), "-o", str(out), "--time-column", "time", "--kind", "pump"]
    code = main([*argv, "--train-rows", "0:399", "--map", "flow=flow_lmin:lmin,vib=vib_mms"])
    text = capsys.readouterr().out
    assert code == 0
    assert "(400 rows)" in text
    assert "not run:     seat_leak: needs a leak rate" in text
    assert "features:    flow_lmin, vib_mms" in text
    code = main([*argv, "--train", "0,399"])
    err = capsys.readouterr().err
    assert code == 2 and "--train-rows" in err and "isoformat" not in err
    iso = tmp_path / "iso.csv"
    iso.write_text(
        "t,a,b\n" + "".join(f"2024-06-01T00:{m:02d}:00,{m % 7},{m % 5}\n" for m in range(60))
    )
    assert main(["detect", str(iso), "-o", str(out), "--time-column", "t", "--train", "0,399"]) == 2
    err = capsys.readouterr().err
    assert "--train-rows" in err and "isoformat" not in err
    assert main([*argv, "--train-rows", "zero:399"]) == 2
    assert "FIRST:LAST" in capsys.readouterr().err


def test_evidence_values_are_finite_rounded_and_say_what_they_mean() -> None:
    e = tidy_evidence(
        {"allowable_mm3s": 4.999999999999999, "growth_per_30d": 3.6e209, "ratio": float("nan"),
         "since": 1717200000.123, "trend_t": 2.345678}
    )  # fmt: skip
    assert e == {"allowable_mm3s": 5.0, "growth_per_30d": 1000.0, "ratio": None,
                 "since": 1717200000.123, "trend_t": 2.346}  # fmt: skip
    assert fmt_rul(0.0, alarm_confirmed=False) != "0 h"
    assert "not yet confirmed" in fmt_rul(0.0, alarm_confirmed=False)
    assert fmt_rul(5 * 86400.0, alarm_confirmed=False) == "5 days"
