"""The offline pressure-hold / pressure-decay test on recorded-style bench data: a tight
seat, a leaking one, a warming or cooling trapped volume, a liquid hold against its ISO
5208 class, and a slow actuator that is no seal leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.offline import run_detect
from analytics.pressure_hold import PressureHoldTest
from composition.cli import main
from tests.analytics.recorded_rigs import (
    HOLD_HEADER,
    VALVE_HEADER,
    hold_bench,
    read_flags,
    valve_bench,
    write_csv,
)

GAS_MAP = "pin=P1_bar:bar,pout=P2_bar:bar,pos=position,temp=gas_c"
NO_TEMP = "pin=P1_bar:bar,pout=P2_bar:bar,pos=position"
# 12 cycles of 60-130 s open and 600 s held; the first 4 holds train
TRAIN = (0, 3000)


def _holds(tmp_path: Path, name: str, columns: str, **bench: object) -> list[str]:
    src = write_csv(tmp_path / f"{name}.csv", HOLD_HEADER, hold_bench(**bench))  # type: ignore[arg-type]
    s = run_detect(
        input=src, output=tmp_path / f"{name}.out.csv", time_column="time", columns=columns,
        train_rows=TRAIN, hold_volume_l=2.0,
    )  # fmt: skip
    assert "pressure_hold" in s.detectors, s.report()
    return s.holds


_TAILS = (": training hold", ": seat tight", ": seat leak beyond its ISO 5208 class",
          ": seat leak:", ": pressure rising")  # fmt: skip


def _verdicts(holds: list[str]) -> list[str]:
    """Each hold line's verdict, from its closing words."""
    return [next((v[2:] for v in _TAILS if v in h), h) for h in holds]


def test_a_leak_hidden_by_a_warming_volume_is_found_with_its_rate(tmp_path: Path) -> None:
    # 150 mm³/s of air out of 2 l at 6 bar: -7.6 Pa/s, while warming 2 K per hold adds
    # +8 Pa/s: the raw pressure barely moves
    bench = {"leak_from": 6, "leak_after_mm3s": 150.0, "warming_k": 2.0, "drift_from": 6}
    holds = _holds(tmp_path, "leak", GAS_MAP, **bench)
    verdict = _verdicts(holds)
    assert verdict[:4] == ["training hold"] * 4
    assert all(v.startswith("seat tight") for v in verdict[4:6])
    assert verdict[6:] == ["seat leak:"] * 6
    _, causes = read_flags(tmp_path / "leak.out.csv")
    assert {c for c in causes if c.startswith("pressure_hold")} == {"pressure_hold:leak"}
    # the evidence a technician reads: the compensated and raw rates, the leak in mm³/s
    late = holds[8]
    assert "kPa/s (uncompensated" in late and "K over the hold" in late
    leak = float(late.split("equivalent leak ")[1].split(" mm³/s")[0])
    assert leak == pytest.approx(150.0, rel=0.1)
    # without the temperature, the warming hides it: the test above is not trivial
    blind = _verdicts(_holds(tmp_path, "blind", NO_TEMP, **bench))
    assert "seat leak:" not in blind


def test_a_cooling_volume_does_not_fake_a_leak(tmp_path: Path) -> None:
    bench = {"warming_k": -2.0, "drift_from": 6}
    verdict = _verdicts(_holds(tmp_path, "cool", GAS_MAP, **bench))
    assert all(v.startswith(("training", "seat tight")) for v in verdict), verdict
    _, causes = read_flags(tmp_path / "cool.out.csv")
    assert not any(c.startswith("pressure_hold") for c in causes)
    # without the temperature the cooling reads as a leak: compensation is what saves it
    blind = _verdicts(_holds(tmp_path, "blind", NO_TEMP, **bench))
    assert blind[6:] == ["seat leak:"] * 6


def test_a_slow_actuator_is_not_a_seal_leak(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "slow.csv", HOLD_HEADER, hold_bench(slow_stroke_from=6))
    s = run_detect(
        input=src, output=tmp_path / "o.csv", time_column="time",
        columns=GAS_MAP + ",stroke=stroke_s", train_rows=TRAIN, hold_volume_l=2.0,
    )  # fmt: skip
    assert s.detectors == ["pressure_hold", "multivariate"]
    assert s.features == ["stroke_s"]  # the hold's channels belong to the hold test
    assert all(v.startswith(("training", "seat tight")) for v in _verdicts(s.holds))
    _, causes = read_flags(tmp_path / "o.csv")
    assert not any(c.startswith("pressure_hold") for c in causes)
    slow = [seg for seg in s.segments if seg.rows > 1000]
    assert slow and all("stroke_s" in seg.explanation for seg in slow)


