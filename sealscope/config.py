"""One settings object for every sealscope component.

Read from ``SEALSCOPE_*`` environment variables and, optionally, a TOML file named by
``--config`` or ``SEALSCOPE_CONFIG`` (environment wins over the file). Nothing reads the
environment at import time: the CLI builds ``Settings`` once and hands it down.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sealscope.errors import ConfigError

__all__ = ["Settings", "load_settings"]

# the --config file for the Settings being built right now (not the environment: no leaks)
_config_file: contextvars.ContextVar[str | None] = contextvars.ContextVar("config", default=None)
_PLACEHOLDER_SECRETS = frozenset({"changeme", "changethis", "secret", "password", "token"})


class Settings(BaseSettings):
    # an empty variable (compose's ${VAR:-}) means unset, not an empty secret
    model_config = SettingsConfigDict(
        env_prefix="SEALSCOPE_", extra="forbid", env_ignore_empty=True
    )

    data_dir: Path = Field(Path("sealscope-data"), description="SQLite files, spool, state")
    # registry, alerts, dead letters; repr=False: a PostgreSQL URL may carry a password
    database_url: str = Field(
        "",
        repr=False,
        description="sqlite:///... or postgresql+psycopg://...; default: SQLite in data_dir",
    )

    # Prometheus text format on GET /metrics, a port of each process's own; unset: off
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(None, ge=0, le=65535, description="unset: no /metrics")

    # MQTT broker the ingest and simulator talk to
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_username: str | None = "sealscope-ingest"
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = "sealscope-ingest"
    mqtt_protocol: Literal["5", "3.1.1"] = Field("5", description="3.1.1 for amqtt")
    mqtt_shared_group: str | None = Field(None, description="run several ingest workers")
    mqtt_receive_maximum: int = Field(
        2000, ge=1, le=65535, description="unacknowledged QoS 1 messages the broker may send"
    )

    # telemetry store
    store: Literal["sqlite", "influxdb"] = "sqlite"
    influx_url: str = "http://127.0.0.1:8086"
    influx_token: SecretStr | None = None
    influx_org: str = "sealscope"
    influx_bucket: str = "telemetry"
    influx_database: str | None = Field(None, description="InfluxQL database; default: bucket")
    influx_timeout_s: float = Field(10.0, gt=0)

    # ingest
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20)
    batch_max_points: int = Field(5000, ge=1)
    batch_max_age_s: float = Field(0.2, gt=0)
    ingest_workers: int = Field(
        0, ge=0, le=64, description="worker processes that decode and write (0: in-process)"
    )
    payload_max_bytes: int = Field(
        256 * 1024, ge=1024, description="larger MQTT payloads are dead-lettered unparsed"
    )
    detect: bool = True
    risk_every_s: float = Field(3600.0, gt=0, description="fleet risk re-evaluation period")
    # alerts nobody acknowledges are announced again, once per period
    renotify_after_s: float = Field(
        4 * 3600.0, ge=0, le=365 * 86400, description="re-notify open alerts; 0: never"
    )

    # scale-out detection (docs/scale-out.md): with a NATS URL, ingest publishes each stored
    # telemetry message to a JetStream stream partitioned by device and detection runs in
    # ``sealscope detect-worker`` processes; unset: detection stays inside ingest
    nats_url: str | None = Field(None, description="nats://host:4222; unset: in-process")
    nats_stream: str = Field("SEALSCOPE_BATCHES", pattern=r"^[A-Za-z0-9_-]+$")
    nats_subject: str = Field("sealscope.batches", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    nats_partitions: int = Field(8, ge=1, le=4096, description="fixed for a stream's life")
    nats_lease_ttl_s: float = Field(5.0, ge=1.0, le=300.0, description="partition failover")
    detect_reorder_s: float = Field(
        2.0, ge=0, le=3600, description="hold batches this long to order a device's readings"
    )
    detect_worker_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")

    # alert e-mail: unset host = no e-mail channel (e-mail subscriptions then end ``dead``)
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "sealscope@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    provisioning_max_body_bytes: int = Field(
        16 << 20, ge=1 << 20, description="body cap of the fleet upload route only"
    )
    # Mosquitto dynamic-security admin identity: devices provisioned through the API get
    # MQTT logins, applied to the broker in the background. Unset host: no MQTT credentials.
    broker_admin_host: str | None = None
    broker_admin_port: int = Field(1883, ge=1, le=65535)
    broker_admin_username: str = "sealscope-broker-admin"
    broker_admin_password: SecretStr | None = None
    broker_admin_chunk_commands: int = Field(
        25, ge=1, le=1000, description="dynsec commands per message (the broker stalls on each)"
    )
    # Host header names the API answers to; any other is 400 (a listener on 0.0.0.0 with no
    # auth must not answer names an attacker's DNS points at it). Comma-separated in the
    # environment; '*.example.com' matches subdomains; '*' turns the check off.
    api_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"], min_length=1
    )

    # NB-IoT gateway: its own MQTT identity (the broker ACL lets it publish for any device)
    gateway_mqtt_username: str | None = "sealscope-gateway"
    gateway_mqtt_password: SecretStr | None = None
    gateway_mqtt_client_id: str = "sealscope-gateway"
    coap_host: str = "0.0.0.0"
    coap_port: int = Field(5683, ge=0, le=65535)
    # HTTP push from Huawei IoTDA, CTWing and OneNET; a platform is enabled by its token
    push_host: str = "127.0.0.1"
    push_port: int | None = Field(None, ge=0, le=65535, description="unset: no HTTP push")
    push_huawei_token: SecretStr | None = None
    push_ctwing_token: SecretStr | None = None
    push_onenet_token: SecretStr | None = None
    push_queue_max: int = Field(1000, ge=1)
    push_max_body_bytes: int = Field(64 * 1024, ge=1024)

    # detector hyper-parameters from the TOML file (``[detectors.seat_leak]``,
    # ``alarm_ratio = 4.0``); absent: today's defaults. The core knows no detector: names,
    # types and ranges are checked against each detector's PARAMS by the composition root
    # (``analytics.default_detectors``) right after loading, with a message per key.
    detectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="cause -> {hyper-parameter: value}"
    )

    @property
    def state_db(self) -> Path:
        """The embedded SQLite state file: the default ``database_url``, and the gateway's
        keys and queues (which stay on SQLite)."""
        return self.data_dir / "sealscope.db"

    @property
    def telemetry_db(self) -> Path:
        return self.data_dir / "telemetry.db"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def detector_state_dir(self) -> Path:
        return self.data_dir / "detectors"

    @property
    def detector_state_path(self) -> Path:
        """Every detector's per-device state, saved by the detection process."""
        return self.detector_state_dir / "detectors.npz"

    @property
    def fleet_risk_state_path(self) -> Path:
        return self.detector_state_dir / "fleet_risk.npz"

    @property
    def gateway_dir(self) -> Path:
        """The gateway's disk queue (``spool/``) and its key pepper (``pepper``)."""
        return self.data_dir / "gateway"

    @property
    def gateway_pepper_path(self) -> Path:
        return self.gateway_dir / "pepper"

    @property
    def broker_dir(self) -> Path:
        """The embedded Mosquitto's config, persistence and generated logins."""
        return self.data_dir / "mosquitto"

    @property
    def ports_path(self) -> Path:
        """The ports ``up`` chose last time, so a fallback port stays the same."""
        return self.data_dir / "ports.json"

    @property
    def risk_table_path(self) -> Path:
        """The fleet-risk table the detection process last saved, for API processes."""
        return self.detector_state_dir / "fleet_risk.json"

    @field_validator("api_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            return value
        hosts = []
        for item in value:
            host = str(item).strip().lower()
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"  # an IPv6 literal, as it appears in a Host header
            if not host or any(c.isspace() for c in host) or "*" in host[1:]:
                raise ValueError(f"api_allowed_hosts: {item!r} is not a host name or pattern")
            if host.startswith("*") and host != "*" and not host.startswith("*."):
                raise ValueError(f"api_allowed_hosts: {item!r}: a wildcard is '*.domain'")
            hosts.append(host)
        return hosts

    @model_validator(mode="after")
    def _default_database_url(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_db}"
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        for name in (
            "influx_token",
            "mqtt_password",
            "gateway_mqtt_password",
            "broker_admin_password",
            "push_huawei_token",
            "push_ctwing_token",
            "push_onenet_token",
        ):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and secret.get_secret_value().lower() in _PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} is a placeholder; set a real secret")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get("SEALSCOPE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Build settings from the environment, a TOML file and explicit overrides (highest)."""
    path = Path(config_file) if config_file is not None else None
    if path is not None and not path.is_file():
        raise ConfigError("config", f"no such file: {path}")
    token = _config_file.set(str(path) if path else None)
    try:
        # overrides are untyped by design: pydantic validates each one, as for the environment
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError("settings", str(exc)) from exc
    finally:
        _config_file.reset(token)
