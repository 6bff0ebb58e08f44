from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from composition.embedded import pick_port
from sealscope.config import load_settings
from sealscope.errors import ConfigError


def test_settings_read_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "sealscope.toml"
    config.write_text('mqtt_host = "broker.example"\nmqtt_port = 8883\nstore = "influxdb"\n')
    monkeypatch.delenv("SEALSCOPE_CONFIG", raising=False)
    monkeypatch.setenv("SEALSCOPE_MQTT_PORT", "1884")
    settings = load_settings(config, data_dir=tmp_path / "d")
    assert settings.mqtt_host == "broker.example"  # from the file
    assert settings.mqtt_port == 1884  # the environment wins over the file
    assert settings.store == "influxdb"
    assert settings.data_dir == tmp_path / "d"  # explicit override wins over both
    assert settings.state_db == tmp_path / "d" / "sealscope.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [("SEALSCOPE_INFLUX_TOKEN", "changeme"), ("SEALSCOPE_MQTT_PORT", "70000"),
     ("SEALSCOPE_STORE", "mongodb")],
)  # fmt: skip
def test_settings_refuse_bad_values_clearly(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert name.removeprefix("SEALSCOPE_").lower() in str(info.value)


def test_settings_refuse_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml")


def test_settings_never_show_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALSCOPE_INFLUX_TOKEN", "s3cr3t-token-value")
    settings = load_settings()
    assert "s3cr3t-token-value" not in repr(settings)
    assert "s3cr3t-token-value" not in str(settings.model_dump())


def test_pick_port_takes_another_when_the_default_is_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        port = pick_port("127.0.0.1", None, taken, "MQTT broker")
        assert port != taken
        assert f"port {taken}" in caplog.text
        with pytest.raises(ConfigError, match="already in use"):
            pick_port("127.0.0.1", taken, 1883, "MQTT broker")


def test_pick_port_prefers_the_remembered_port_and_port_memory_keeps_it(tmp_path: Path) -> None:
    from composition.embedded import PortMemory

    memory = PortMemory(tmp_path / "ports.json")
    assert memory.get("mqtt") is None
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        fallback = pick_port("127.0.0.1", None, taken, "MQTT broker", memory.get("mqtt"))
        memory.remember("mqtt", fallback)
        memory.remember("api", 8123)
        # the next start takes the same fallback, not a new random one
        again = PortMemory(tmp_path / "ports.json")
        assert pick_port("127.0.0.1", None, taken, "MQTT broker", again.get("mqtt")) == fallback
    assert again.get("api") == 8123
    (tmp_path / "ports.json").write_text("not json")
    assert PortMemory(tmp_path / "ports.json").get("mqtt") is None


def test_broker_credentials_are_made_once_kept_private_and_never_shown(tmp_path: Path) -> None:
    from composition.embedded import broker_credentials

    path = tmp_path / "mosquitto" / "credentials.json"
    made = broker_credentials(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert broker_credentials(path) == made
    ingest, gateway = made["ingest"], made["gateway"]
    assert ingest.username == "sealscope-ingest" and gateway.username == "sealscope-gateway"
    # an id nobody can guess: a client using the well-known one cannot take ingest's session
    assert ingest.client_id.startswith("sealscope-ingest-") and len(ingest.client_id) > 24
    assert ingest.password != gateway.password
    assert ingest.password not in repr(made)
    path.write_text("{")
    with pytest.raises(ConfigError, match="unreadable"):
        broker_credentials(path)


def test_settings_read_detector_tables_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEALSCOPE_CONFIG", raising=False)
    monkeypatch.delenv("SEALSCOPE_DETECTORS", raising=False)
    assert load_settings(data_dir=tmp_path).detectors == {}  # absent: the built-in defaults
    config = tmp_path / "sealscope.toml"
    config.write_text(
        "mqtt_port = 1884\n\n[detectors.seat_leak]\nalarm_ratio = 4.0\nurgent_days = 60\n\n"
        '[detectors.sensor_fault]\nscreens = ["stuck", "missing"]\n'
    )
    settings = load_settings(config, data_dir=tmp_path)
    assert settings.mqtt_port == 1884
    assert settings.detectors == {
        "seat_leak": {"alarm_ratio": 4.0, "urgent_days": 60},
        "sensor_fault": {"screens": ["stuck", "missing"]},
    }


def test_settings_refuse_a_detectors_section_that_is_not_tables(tmp_path: Path) -> None:
    config = tmp_path / "sealscope.toml"
    config.write_text("[detectors]\nseat_leak = 3\n")
    with pytest.raises(ConfigError, match=r"detectors\.seat_leak"):
        load_settings(config, data_dir=tmp_path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[detectors.seat_leak]\nwarn_ratio = 2.0\n",
         "detectors.seat_leak.warn_ratio: unknown parameter; known: exponent, "),
        ("[detectors.multivariate]\nalpha = 0.01\n",
         "detectors.multivariate: unknown detector; known: sensor_fault, seat_leak, "),
        ("[detectors.pump_seal]\nvib_ratio = 1.0\n",
         "detectors.pump_seal.vib_ratio: 1.0 is outside (1, inf)"),
    ],
)  # fmt: skip
def test_cli_refuses_a_bad_detectors_section_when_settings_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    from composition.cli import main

    config = tmp_path / "sealscope.toml"
    config.write_text(toml)
    # eval would run for minutes; the section is refused before it starts
    code = main(["--config", str(config), "--data-dir", str(tmp_path), "eval", "--devices", "1"])
    assert code == 2
    assert f"sealscope: configuration error: {message}" in capsys.readouterr().err


def test_cli_eval_builds_the_configured_detectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from composition import cli, evaluation

    seen: list[object] = []

    class _Report:
        def summary(self) -> str:
            return ""

    def recording_run_eval(*, detectors: Callable[[], list[Any]], **_: object) -> _Report:
        # records what eval would run, instead of a minutes-long simulation
        seen.extend(detectors())
        return _Report()

    monkeypatch.setattr(evaluation, "run_eval", recording_run_eval)
    config = tmp_path / "sealscope.toml"
    config.write_text("[detectors.seat_leak]\nalarm_ratio = 5.0\n")
    assert cli.main(["--config", str(config), "--data-dir", str(tmp_path), "eval"]) == 0
    seat = next(d for d in seen if getattr(d, "cause", "") == "seat_leak")
    assert seat.alarm_ratio == 5.0  # type: ignore[attr-defined]
