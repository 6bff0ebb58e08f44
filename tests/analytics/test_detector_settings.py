"""Detector hyper-parameters from the settings: defaults, checks, docs."""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics import DetectionService, Detector, default_detectors
from analytics.fleet_monitor import FleetMonitor
from analytics.params import Param, settings_markdown
from analytics.service import DEFAULT_DETECTORS
from sealscope.config import load_settings
from sealscope.errors import ConfigError
from sealscope.memory_alerts import MemoryAlertStore
from sealscope.wire import Sample
from tests.analytics.streams import C0, VALVE, valve_stream

README = Path(__file__).resolve().parents[2] / "analytics" / "README.md"
ALL_PARAMS = [(cls, p) for cls in DEFAULT_DETECTORS for p in cls.PARAMS]


def _hyper(obj: Any) -> Any:
    """Everything a detector was built with, compared by value (screens and tests too)."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple | list):
        return [_hyper(x) for x in obj]
    if hasattr(obj, "__dict__"):
        # learned state and counters are not hyper-parameters
        skip = {"_state", "_spec", "_n_slots", "late_samples", "duplicate_samples"}
        return (type(obj).__name__, {k: _hyper(v) for k, v in vars(obj).items() if k not in skip})
    return obj


def test_default_detectors_without_a_section_are_todays_detectors() -> None:
    absent = default_detectors()
    empty = default_detectors({})
    empty_tables = default_detectors({cls.cause: {} for cls in DEFAULT_DETECTORS})
    today = [cls() for cls in DEFAULT_DETECTORS]
    assert [d.cause for d in absent] == ["sensor_fault", "seat_leak", "actuation_wear", "pump_seal"]
    for dets in (empty, empty_tables, today):
        assert [_hyper(d) for d in dets] == [_hyper(d) for d in absent]


@pytest.mark.parametrize("cls", DEFAULT_DETECTORS, ids=lambda c: c.cause)
def test_detector_params_table_is_its_init_signature(cls: type[Detector]) -> None:
    sig = inspect.signature(cls.__init__)
    keywords = {
        n: p.default for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    table = {p.name: p.default for p in cls.PARAMS}
    assert len(table) == len(cls.PARAMS)  # no name twice
    assert sorted(table) == sorted(keywords)  # every keyword documented, nothing else
    for name, default in keywords.items():
        assert table[name] == default, name
        assert type(table[name]) is type(default), name


def test_default_detectors_apply_overrides_as_the_constructor_takes_them() -> None:
    dets = {
        d.cause: d
        for d in default_detectors(
            {
                "seat_leak": {"alarm_ratio": 4, "position_required": True},
                "pump_seal": {"temp_track_days": math.inf},
                "sensor_fault": {"screens": ["missing", "stuck"], "drift_baseline": 12},
            }
        )
    }
    seat = dets["seat_leak"]
    assert seat.alarm_ratio == 4.0 and isinstance(seat.alarm_ratio, float)  # type: ignore[attr-defined]
    assert seat.position_required is True  # type: ignore[attr-defined]
    assert seat.exponent == 0.5  # type: ignore[attr-defined]  # untouched
    assert np.isinf(dets["pump_seal"]._track_s).tolist() == [True, True, True]  # type: ignore[attr-defined]
    sensor = dets["sensor_fault"]
    assert [s.name for s in sensor.channel_screens] == ["missing", "stuck"]  # type: ignore[attr-defined]
    assert sensor.signal_screens == ()  # type: ignore[attr-defined]
    # detectors not named keep their defaults
    assert _hyper(dets["actuation_wear"]) == _hyper(default_detectors()[2])


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        ({"multivariate": {}}, "detectors.multivariate",
         "unknown detector; known: sensor_fault, seat_leak, actuation_wear, pump_seal"),
        ({"seat_leak": {"warn_ratio": 2.0}}, "detectors.seat_leak.warn_ratio",
         "unknown parameter; known: exponent, closed_max_pct, "),
        ({"seat_leak": {"alarm_ratio": 1.0}}, "detectors.seat_leak.alarm_ratio",
         "1.0 is outside (1, inf)"),
        ({"seat_leak": {"exponent": 0}}, "detectors.seat_leak.exponent", "0 is outside (0, 2]"),
        ({"seat_leak": {"baseline_samples": 5000}}, "detectors.seat_leak.baseline_samples",
         "5000 is outside [3, 4096]"),
        ({"seat_leak": {"baseline_samples": 48.0}}, "detectors.seat_leak.baseline_samples",
         "expected an integer"),
        ({"seat_leak": {"alarm_ratio": "4"}}, "detectors.seat_leak.alarm_ratio",
         "expected a number"),
        ({"seat_leak": {"alarm_ratio": True}}, "detectors.seat_leak.alarm_ratio",
         "expected a number"),
        ({"seat_leak": {"alarm_ratio": math.nan}}, "detectors.seat_leak.alarm_ratio",
         "nan is outside (1, inf)"),
        ({"seat_leak": {"position_required": 1}}, "detectors.seat_leak.position_required",
         "expected true or false"),
        ({"pump_seal": {"temp_track_days": 0.0}}, "detectors.pump_seal.temp_track_days",
         "0.0 is outside (0, inf]"),
        ({"actuation_wear": {"h_shifts": 0.5}}, "detectors.actuation_wear.h_shifts",
         "0.5 is outside (0.5, inf)"),
        ({"sensor_fault": {"screens": ["stuck", "wobbly"]}}, "detectors.sensor_fault.screens",
         "['wobbly'] not among stuck, missing, spiking, pressure_drift, leak_drift"),
        ({"sensor_fault": {"channels": "p_in_kpa"}}, "detectors.sensor_fault.channels",
         "expected a list of names"),
        # combinations the constructor refuses name the detector's table
        ({"seat_leak": {"clear_ratio": 4.0}}, "detectors.seat_leak",
         "need clear_ratio < alarm_ratio"),
        ({"sensor_fault": {"screens": []}}, "detectors.sensor_fault",
         "channels and screens must not be empty"),
        ({"sensor_fault": {"learn_samples": 50}}, "detectors.sensor_fault",
         "need learn_samples >= train_samples"),
    ],
)  # fmt: skip
def test_default_detectors_refuse_bad_settings_naming_the_key(
    section: dict[str, dict[str, Any]], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        default_detectors(section)
    assert info.value.setting == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{key}: ")


def _interval(p: Param) -> tuple[float, bool, float, bool]:
    m = re.fullmatch(r"([\[(])(-?[\w.]+), (-?[\w.]+)([\])])", str(p.range))
    assert m, f"{p.name}: range {p.range!r} is not an interval"
    return float(m[2]), m[1] == "[", float(m[3]), m[4] == "]"


NUMERIC = [(cls, p) for cls, p in ALL_PARAMS if not isinstance(p.default, bool | tuple)]


@pytest.mark.parametrize(("cls", "param"), NUMERIC, ids=[f"{c.cause}.{p.name}" for c, p in NUMERIC])
def test_detector_init_checks_every_numeric_range_of_its_table(
    cls: type[Detector], param: Param
) -> None:
    lo, lo_closed, hi, hi_closed = _interval(param)
    step = 1 if isinstance(param.default, int) else 1e-9 * max(1.0, abs(lo))
    outside = []
    if math.isfinite(lo):
        outside.append(lo if not lo_closed else lo - step)
    if math.isfinite(hi):
        outside.append(hi if not hi_closed else hi + step)
    assert outside, f"{param.name} has no bound at all"
    if isinstance(param.default, float):
        outside.append(math.nan)
    for value in outside:
        if isinstance(param.default, int):
            value = int(value)
        with pytest.raises(ValueError, match=param.name):
            cls(**{param.name: value})
    # a closed bound is allowed, unless another parameter's constraint forbids it alone
    for bound, closed in ((lo, lo_closed), (hi, hi_closed)):
        if closed and math.isfinite(bound):
            value = int(bound) if isinstance(param.default, int) else bound
            assert param.problem(value) is None


def test_readme_settings_tables_are_the_params_tables() -> None:
    text = README.read_text(encoding="utf-8")
    m = re.search(
        r"<!-- detector-params:begin[^>]*-->\n(.*?)<!-- detector-params:end -->", text, re.S
    )
    assert m, "analytics/README.md lost its detector-params markers"
    expected = settings_markdown({cls.cause: cls.PARAMS for cls in DEFAULT_DETECTORS})
    assert m[1] == expected, (
        "analytics/README.md settings tables differ from the detectors' PARAMS; paste:\n" + expected
    )
    for cls, p in ALL_PARAMS:  # every parameter is listed, under its detector
        section = m[1].split(f"`[detectors.{cls.cause}]`")[1].split("`[detectors.")[0]
        assert f"| `{p.name}` |" in section


def test_readme_toml_example_loads_and_builds(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example
    config = tmp_path / "sealscope.toml"
    config.write_text(example[1])
    settings = load_settings(config)
    assert settings.detectors == tomllib.loads(example[1])["detectors"]
    dets = {d.cause: d for d in default_detectors(settings.detectors)}
    assert dets["seat_leak"].alarm_ratio == 4.0  # type: ignore[attr-defined]


def _leaky_valve_run(service: DetectionService) -> list[str]:
    """Ten days healthy, then a 5x seat leak for ten days; the alert actions taken."""
    rng = np.random.default_rng(3)
    n = 20 * 24
    c = np.where(np.arange(n) < 10 * 24, C0, 5 * C0)
    stream = valve_stream(rng, c, n)
    device = dataclasses.replace(VALVE, device_id="ACME-V-0009")
    actions = []
    for day in range(20):
        rows = range(day * 24, (day + 1) * 24)
        service.observe(
            device,
            [
                Sample(
                    t=float(stream.t_s[i]),
                    p_in_kpa=float(stream.p_in_kpa[i]),
                    p_out_kpa=float(stream.p_out_kpa[i]),
                    leak_mm3s=float(stream.leak_mm3s[i]),
                    position_pct=float(stream.position_pct[i]),
                )
                for i in rows
            ],
        )
        actions += [f"{c.cause}:{c.action}" for c in service.flush()]
    return actions


def test_detection_service_from_settings_runs_the_configured_detectors(tmp_path: Path) -> None:
    default = load_settings(data_dir=tmp_path / "a")
    tuned = tmp_path / "tuned.toml"
    tuned.write_text("[detectors.seat_leak]\nalarm_ratio = 40.0\nclear_ratio = 2.0\n")
    deaf = load_settings(tuned, data_dir=tmp_path / "b")

    by_default = DetectionService.from_settings(default, alerts=MemoryAlertStore())
    assert by_default._state_path == default.detector_state_path
    assert "seat_leak:raised" in _leaky_valve_run(by_default)  # 5x is over the default 3x
    by_tuned = DetectionService.from_settings(deaf, alerts=MemoryAlertStore())
    seat = next(d for d in by_tuned.detectors if d.cause == "seat_leak")
    assert seat.alarm_ratio == 40.0  # type: ignore[attr-defined]
    # the CUSUM accrues only above sqrt(alarm_ratio), 6.3x: a 5x leak no longer raises
    assert "seat_leak:raised" not in _leaky_valve_run(by_tuned)


def test_detection_service_from_settings_refuses_a_bad_section(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[detectors.seat_leak]\nalarm_ratio = 0.5\n")
    settings = load_settings(config, data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"detectors\.seat_leak\.alarm_ratio: 0\.5 is outside"):
        DetectionService.from_settings(settings, alerts=MemoryAlertStore())


def test_fleet_monitor_from_settings_keeps_its_state_under_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", risk_every_s=60.0)
    alerts = MemoryAlertStore()
    detection = DetectionService.from_settings(settings, alerts=alerts)
    monitor = FleetMonitor.from_settings(settings, detection=detection, alerts=alerts)
    assert monitor._apply_every_s == 60.0
    device = dataclasses.replace(VALVE, device_id="ACME-V-0010")
    monitor.observe(device, [Sample(t=1_767_225_600.0, p_in_kpa=500.0)])
    monitor.flush()
    monitor.save()
    for path in (
        settings.detector_state_path,
        settings.fleet_risk_state_path,
        settings.risk_table_path,
    ):
        assert path.is_file(), path
    restored = FleetMonitor.from_settings(
        settings, detection=DetectionService.from_settings(settings, alerts=alerts), alerts=alerts
    )
    assert restored.table().devices == 1
