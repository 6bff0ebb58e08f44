"""Offline mode on CSV files sealscope did not write: other rates, sensor sets, messy cells."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analytics.offline import (
    OUTPUT_COLUMNS,
    parse_column_map,
    run_detect,
)
from sealscope.errors import ConfigError

T0 = 1_700_000_000.0


def _write(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read(path: Path, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    return rows[0], rows[1:]


def pump_rows(
    n: int = 3000, seed: int = 0, anomaly: tuple[int, int] = (2200, 2350)
) -> list[list[str]]:
    """A centrifugal pump at 10 s with a load cycle; a bearing fault raises current and
    vibration over ``anomaly`` rows; an hour-long gap at row 1500."""
    rng = np.random.default_rng(seed)
    t = T0 + 10.0 * np.arange(n)
    t[1500:] += 3600.0
    load = 0.6 + 0.3 * np.sin(2 * np.pi * np.arange(n) / 360)
    press = 3.0 + 1.5 * load + rng.normal(0, 0.05, n)
    flow = 120 * load + rng.normal(0, 2, n)
    cur = 10 + 8 * load**2 + rng.normal(0, 0.2, n)
    vib = 1.5 + 0.5 * load + rng.normal(0, 0.1, n)
    lo, hi = anomaly
    cur[lo:hi] += 3.0
    vib[lo:hi] *= 2.0
    return [
        [
            datetime.fromtimestamp(t[i], UTC).strftime("%Y-%m-%d %H:%M:%S"),
            f"{press[i]:.3f}",
            f"{flow[i]:.1f}",
            f"{cur[i]:.2f}",
            f"{vib[i]:.3f}",
            "RUNNING",
            "1" if lo <= i < hi else "0",
        ]
        for i in range(n)
    ]


PUMP_HEADER = ["Timestamp", "Pressure_bar", "Flow_lpm", "Motor_Current_A", "Vib_RMS", "state",
               "anomaly"]  # fmt: skip


def test_detect_messy_pump_csv_flags_the_fault_and_reports_the_mess(tmp_path: Path) -> None:
    rows = pump_rows()
    rows[100][3] = "ERR"  # junk in a numeric column: line 102
    rows[200][4] = ""  # missing
    rows[250][2] = "NaN"  # missing too
    rows[300][0] = "not a time"  # line 302
    rows[1000], rows[1001] = rows[1001], rows[1000]  # out of order
    src = _write(tmp_path / "pump.csv", PUMP_HEADER, rows, delimiter=";")
    out = tmp_path / "out.csv"
    summary = run_detect(input=src, output=out, time_column="Timestamp")

    assert summary.delimiter == ";" and summary.time_format == "iso8601"
    assert summary.rows == 3000
    assert summary.median_interval_s == 10.0
    assert summary.gaps == 1 and summary.longest_gap_s == 3610.0
    assert summary.out_of_order_rows == 1
    assert summary.bad_time_lines == [302]
    assert summary.junk == {"Motor_Current_A": [102]}
    assert summary.missing == {"Flow_lpm": 1, "Vib_RMS": 1}
    # the label column is not learned from, the text column is no reading
    assert summary.features == ["Pressure_bar", "Flow_lpm", "Motor_Current_A", "Vib_RMS"]
    assert set(summary.excluded) == {"state", "anomaly"}
    assert summary.detectors == ["multivariate"]

    header, got = _read(out, ";")
    assert header == [*PUMP_HEADER, *OUTPUT_COLUMNS]
    assert len(got) == 3000
    # input order and cells untouched
    assert [r[:7] for r in got] == rows
    flag = np.array([int(r[8]) for r in got])
    assert got[300][7:] == ["", "0", "invalid_time"]
    assert got[200][7] != ""  # a row missing one reading is still scored
    truth = np.array([r[6] == "1" for r in rows])
    caught = flag[truth].mean()
    false = flag[~truth].sum()
    assert caught > 0.9, caught
    assert false <= 5, np.flatnonzero(flag & ~truth)
    causes = {r[9] for r in got if r[8] == "1"}
    assert causes and all(c.startswith("multivariate:") for c in causes)
    assert any("Vib_RMS" in c or "Motor_Current_A" in c for c in causes)


def test_detect_valve_seat_leak_in_other_units_and_epoch_ms(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n, step = 4000, 2500
    t_ms = (T0 * 1000 + 60_000 * np.arange(n)).astype(np.int64)
    p_up = 6 + 1.5 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.05, n)
    p_down = 0.2 + 0.1 * rng.random(n)
    is_open = rng.random(n) < 0.05
    c = np.where(np.arange(n) < step, 0.01, 0.05)  # 5x step in the leak coefficient
    leak_mm3s = c * np.sqrt((p_up - p_down) * 100) * np.exp(rng.normal(0, 0.15, n))
    rows = [
        [str(t_ms[i]), f"{p_up[i]:.3f}", f"{p_down[i]:.3f}",
         "" if is_open[i] else f"{leak_mm3s[i] * 0.06:.5f}", "100" if is_open[i] else "0",
         f"{20 + rng.normal(0, 0.3):.2f}"]
        for i in range(n)
    ]  # fmt: skip
    src = _write(tmp_path / "valve.csv", ["ts", "P_up", "P_down", "leak_ml_min", "pos", "T"], rows)
    out = tmp_path / "out.csv"
    summary = run_detect(
        input=src,
        output=out,
        time_column="ts",
        columns="leak=leak_ml_min:ml/min,pin=P_up:bar,pout=P_down:bar,pos=pos",
        train=(str(t_ms[0]), str(t_ms[1000])),
    )
    assert summary.time_format == "epoch_ms"
    assert summary.detectors == ["seat_leak"]
    assert summary.features == []  # every mapped signal feeds the physical model
    assert summary.train_rows == 1001
    _, got = _read(out)
    flag = np.array([int(r[7]) for r in got])
    first = int(np.argmax(flag))
    assert not flag[:step].any()
    assert step <= first <= step + 15, first
    assert flag[first:].all()  # the seat does not heal
    assert got[first][8] == "seat_leak:maintenance_required"
    scores = np.array([float(r[6]) if r[6] else np.nan for r in got])
    assert np.nanmedian(scores[:step]) < 0.3 and np.nanmedian(scores[step:]) > 1.0
    assert np.isnan(scores[is_open]).all()  # an open valve says nothing about its seat


def test_detect_training_window_decides_what_is_normal(tmp_path: Path) -> None:
    # the fault sits in the first fifth, where the default window would learn it as normal
    rows = pump_rows(n=2000, anomaly=(100, 300))
    src = _write(tmp_path / "p.csv", PUMP_HEADER, rows)
    default = run_detect(input=src, output=tmp_path / "a.csv", time_column="Timestamp")
    assert default.rows_flagged < 50
    explicit = run_detect(
        input=src,
        output=tmp_path / "b.csv",
        time_column="Timestamp",
        train=("2023-11-15T00:00:00Z", "2023-11-15T03:00:00Z"),
    )
    _, got = _read(tmp_path / "b.csv")
    flag = np.array([int(r[8]) for r in got])
    assert flag[100:300].mean() > 0.9
    assert explicit.train_rows > 500


def test_detect_epoch_seconds_unsorted_with_duplicates(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 800
    t = T0 + 30.0 * np.arange(n)
    a = rng.normal(0, 1, n)
    b = 2 * a + rng.normal(0, 0.1, n)
    b[600:620] += 1.0  # off the a-b relation; each value alone is well within its range
    order = rng.permutation(n)
    rows = [[f"{t[i]:.0f}", f"{a[i]:.4f}", f"{b[i]:.4f}"] for i in order]
    rows.append(rows[0][:])  # an exact duplicate row
    src = _write(tmp_path / "x.csv", ["epoch", "a", "b"], rows)
    summary = run_detect(input=src, output=tmp_path / "o.csv", time_column="epoch")
    assert summary.time_format == "epoch_s"
    assert summary.out_of_order_rows > 300
    assert summary.duplicate_times == 1
    _, got = _read(tmp_path / "o.csv")
    flagged_t = {float(r[0]) for r in got if r[4] == "1"}
    broken = set(t[600:620].tolist())
    assert len(flagged_t & broken) >= 15
    assert flagged_t <= broken


def test_detect_refuses_unusable_options(tmp_path: Path) -> None:
    src = _write(tmp_path / "p.csv", PUMP_HEADER, pump_rows(n=200))
    out = tmp_path / "o.csv"
    with pytest.raises(ConfigError, match="no column 'time'"):
        run_detect(input=src, output=out, time_column="time")
    with pytest.raises(ConfigError, match="unknown signal 'pressure'"):
        run_detect(input=src, output=out, time_column="Timestamp", columns="pressure=Pressure_bar")
    with pytest.raises(ConfigError, match="not a column"):
        run_detect(input=src, output=out, time_column="Timestamp", columns="leak=nope")
    with pytest.raises(ConfigError, match="training window holds 0 rows"):
        run_detect(
            input=src, output=out, time_column="Timestamp", train=("2030-01-01", "2030-02-01")
        )
    with pytest.raises(ConfigError, match="cannot read"):
        run_detect(input=tmp_path / "missing.csv", output=out, time_column="t")
    assert not out.exists()


def test_parse_column_map_converts_units() -> None:
    m = parse_column_map("leak=L:l/h, pin=P:bar,pout=Q,vib=V")
    assert m == {
        "leak_mm3s": ("L", pytest.approx(1e6 / 3600)),
        "p_in_kpa": ("P", 100.0),
        "p_out_kpa": ("Q", 1.0),
        "vib_mms": ("V", 1.0),
    }
    with pytest.raises(ConfigError, match="unit 'furlong'"):
        parse_column_map("pin=P:furlong")
