from __future__ import annotations

import socket
from pathlib import Path

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