def test_liquid_holds_give_leak_rates_against_the_iso_5208_class(tmp_path: Path) -> None:
    # 20 l of water (effective bulk modulus 1.5 GPa) at 10 bar, DN50 PN16 class D: the
    # limit is 0.1 mm³/s per mm of DN = 5 mm³/s at 1.1 x PN = 1760 kPa
    kw = {"medium": "liquid", "volume_l": 20.0, "p_kpa": 1000.0, "hold_s": 120,
          "leak_mm3s": 0.2, "leak_from": 6}  # fmt: skip
    found = {}
    for name, leak in (("within", 3.0), ("beyond", 10.0)):
        src = write_csv(
            tmp_path / f"{name}.csv", HOLD_HEADER, hold_bench(leak_after_mm3s=leak, **kw)
        )
        s = run_detect(
            input=src, output=tmp_path / f"{name}.out.csv", time_column="time", columns=NO_TEMP,
            train_rows=(0, 900), hold_medium="liquid", hold_volume_l=20.0,
            bulk_modulus_mpa=1500.0, dn=50, pn=16, leakage_class="D",
        )  # fmt: skip
        found[name] = s
        late = s.holds[-2]
        assert float(late.split("equivalent leak ")[1].split(" mm³/s")[0]) == pytest.approx(
            leak, rel=0.1
        )
        assert "limit of 5 mm³/s" in late
    assert _verdicts(found["within"].holds)[6:] == ["seat leak:"] * 6
    assert all(
        v == "seat leak beyond its ISO 5208 class" for v in _verdicts(found["beyond"].holds)[6:]
    )
    assert {s.cause for s in found["beyond"].segments} == {"pressure_hold:out_of_specification"}


def test_detect_says_why_the_hold_test_did_not_run(tmp_path: Path) -> None:
    # closed the whole file, but the line pressure cycles: never isolated
    src = write_csv(tmp_path / "v.csv", VALVE_HEADER, valve_bench(1500))
    s = run_detect(
        input=src, output=tmp_path / "o.csv", time_column="time",
        columns="pin=P1_bar:bar,pout=P2_bar:bar,pos=position",
    )  # fmt: skip
    assert "pressure_hold" not in s.detectors
    assert "never held" in s.not_run["pressure_hold"] and "kPa" in s.not_run["pressure_hold"]
    s = run_detect(
        input=src, output=tmp_path / "o.csv", time_column="time", columns="pin=P1_bar:bar"
    )
    assert "needs the valve position" in s.not_run["pressure_hold"]
    # pressures read as kPa when they are bar: nothing reaches 100 kPa
    s = run_detect(
        input=src, output=tmp_path / "o.csv", time_column="time",
        columns="pin=P1_bar,pos=position",
    )  # fmt: skip
    assert "map with :bar" in s.not_run["pressure_hold"]


def test_cli_detect_runs_the_hold_test_with_a_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(tmp_path / "b.csv", HOLD_HEADER, hold_bench(6, leak_from=4))
    code = main([
        "detect", str(src), "-o", str(tmp_path / "o.csv"), "--time-column", "time",
        "--map", GAS_MAP, "--train-rows", "0:2000", "--hold-volume", "2", "--hold-medium", "gas",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "detectors:   pressure_hold" in out and "holds:       6 pressure holds" in out
    assert "pressure_hold:leak" in out and "mm³/s of gas at atmospheric pressure (2 l)" in out
    assert main(["detect", str(src), "-o", str(tmp_path / "o.csv"), "--time-column", "time",
                 "--map", GAS_MAP, "--hold-volume", "-1"]) == 2  # fmt: skip
    assert "volume" in capsys.readouterr().err


def test_hold_test_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="medium"):
        PressureHoldTest(medium="plasma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bulk modulus"):
        PressureHoldTest(bulk_modulus_mpa=0)
    with pytest.raises(ValueError, match="alarm_ratio"):
        PressureHoldTest(alarm_ratio=1.0)
