"""The production deployment: docker-compose.yml, the Mosquitto config and ACL, the dashboards.

Compose is checked with ``docker-compose config`` and by reading the result: there is no
Docker engine here, so no test starts a container. What can run outside one does: the
broker config and ACL in the real mosquitto binary, the NATS service's command line in the
real nats-server, each service's environment through ``Settings``; dashboard queries are
checked against the wire field names and, where ``influxd`` is installed, executed against
a real InfluxDB.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
import yaml
from nats.js.api import StorageType
from paho.mqtt.enums import CallbackAPIVersion

from composition.detect_worker import DetectWorker, default_worker_id, worker_readings
from composition.servers.ports import free_ports
from sealscope.alerts import SqlAlertStore
from sealscope.commands import DeviceCommand, SqlCommandStore
from sealscope.config import Settings
from sealscope.db import migrate, open_engine, open_migrated
from sealscope.metrics import ProcessMetrics
from sealscope.registry import Device, SqlDeviceRegistry
from sealscope.streaming import LogConfig, PartitionLeases, connect, ensure_log
from sealscope.topics import device_filter
from sealscope.wire import SAMPLE_FIELDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
MOSQUITTO_ACL = ROOT / "deploy" / "mosquitto" / "acl"
DASHBOARDS = ROOT / "dashboards" / "grafana" / "dashboards"

MEASUREMENTS = frozenset({"valve", "pump"})
TAGS = frozenset({"device_id", "model", "manufacturer", "batch", "site", "region"})

REQUIRED_ENV = {
    "SEALSCOPE_INFLUX_TOKEN": "test-influx-token-0123456789",
    "INFLUXDB_ADMIN_PASSWORD": "test-admin-password",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
    "SEALSCOPE_INGEST_MQTT_PASSWORD": "test-ingest-password",
    "SEALSCOPE_API_MQTT_PASSWORD": "test-api-password",
    "SEALSCOPE_MQTT_HEALTH_PASSWORD": "test-health-password",
    "SEALSCOPE_GATEWAY_MQTT_PASSWORD": "test-gateway-password",
    "SEALSCOPE_POSTGRES_PASSWORD": "test-postgres-password",
    "SEALSCOPE_POSTGRES_GRAFANA_PASSWORD": "test-postgres-grafana-password",
}


def _require_binary(name: str, *candidates: str) -> str:
    """Path of a binary; a missing one fails in CI and skips elsewhere."""
    for candidate in (*candidates, name):
        found = shutil.which(candidate)
        if found:
            return found
    message = f"{name} is not installed"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- compose


def _compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    docker_compose = _require_binary("docker-compose")
    # An empty --env-file keeps a developer's real .env out of the test.
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SEALSCOPE_", "GRAFANA_"))}
    clean = {k: v for k, v in clean.items() if not k.startswith("INFLUXDB_")}
    return subprocess.run(
        [docker_compose, "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = _compose_config(tmp_path_factory.mktemp("compose"), REQUIRED_ENV)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a host path) for short or long syntax."""
    targets = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        targets[target] = source
    return targets


def test_compose_config_validates_with_the_required_variables(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "mosquitto",
        "influxdb",
        "postgres",
        "grafana",
        "prometheus",
        "nats",
        "ingest",
        "ingest-2",
        "detect-worker",
        "api",
        "gateway",
        "sim",
    }
    assert set(compose["volumes"]) >= {
        "mosquitto-data",
        "postgres-data",
        "influxdb-data",
        "influxdb-config",
        "grafana-data",
        "prometheus-data",
        "nats-data",
        "sealscope-data",
    }


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_compose_config_refuses_a_missing_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
    result = _compose_config(tmp_path, env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_compose_env_example_names_every_variable_and_holds_no_secret() -> None:
    lines = COMPOSE_FILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    example = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            example[name] = value
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    for name, value in example.items():
        if re.search("TOKEN|PASSWORD", name):
            assert value == "", f"{name} must be an empty placeholder in .env.example"


def test_compose_sealscope_services_build_the_image_and_share_the_data_volume(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("ingest", "api", "sim"):
        service = services[name]
        assert "build" in service, name
        assert service["command"][0] == name
        assert service["restart"] == "unless-stopped"
        assert _volume_targets(service)["/var/lib/sealscope"] == "sealscope-data"
        assert service["environment"]["SEALSCOPE_DATA_DIR"] == "/var/lib/sealscope"
        assert service["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    for name in ("ingest", "api"):
        env = services[name]["environment"]
        assert services[name]["depends_on"]["influxdb"]["condition"] == "service_healthy"
        assert env["SEALSCOPE_STORE"] == "influxdb"
        assert env["SEALSCOPE_INFLUX_URL"] == "http://influxdb:8086"
        assert env["SEALSCOPE_INFLUX_TOKEN"] == REQUIRED_ENV["SEALSCOPE_INFLUX_TOKEN"]
        assert env["SEALSCOPE_INFLUX_ORG"] == "sealscope"
        assert env["SEALSCOPE_INFLUX_BUCKET"] == "telemetry"
        assert env["SEALSCOPE_MQTT_HOST"] == "mosquitto"
        assert env["SEALSCOPE_MQTT_USERNAME"] == f"sealscope-{name}"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert env["SEALSCOPE_DATABASE_URL"] == (
            "postgresql+psycopg://sealscope:test-postgres-password@postgres:5432/sealscope"
        )
    mqtt_clients = ("ingest", "ingest-2", "api", "sim")
    client_ids = {services[n]["environment"]["SEALSCOPE_MQTT_CLIENT_ID"] for n in mqtt_clients}
    # processes sharing a client id take each other's session
    assert len(client_ids) == len(mqtt_clients)
    assert services["api"]["environment"]["SEALSCOPE_API_HOST"] == "0.0.0.0"
    assert services["sim"]["profiles"] == ["sim"]


def test_compose_gateway_publishes_coap_and_push_as_its_own_broker_user(
    compose: dict[str, Any],
) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["command"] == ["gateway"]
    assert _volume_targets(gateway)["/var/lib/sealscope"] == "sealscope-data"
    env = gateway["environment"]
    assert env["SEALSCOPE_GATEWAY_MQTT_USERNAME"] == "sealscope-gateway"
    assert env["SEALSCOPE_GATEWAY_MQTT_PASSWORD"] == REQUIRED_ENV["SEALSCOPE_GATEWAY_MQTT_PASSWORD"]
    assert env["SEALSCOPE_GATEWAY_MQTT_CLIENT_ID"] not in {
        compose["services"][n]["environment"]["SEALSCOPE_MQTT_CLIENT_ID"]
        for n in ("ingest", "ingest-2", "api", "sim")
    }
    published = {(str(p["target"]), p.get("protocol", "tcp")) for p in gateway["ports"]}
    assert published == {("5683", "udp"), ("8080", "tcp")}
    # no push token given: the variables are empty, so no platform route is opened
    assert env["SEALSCOPE_PUSH_HUAWEI_TOKEN"] == ""
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    gateway_rules = acl.split("user sealscope-gateway\n")[1].split("\n\n")[0]
    assert "topic write sealscope/v1/dev/+/cmd/status" in gateway_rules
    assert "sealscope-gateway:" in (ROOT / "deploy" / "mosquitto" / "make-passwd.sh").read_text()


def test_compose_infrastructure_mounts_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]

    broker = services["mosquitto"]
    assert broker["image"].startswith("eclipse-mosquitto:2")
    mounts = _volume_targets(broker)
    assert Path(mounts["/mosquitto/config/mosquitto.conf"]) == MOSQUITTO_CONF
    assert Path(mounts["/mosquitto/config/acl"]) == MOSQUITTO_ACL
    assert "/mosquitto/config/passwd" in mounts
    assert mounts["/mosquitto/data"] == "mosquitto-data"
    assert "healthcheck" in broker

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "ports" not in postgres  # reached on the compose network only
    assert _volume_targets(postgres)["/var/lib/postgresql/data"] == "postgres-data"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    init = Path(_volume_targets(postgres)["/docker-entrypoint-initdb.d/10-grafana-role.sh"])
    assert init.is_file() and os.access(init, os.X_OK)
    assert "CREATE ROLE sealscope_grafana LOGIN" in init.read_text()

    influx = services["influxdb"]
    assert influx["image"] == "influxdb:2.7"
    env = influx["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == "sealscope"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "telemetry"
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == REQUIRED_ENV["SEALSCOPE_INFLUX_TOKEN"]
    mounts = _volume_targets(influx)
    assert mounts["/var/lib/influxdb2"] == "influxdb-data"
    init_scripts = [t for t in mounts if t.startswith("/docker-entrypoint-initdb.d/")]
    assert init_scripts, "the DBRP mapping script must be mounted"
    for target in init_scripts:
        script = Path(mounts[target])
        assert script.is_file() and os.access(script, os.X_OK), script
        assert "influx v1 dbrp create" in script.read_text()
    assert "healthcheck" in influx

    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana-oss:")
    mounts = _volume_targets(grafana)
    assert Path(mounts["/etc/grafana/provisioning"]) == ROOT / "dashboards/grafana/provisioning"
    assert Path(mounts["/var/lib/grafana/dashboards/sealscope"]) == DASHBOARDS
    assert mounts["/var/lib/grafana"] == "grafana-data"
    provider = yaml.safe_load(
        (ROOT / "dashboards/grafana/provisioning/dashboards/sealscope.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/sealscope"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).name).is_file()


# ------------------------------------------------ scale-out: NATS, ingest, detector workers

INGEST_SERVICES = ("ingest", "ingest-2")


def _settings_of(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch, **extra: str
) -> Settings:
    """What the container's ``sealscope`` reads from the environment compose gives it."""
    for name in list(os.environ):
        if name.startswith("SEALSCOPE_"):
            monkeypatch.delenv(name)
    for name, value in {**service["environment"], **extra}.items():
        monkeypatch.setenv(name, str(value))
    return Settings()


def test_compose_ingest_instances_share_one_subscription_each_with_its_own_session_and_spool(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    settings = [_settings_of(services[n], monkeypatch) for n in INGEST_SERVICES]
    # one shared subscription: the broker hands each uplink to one instance
    assert {s.mqtt_shared_group for s in settings} == {"ingest"}
    assert device_filter("telemetry", shared_group="ingest").startswith("$share/ingest/")
    # one session and one spool each: two processes on one client id take each other's
    # session, and the spool has no lock (why `--scale ingest=N` is not offered)
    assert len({s.mqtt_client_id for s in settings}) == len(settings)
    assert len({s.spool_dir for s in settings}) == len(settings)
    for name, s in zip(INGEST_SERVICES, settings, strict=True):
        assert s.spool_dir.is_relative_to("/var/lib/sealscope"), name  # on the data volume
        assert _volume_targets(services[name])["/var/lib/sealscope"] == "sealscope-data"
        assert s.mqtt_protocol == "5"  # shared subscriptions are MQTT 5
        assert s.mqtt_username == "sealscope-ingest"
        assert s.nats_url == "nats://nats:4222", name  # detection leaves ingest
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy"
        assert services[name]["command"] == ["ingest"]
        assert "deploy" not in services[name] and "scale" not in services[name]


def test_compose_detect_workers_scale_and_read_the_log_ingest_writes(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    worker = services["detect-worker"]
    assert worker["command"] == ["detect-worker"]
    assert worker["restart"] == "unless-stopped"
    for key in ("container_name", "ports", "hostname"):
        assert key not in worker, f"{key} would make replicas collide"
    assert worker["depends_on"]["nats"]["condition"] == "service_healthy"
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    worker_settings = _settings_of(worker, monkeypatch)
    # no fixed id: each replica names itself after its container's hostname
    assert worker_settings.detect_worker_id is None
    log_cfg = LogConfig.from_settings(worker_settings)
    for name in INGEST_SERVICES:
        # same stream, subjects and partition count, or batches go where no worker reads
        assert LogConfig.from_settings(_settings_of(services[name], monkeypatch)) == log_cfg
    # alerts go through the ingest processes' outbox: the same state database
    ingest_settings = _settings_of(services["ingest"], monkeypatch)
    assert worker_settings.database_url == ingest_settings.database_url
    assert worker_settings.metrics_port == 9464 and worker_settings.metrics_host == "0.0.0.0"


def test_detect_worker_replicas_take_distinct_ids_from_their_container_hostnames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = set()
    for hostname in ("3f2a9c1be0d4", "a81c44f09e27"):  # Docker's default: the short id
        monkeypatch.setattr("socket.gethostname", lambda h=hostname: h)
        worker_id = default_worker_id()
        assert worker_id.startswith(hostname)
        # the id is a lease owner and a setting: both accept it
        PartitionLeases(kv=None, owner=worker_id)  # type: ignore[arg-type]
        assert Settings(detect_worker_id=worker_id).detect_worker_id == worker_id
        ids.add(worker_id)
    assert len(ids) == 2


def test_compose_workers_expose_the_detector_lag_the_pipeline_dashboard_shows() -> None:
    worker = DetectWorker(
        LogConfig(url="nats://nats:4222", stream="S", subject="s.b", partitions=8),
        alerts=None,  # type: ignore[arg-type]
        dead_letters=None,  # type: ignore[arg-type]
    )
    readings = worker_readings(worker)
    ProcessMetrics(process_collectors=False).add(*readings)
    dashboard = json.loads((DASHBOARDS / "pipeline.json").read_text(encoding="utf-8"))
    exprs = " ".join(t["expr"] for p in _panels(dashboard) for t in p["targets"])
    assert "sealscope_detector_lag_seconds" in exprs
    assert "sealscope_detector_lag_seconds" in {r.name for r in readings}


def test_compose_nats_runs_jetstream_on_its_volume_with_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    nats_service = compose["services"]["nats"]
    assert nats_service["image"].startswith("nats:")
    assert "ports" not in nats_service  # no auth: the compose network only
    command = nats_service["command"]
    assert "--jetstream" in command
    store = command[command.index("--store_dir") + 1]
    assert _volume_targets(nats_service)[store] == "nats-data"
    test = nats_service["healthcheck"]["test"]
    assert "js-enabled-only=true" in test[-1]


@pytest.mark.integration
def test_compose_nats_command_and_healthcheck_work_on_a_real_nats_server(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The service's command line in the real binary (paths and ports rewritten): the
    healthcheck answers once JetStream is up, and ingest's log settings create the log."""
    binary = _require_binary("nats-server", "/usr/sbin/nats-server")
    nats_service = compose["services"]["nats"]
    command = list(nats_service["command"])
    assert command[0] == "nats-server"
    store = command.index("--store_dir") + 1
    command[store] = str(tmp_path / "store")
    http = command.index("--http_port") + 1
    monitor_port, client_port = free_ports(2)
    container_monitor = command[http]
    command[http] = str(monitor_port)
    command = [binary, *command[1:], "-a", "127.0.0.1", "-p", str(client_port)]
    health_url = nats_service["healthcheck"]["test"][-1].replace(
        f"127.0.0.1:{container_monitor}", f"127.0.0.1:{monitor_port}"
    )
    assert str(monitor_port) in health_url
    log = (tmp_path / "nats.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "nats.log").read_text()
            try:
                with urllib.request.urlopen(health_url, timeout=1) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        _wait_for(healthy, 20, "the NATS healthcheck")
        ingest_env = compose["services"]["ingest"]["environment"]
        cfg = LogConfig(
            url=f"nats://127.0.0.1:{client_port}",
            stream="SEALSCOPE_BATCHES",
            subject="sealscope.batches",
            partitions=int(ingest_env["SEALSCOPE_NATS_PARTITIONS"]),
        )

        async def create_log() -> Any:
            nc = await connect(cfg.url)
            try:
                js = nc.jetstream()
                await ensure_log(js, cfg)
                return await js.stream_info(cfg.stream)
            finally:
                await nc.close()

        info = asyncio.run(create_log())
        assert info.config.storage == StorageType.FILE
        assert info.config.subjects == ["sealscope.batches.*"]
        assert any((tmp_path / "store").rglob("*")), "JetStream wrote to its store directory"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


# --------------------------------------------------------------------------- prometheus

PROMETHEUS_CONF = ROOT / "deploy" / "prometheus" / "prometheus.yml"
METRICS_SERVICES = ("ingest", "ingest-2", "detect-worker", "api", "gateway")
SCALED_SERVICES = ("detect-worker",)  # run with --scale: every replica is a target


def test_compose_prometheus_scrapes_every_sealscope_service_on_its_metrics_port(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    assert "ports" not in prometheus  # Grafana reads it on the compose network
    mounts = _volume_targets(prometheus)
    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == PROMETHEUS_CONF
    assert mounts["/prometheus"] == "prometheus-data"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    config = yaml.safe_load(PROMETHEUS_CONF.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    # a service name with replicas behind it: resolved to every replica's address
    discovered = {
        f"{name}:{sd['port']}"
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        if sd["type"] == "A"
        for name in sd["names"]
    }
    expected = set()
    for name in METRICS_SERVICES:
        env = services[name]["environment"]
        assert env["SEALSCOPE_METRICS_HOST"] == "0.0.0.0"  # inside the container network
        port = env["SEALSCOPE_METRICS_PORT"]
        published = [str(p.get("target")) for p in services[name].get("ports", [])]
        assert port not in published, f"{name} must not publish its metrics port"
        expected.add(f"{name}:{port}")
    scaled = {t for t in expected if t.split(":")[0] in SCALED_SERVICES}
    assert discovered == scaled, "a static target reaches one replica per scrape"
    assert targets == expected - scaled


def test_grafana_provisions_the_prometheus_datasource_the_pipeline_dashboard_uses() -> None:
    provisioning = ROOT / "dashboards/grafana/provisioning/datasources/prometheus.yml"
    (source,) = yaml.safe_load(provisioning.read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "sealscope-prometheus"
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((DASHBOARDS / "pipeline.json").read_text(encoding="utf-8"))
    uids = {t["datasource"]["uid"] for p in _panels(dashboard) for t in p["targets"]}
    assert uids == {"sealscope-prometheus"}


def _exposed_metric_families() -> set[str]:
    """Every family the services expose, by the readings' names (nothing is read)."""
    from types import SimpleNamespace

    from composition.metrics import (
        api_readings,
        delivery_readings,
        gateway_readings,
        ingest_readings,
    )
    from gateway import CoapStats, ForwarderStats
    from ingest.service import IngestStats

    ingest = SimpleNamespace(stats=IngestStats(), detection=object())
    gateway = SimpleNamespace(
        resource=SimpleNamespace(stats=CoapStats()),
        forwarder=SimpleNamespace(stats=ForwarderStats(), backlog=lambda: 0),
    )
    readings = [
        *ingest_readings(ingest),  # type: ignore[arg-type]
        *delivery_readings(SimpleNamespace(sent=0, failed=0)),  # type: ignore[arg-type]
        *gateway_readings(gateway),  # type: ignore[arg-type]
        *api_readings(SimpleNamespace(state=SimpleNamespace())),
    ]
    ProcessMetrics(process_collectors=False).add(*readings)  # names are valid and unique
    return {r.name for r in readings}


def test_dashboard_pipeline_names_only_metrics_the_services_expose() -> None:
    families = _exposed_metric_families()
    dashboard = json.loads((DASHBOARDS / "pipeline.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in _panels(dashboard) for t in p["targets"]]
    used = set()
    for expr in exprs:
        for name in re.findall(r"\bsealscope_\w+", expr):
            used.add(re.sub(r"_(total|count|sum)$", "", name))
    assert used <= families, f"unknown metrics: {sorted(used - families)}"
    for needed in (
        "sealscope_ingest_received",
        "sealscope_ingest_acknowledged",
        "sealscope_ingest_points_stored",
        "sealscope_ingest_dead_lettered",
        "sealscope_ingest_spool_bytes",
        "sealscope_ingest_batch_write_seconds",
        "sealscope_detector_lag_seconds",
        "sealscope_delivery_attempts",
        "sealscope_api_stream_connections",
        "sealscope_api_stream_dropped_clients",
        "sealscope_api_commands_published",
    ):
        assert needed in used, f"the pipeline dashboard has no panel for {needed}"
    # and the processes' own CPU and memory (prometheus_client's process collector)
    assert any("process_cpu_seconds_total" in e for e in exprs)
    assert any("process_resident_memory_bytes" in e for e in exprs)


# --------------------------------------------------------------------------- mosquitto


def _conf_values(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values.setdefault(key, []).append(value.strip())
    return values


class Broker:
    def __init__(self, port: int, passwd: Path, service_port: int) -> None:
        self.port = port  # the devices' listener (1883 in production)
        self.service_port = service_port  # the services' listener (1884, compose network)
        self.passwd = passwd


def _adapt_conf(tmp_path: Path, port: int, service_port: int = 0) -> Path:
    """The committed config with only container paths and the listener ports rewritten."""
    text = MOSQUITTO_CONF.read_text()
    text = text.replace("/mosquitto/config/", f"{tmp_path}/")
    text = text.replace("/mosquitto/data/", f"{tmp_path}/data/")
    text = re.sub(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", text)
    service_port = service_port or port + 1
    text = re.sub(r"(?m)^listener 1884$", f"listener {service_port} 127.0.0.1", text)
    if os.geteuid() == 0:
        # As root mosquitto drops to the "mosquitto" user, which cannot read tmp_path.
        text += "\nuser root\n"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    return conf


USERS = {
    "sealscope-ingest": "ingest-pw",
    "sealscope-gateway": "gateway-pw",
    "sealscope-health": "health-pw",
    "ACME-V-0001": "device-a-pw",
    "ACME-V-0002": "device-b-pw",
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    mosquitto = _require_binary("mosquitto", "/usr/sbin/mosquitto")
    mosquitto_passwd = _require_binary("mosquitto_passwd")
    (tmp_path / "data").mkdir()
    shutil.copy(MOSQUITTO_ACL, tmp_path / "acl")
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run([mosquitto_passwd, "-b", str(passwd), user, password], check=True)
    port, service_port = free_ports(2)
    conf = _adapt_conf(tmp_path, port, service_port)
    log = (tmp_path / "mosquitto.log").open("w")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:

        def listening() -> bool:
            assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
            try:
                for p in (port, service_port):
                    socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            except OSError:
                return False
            return True

        _wait_for(listening, 10, "mosquitto to listen")
        yield Broker(port, passwd, service_port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


class Client:
    """A blocking paho client that records what it receives."""

    def __init__(
        self,
        broker: Broker,
        user: str,
        *,
        client_id: str | None = None,
        service_listener: bool = False,
        clean_start: bool | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.dropped = threading.Event()
        self.reason: Any = None
        if clean_start is None:
            self._client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                clean_session=client_id is None,
            )
        else:  # MQTT 5, where a clean start also wipes the session it takes over
            self._client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=mqtt.MQTTv5
            )
        self._client.username_pw_set(user, USERS[user])
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = lambda *_: self.dropped.set()
        port = broker.service_port if service_listener else broker.port
        if clean_start is None:
            self._client.connect("127.0.0.1", port)
        else:
            self._client.connect("127.0.0.1", port, clean_start=clean_start)
        self._client.loop_start()
        assert self._connected.wait(5), "no CONNACK"
        assert not self.reason.is_failure, f"{user} refused: {self.reason}"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        granted: list[Any] = []

        def on_subscribe(client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
            granted.extend(codes)
            done.set()

        self._client.on_subscribe = on_subscribe
        self._client.subscribe(topic, qos=1)
        assert done.wait(5), "no SUBACK"
        assert not granted[0].is_failure, f"subscription to {topic} refused"

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_mosquitto_conf_raises_the_queue_limits() -> None:
    values = _conf_values(MOSQUITTO_CONF.read_text())
    assert int(values["max_queued_messages"][0]) >= 100_000  # default 1000 drops QoS 1
    assert 20 <= int(values["max_inflight_messages"][0]) <= 1000
    assert values["allow_anonymous"] == ["false"]
    assert values["persistence"] == ["true"]


def test_mosquitto_conf_test_copy_keeps_every_setting_but_paths_and_port(tmp_path: Path) -> None:
    original = _conf_values(MOSQUITTO_CONF.read_text())
    adapted = _conf_values(_adapt_conf(tmp_path, 18830).read_text())
    rewritten = {"listener", "password_file", "acl_file", "persistence_location", "user"}
    for key in set(original) | set(adapted):
        if key not in rewritten:
            assert adapted.get(key) == original.get(key), key
    assert adapted["max_queued_messages"] == original["max_queued_messages"]
    assert adapted["max_inflight_messages"] == original["max_inflight_messages"]


@pytest.mark.integration
def test_mosquitto_conf_accepts_authenticated_clients_only(broker: Broker) -> None:
    health = Client(broker, "sealscope-health")
    health.subscribe("$SYS/broker/uptime")
    _wait_for(lambda: health.received(), 15, "$SYS/broker/uptime")
    health.close()

    anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"anon-{uuid.uuid4().hex[:6]}")
    refused = threading.Event()
    anonymous.on_connect = lambda c, u, f, reason, p: reason.is_failure and refused.set()
    anonymous.connect("127.0.0.1", broker.port)
    anonymous.loop_start()
    try:
        assert refused.wait(5), "an anonymous client was accepted"
    finally:
        anonymous.loop_stop()
        anonymous.disconnect()


@pytest.mark.integration
def test_mosquitto_acl_confines_a_device_to_its_own_topics(broker: Broker) -> None:
    own = "sealscope/v1/dev/ACME-V-0001/telemetry"
    other = "sealscope/v1/dev/ACME-V-0002/telemetry"
    service = Client(broker, "sealscope-ingest")
    service.subscribe("sealscope/v1/dev/+/telemetry")
    device_a = Client(broker, "ACME-V-0001")
    try:
        device_a.publish(own, b"allowed")
        _wait_for(lambda: (own, b"allowed") in service.received(), 5, "the device's own uplink")

        # The broker acknowledges a denied QoS 1 publish and drops it; per-client order
        # means the sentinel arrives after the forbidden message would have.
        device_a.publish(other, b"forbidden")
        device_a.publish(own, b"sentinel")
        _wait_for(lambda: (own, b"sentinel") in service.received(), 5, "the sentinel")
        assert (other, b"forbidden") not in service.received()
        assert [t for t, _ in service.received()] == [own, own]
    finally:
        device_a.close()
        service.close()


@pytest.mark.integration
def test_mosquitto_acl_lets_a_device_read_only_its_own_commands(broker: Broker) -> None:
    service = Client(broker, "sealscope-ingest")
    device_a = Client(broker, "ACME-V-0001")
    try:
        device_a.subscribe("sealscope/v1/dev/+/cmd")  # granted, but filtered per topic
        service.publish("sealscope/v1/dev/ACME-V-0002/cmd", b"for-b")
        service.publish("sealscope/v1/dev/ACME-V-0001/cmd", b"for-a")
        _wait_for(lambda: device_a.received(), 5, "the device's own command")
        assert device_a.received() == [("sealscope/v1/dev/ACME-V-0001/cmd", b"for-a")]
    finally:
        device_a.close()
        service.close()


@pytest.mark.integration
def test_mosquitto_queues_more_than_the_default_1000_for_an_offline_consumer(
    broker: Broker,
) -> None:
    # The ingest's persistent session must not lose QoS 1 messages while it restarts.
    topic = "sealscope/v1/dev/ACME-V-0001/telemetry"
    client_id = f"ingest-{uuid.uuid4().hex[:6]}"
    service = Client(broker, "sealscope-ingest", client_id=client_id, service_listener=True)
    service.subscribe("$share/ingest/sealscope/v1/dev/+/telemetry")
    service.close()

    device_a = Client(broker, "ACME-V-0001")
    count = 1500
    infos = [device_a._client.publish(topic, str(i).encode(), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(10)
    device_a.close()

    service = Client(broker, "sealscope-ingest", client_id=client_id, service_listener=True)
    try:
        _wait_for(lambda: len(service.received()) >= count, 20, f"{count} queued messages")
        assert sorted(int(p) for _, p in service.received()) == list(range(count))
    finally:
        service.close()


@pytest.mark.integration
def test_mosquitto_hands_an_offline_group_member_its_share_so_ingest_ids_must_be_stable(
    broker: Broker,
) -> None:
    # Why compose names each ingest instance rather than offering `--scale ingest=N` with
    # ids from the container: an instance whose session is offline still gets its share.
    topic = "sealscope/v1/dev/ACME-V-0001/telemetry"
    ids = [f"ingest-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    members = [Client(broker, "sealscope-ingest", client_id=i, service_listener=True) for i in ids]
    for member in members:
        member.subscribe("$share/ingest/sealscope/v1/dev/+/telemetry")
    members[1].close()  # a replaced container: its session stays
    device = Client(broker, "ACME-V-0001")
    count = 40
    for info in [device._client.publish(topic, str(i).encode(), qos=1) for i in range(count)]:
        info.wait_for_publish(10)
    device.close()
    online = members[0]
    try:
        _wait_for(lambda: len(online.received()) >= count // 4, 10, "the online member's share")
        back = Client(broker, "sealscope-ingest", client_id=ids[1], service_listener=True)
        try:
            _wait_for(lambda: len(online.received()) + len(back.received()) >= count, 10, "all")
            assert back.received(), "the offline member's share waited in its session"
            got = sorted(int(p) for _, p in online.received() + back.received())
            assert got == list(range(count))
        finally:
            back.close()
    finally:
        online.close()


def test_compose_services_use_the_internal_listener_and_only_devices_get_a_port(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("ingest", "ingest-2", "api", "gateway", "sim"):
        assert services[name]["environment"]["SEALSCOPE_MQTT_PORT"] == "1884", name
    published = {str(p["target"]) for p in services["mosquitto"]["ports"]}
    assert published == {"1883"}
    listeners = _conf_values(MOSQUITTO_CONF.read_text())["listener"]
    assert listeners == ["1883", "1884"]
    device_listener = MOSQUITTO_CONF.read_text().split("listener 1883\n")[1].split("listener")[0]
    assert "\nuse_username_as_clientid true\n" in device_listener


@pytest.mark.integration
@pytest.mark.parametrize(
    ("service", "service_filter", "publisher", "topic"),
    [
        (
            "sealscope-ingest",
            "sealscope/v1/dev/+/telemetry",
            "ACME-V-0001",
            "sealscope/v1/dev/ACME-V-0001/telemetry",
        ),
        (
            "sealscope-gateway",
            "sealscope/v1/dev/+/cmd",
            "sealscope-ingest",
            "sealscope/v1/dev/ACME-V-0001/cmd",
        ),
    ],
)
def test_mosquitto_device_using_a_service_client_id_leaves_its_session_alone(
    broker: Broker, service: str, service_filter: str, publisher: str, topic: str
) -> None:
    # On an anonymous broker this connect would take the service's session and, with a
    # clean start, wipe what is queued in it (tests/ingest/test_takeover.py).
    owner = Client(broker, service, client_id=service, service_listener=True)
    owner.subscribe(service_filter)
    intruder = Client(broker, "ACME-V-0001", client_id=service, clean_start=True)
    # the device's own uplink proves it is connected; a second connection as ACME-V-0001
    # would take the device's own session
    sender = (
        intruder if publisher == "ACME-V-0001" else Client(broker, publisher, service_listener=True)
    )
    try:
        for n in range(3):
            sender.publish(topic, f"after-{n}".encode())
        _wait_for(lambda: len(owner.received()) == 3, 5, "the service to keep receiving")
        assert owner.received() == [(topic, f"after-{n}".encode()) for n in range(3)]
        assert not owner.dropped.is_set(), f"{service} was disconnected by the device"
        assert not intruder.dropped.is_set()
    finally:
        for client in {sender, intruder, owner}:
            client.close()


@pytest.mark.integration
def test_mosquitto_device_cannot_publish_or_connect_as_another_device(broker: Broker) -> None:
    own = "sealscope/v1/dev/ACME-V-0001/telemetry"
    other = "sealscope/v1/dev/ACME-V-0002/telemetry"
    service = Client(broker, "sealscope-ingest", service_listener=True)
    service.subscribe("sealscope/v1/dev/+/telemetry")
    device_b = Client(broker, "ACME-V-0002", client_id="ACME-V-0002")
    # A's password, B's client id: the broker makes the client id A's username, so %u and
    # %c in ACL patterns name the same device and B's connection is left alone.
    device_a = Client(broker, "ACME-V-0001", client_id="ACME-V-0002", clean_start=True)
    try:
        device_a.publish(other, b"forged")
        device_a.publish(own, b"sentinel-a")
        device_b.publish(other, b"from-b")
        _wait_for(
            lambda: {(own, b"sentinel-a"), (other, b"from-b")} <= set(service.received()),
            5,
            "both devices' own uplinks",
        )
        assert (other, b"forged") not in service.received()
        assert not device_b.dropped.is_set(), "device B was disconnected by device A"
    finally:
        for client in (device_a, device_b, service):
            client.close()


@pytest.mark.integration
def test_mosquitto_service_listener_lets_one_user_hold_two_sessions(broker: Broker) -> None:
    # The gateway's publisher and command subscriber share a username; on the device
    # listener the second connection would take the first one's session.
    topic = "sealscope/v1/dev/ACME-V-0001/cmd"
    publisher = Client(broker, "sealscope-gateway", client_id="gw", service_listener=True)
    commands = Client(broker, "sealscope-gateway", client_id="gw-cmd", service_listener=True)
    ingest = Client(broker, "sealscope-ingest", service_listener=True)
    try:
        commands.subscribe("sealscope/v1/dev/+/cmd")
        ingest.publish(topic, b"stroke")
        _wait_for(lambda: commands.received(), 5, "the command")
        assert not publisher.dropped.is_set() and not commands.dropped.is_set()
    finally:
        for client in (ingest, commands, publisher):
            client.close()

    first = Client(broker, "sealscope-gateway", client_id="gw", clean_start=True)
    second = Client(broker, "sealscope-gateway", client_id="gw-cmd", clean_start=True)
    try:
        _wait_for(first.dropped.is_set, 5, "the device listener to bind both to one id")
    finally:
        second.close()
        first.close()


# --------------------------------------------------------------------------- dashboards


def _dashboards() -> list[Path]:
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert len(paths) >= 2
    return paths


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def _queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    for panel in _panels(dashboard):
        queries += [t["query"] for t in panel.get("targets", []) if t.get("query")]
    return queries


_IDENT = re.compile(r'"([^"]+)"')
_ALIAS = re.compile(r'\bAS\s+"([^"]+)"', re.IGNORECASE)
_FROM = re.compile(r'\bFROM\s+(?:"([^"]+)"|/\^?\(?([^/]*?)\)?\$?/)', re.IGNORECASE)
_BARE_ARG = re.compile(
    r"\b(?:mean|last|first|max|min|sum|count|median|percentile|sqrt)\(\s*([A-Za-z_]\w*)\b(?!\s*\()",
    re.IGNORECASE,
)


def test_dashboards_are_valid_grafana_json_with_unique_panel_ids() -> None:
    uids = set()
    for path in _dashboards():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        assert dashboard["title"] and dashboard["uid"] not in uids, path.name
        uids.add(dashboard["uid"])
        assert 36 <= dashboard["schemaVersion"] <= 41
        ids = [p["id"] for p in _panels(dashboard)]
        assert ids and len(ids) == len(set(ids)), path.name
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                uid = target["datasource"]["uid"]
                if uid == "sealscope-prometheus":
                    assert target.get("expr"), path.name
                    continue
                assert uid in ("sealscope-influxdb", "sealscope-postgres"), path.name
                assert target.get("rawQuery") is True


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_queries_name_only_known_measurements_tags_and_fields(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    known = MEASUREMENTS | TAGS | set(SAMPLE_FIELDS)
    for query in _queries(dashboard):
        aliases = set(_ALIAS.findall(query))
        unknown = set(_IDENT.findall(query)) - known - aliases
        assert not unknown, f"{path.name}: {unknown} in {query}"
        assert not _BARE_ARG.findall(query), f"{path.name}: quote identifiers in {query}"
        froms = _FROM.findall(query)
        assert froms, query
        for quoted, regex in froms:
            names = {quoted} if quoted else set(regex.split("|"))
            assert names <= MEASUREMENTS | {"$kind"}, f"{path.name}: FROM {names} in {query}"


def test_dashboard_seal_health_computes_the_leak_coefficient_in_influxql() -> None:
    dashboard = json.loads((DASHBOARDS / "seal-health.json").read_text(encoding="utf-8"))
    text = " ".join(_queries(dashboard))
    assert 'sqrt("p_in_kpa" - "p_out_kpa")' in text
    assert '"leak_mm3s" / sqrt(' in text
    assert re.search(r'GROUP BY [^)]*"batch"', text) and re.search(r'GROUP BY [^)]*"model"', text)


# --------------------------------------------------------------------------- real InfluxQL


@pytest.fixture(scope="module")
def influxql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway influxd (1.x here) with a small seeded fleet; yields the /query URL."""
    influxd = _require_binary("influxd")
    tmp = tmp_path_factory.mktemp("influxd")
    http_port, rpc_port = free_ports(2)
    conf = tmp / "influxd.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{tmp}/meta"\n'
        f'[data]\n  dir = "{tmp}/data"\n  wal-dir = "{tmp}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
    )
    log = (tmp / "influxd.log").open("w")
    proc = subprocess.Popen([influxd, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:

        def pinging() -> bool:
            assert proc.poll() is None, (tmp / "influxd.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=1):
                    return True
            except OSError:
                return False

        _wait_for(pinging, 20, "influxd")
        _post(f"{base}/query", {"q": "CREATE DATABASE telemetry"})
        _post(f"{base}/write?db=telemetry", None, _seed_points().encode())
        yield f"{base}/query"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _post(url: str, form: dict[str, str] | None, body: bytes | None = None) -> None:
    data = urllib.parse.urlencode(form).encode() if form else body
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        assert resp.status in (200, 204)


def _seed_points() -> str:
    now_s = int(time.time())
    lines = []
    for d in range(4):
        tags = (
            f"batch=B{d % 2},device_id=ACME-V-{d:04d},manufacturer=ACME,"
            f"model=DN{50 + 30 * (d // 2)},region=yongjia,site=plant-{d % 2}"
        )
        for i in range(60):
            p_in, p_out = 1000.0 + i, 200.0
            fields = {
                "p_in_kpa": p_in, "p_out_kpa": p_out, "leak_mm3s": 0.5 * (p_in - p_out) ** 0.5,
                "position_pct": 0.0, "stroke_s": 12.0, "torque_nm": 40.0, "battery_v": 3.6,
                "rsrp_dbm": -100.0, "sinr_db": 6.0,
            }  # fmt: skip
            encoded = ",".join(f"{k}={v!r}" for k, v in fields.items())
            lines.append(f"valve,{tags} {encoded} {(now_s - 3600 + 60 * i) * 10**9}")
        pump_fields = (
            "p_in_kpa=300.0,p_out_kpa=800.0,leak_mm3s=1.0,vib_mms=2.0,"
            "battery_v=3.5,rsrp_dbm=-110.0,sinr_db=3.0"
        )
        lines.append(
            f"pump,{tags.replace('ACME-V', 'ACME-P')} {pump_fields} {(now_s - 60) * 10**9}"
        )
    return "\n".join(lines)


def _as_influxql(query: str) -> str:
    """Expand Grafana's macros and template variables the way the panels would with "All"."""
    query = query.replace("$timeFilter", "time > now() - 2h").replace("$__interval", "5m")
    query = query.replace("$min_dp_kpa", "50").replace("/^$kind$/", "/^(valve|pump)$/")
    return re.sub(r"\$\w+", ".*", query)


@pytest.mark.integration
@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_queries_return_series_from_a_real_influxdb(influxql: str, path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    for query in _queries(dashboard):
        url = f"{influxql}?" + urllib.parse.urlencode({"db": "telemetry", "q": _as_influxql(query)})
        with urllib.request.urlopen(url, timeout=10) as resp:
            result = json.load(resp)["results"][0]
        assert "error" not in result, f"{query}: {result['error']}"
        assert result.get("series"), f"no data for {query}"


# --------------------------------------------------------------------- alerts on PostgreSQL


def _alerts_sql() -> list[str]:
    dashboard = json.loads((DASHBOARDS / "alerts.json").read_text(encoding="utf-8"))
    return [t["rawSql"] for p in _panels(dashboard) for t in p.get("targets", [])]


def _annotation_sql(name: str) -> list[str]:
    dashboard = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    return [
        a["target"]["rawSql"]
        for a in dashboard["annotations"]["list"]
        if a.get("datasource", {}).get("uid") == "sealscope-postgres"
    ]


def _as_postgres(sql: str, start: float, end: float, variables: dict[str, str]) -> str:
    """Grafana's PostgreSQL macros and multi-value variables, expanded as Grafana does."""
    sql = re.sub(r"\$__unixEpochFilter\(([^)]+)\)", rf"\1 >= {start} AND \1 <= {end}", sql)
    sql = re.sub(
        r"\$__unixEpochGroupAlias\(([^,]+), \$__interval, 0\)",
        r'floor(\1 / 3600) * 3600 AS "time"',
        sql,
    )
    sql = sql.replace("$__unixEpochFrom()", str(start)).replace("$__unixEpochTo()", str(end))
    for name, value in variables.items():
        sql = sql.replace(f"${name}", value)
    # every macro and variable expanded (a regex's end anchor `)$` is no variable)
    assert not re.search(r"\$(\w|\{)", sql), sql
    return sql


def test_dashboard_alerts_queries_run_on_a_migrated_postgres(postgres_databases: Any) -> None:
    engine = open_migrated(postgres_databases.create())
    registry = SqlDeviceRegistry(engine)
    registry.add(Device("ACME-1", "valve", "acme", "BV-50", batch="L1", site="s", region="r"))
    alerts = SqlAlertStore(engine)
    common = {"summary": "s", "evidence": {}, "t": 1_700_000_000.0}
    alerts.raise_alert(
        device_id="ACME-1", cause="seat_leak", category="failure", severity=5, **common
    )
    alerts.raise_alert(device_id="X-9", cause="wear", category="failure", severity=2, **common)
    gone = alerts.raise_alert(
        device_id="ACME-1", cause="sensor", category="function_check", severity=3, **common
    )
    alerts.resolve(gone.id, actor="test")
    commands = SqlCommandStore(engine)
    commands.add(DeviceCommand(id="c-1", device_id="ACME-1", name="stroke_test", expires_at=2e9))
    by_category, table, history, changes, queued = _alerts_sql()
    span = (time.time() - 3600, time.time() + 60)
    with engine.connect() as conn:
        assert conn.execute(sa.text(by_category)).all() == [("failure", 2)]
        rows = conn.execute(sa.text(table)).mappings().all()
        opened_closed = conn.execute(sa.text(_as_postgres(history, *span, {}))).mappings().all()
        trail = conn.execute(sa.text(_as_postgres(changes, *span, {}))).mappings().all()
        sent = conn.execute(sa.text(_as_postgres(queued, *span, {}))).mappings().all()
    engine.dispose()
    # the audit trail: three raised and one resolved, within the hour
    assert sum(r["opened"] for r in opened_closed) == 3
    assert sum(r["closed"] for r in opened_closed) == 1
    assert (trail[0]["action"], trail[0]["actor"]) == ("resolved", "test")
    assert len(trail) == 4
    assert [(r["device_id"], r["name"], r["state"]) for r in sent] == [
        ("ACME-1", "stroke_test", "requested")
    ]
    assert [(r["device_id"], r["severity"], r["site"]) for r in rows] == [
        ("ACME-1", 5, "s"),
        ("X-9", 2, None),  # an alert of an unregistered device is still shown
    ]


def test_postgres_migration_grants_grafana_only_what_the_dashboards_read(
    postgres_databases: Any,
) -> None:
    url = postgres_databases.create()
    engine = open_engine(url)
    with engine.connect() as conn:
        created = not conn.scalar(
            sa.text("SELECT count(*) FROM pg_roles WHERE rolname = 'sealscope_grafana'")
        )
        if created:
            conn.execute(sa.text("CREATE ROLE sealscope_grafana NOLOGIN"))
            conn.commit()
    try:
        migrate(engine)
        with engine.connect() as conn:
            can_read = {
                table: conn.scalar(
                    sa.text("SELECT has_table_privilege('sealscope_grafana', :t, 'SELECT')"),
                    {"t": table},
                )
                for table in (
                    "alerts",
                    "devices",
                    "alert_events",
                    "device_commands",
                    "dead_letters",
                    "api_keys",
                    "alembic_version",
                )
            }
            can_write = conn.scalar(
                sa.text("SELECT has_table_privilege('sealscope_grafana', 'alerts', 'UPDATE')")
            )
            if created:
                conn.execute(sa.text("DROP OWNED BY sealscope_grafana"))
                conn.execute(sa.text("DROP ROLE sealscope_grafana"))
                conn.commit()
    finally:
        engine.dispose()
    assert can_read == {
        "alerts": True,
        "devices": True,
        "alert_events": True,
        "device_commands": True,
        "dead_letters": False,
        "api_keys": False,
        "alembic_version": False,
    }
    assert not can_write


def test_seal_health_annotations_show_alerts_of_the_selected_fleet(postgres_databases: Any) -> None:
    (sql,) = _annotation_sql("seal-health.json")
    engine = open_migrated(postgres_databases.create())
    registry = SqlDeviceRegistry(engine)
    registry.add(Device("ACME-1", "valve", "ACME", "BV-50", batch="L1", region="yongjia"))
    registry.add(Device("PUMPCO-2", "pump", "PumpCo", "P-80", batch="L9", region="ouhai"))
    alerts = SqlAlertStore(engine)
    common = {"category": "out_of_specification", "severity": 4, "evidence": {}}
    now = time.time()
    leak = alerts.raise_alert(
        device_id="ACME-1", cause="seat_leak", summary="Seat leak 3x baseline", t=now - 600,
        **common,
    )  # fmt: skip
    alerts.raise_alert(
        device_id="PUMPCO-2", cause="pump_seal", summary="Seal", t=now - 300, **common
    )
    alerts.raise_alert(  # long before the time range: not shown
        device_id="ACME-1", cause="old", summary="Old", t=now - 90 * 86400, **common
    )
    alerts.clear(device_id="ACME-1", cause="old", t=now - 89 * 86400)
    every = {name: "'.*'" for name in ("region", "manufacturer", "model", "batch")}
    span = (now - 3600, now + 60)
    with engine.connect() as conn:
        shown = conn.execute(sa.text(_as_postgres(sql, *span, every))).mappings().all()
        acme = {**every, "manufacturer": "'ACME'", "batch": "'L1','L2'"}
        only = conn.execute(sa.text(_as_postgres(sql, *span, acme))).mappings().all()
    engine.dispose()
    assert [r["text"].split(":")[0] for r in shown] == ["ACME-1", "PUMPCO-2"]
    (row,) = only
    assert row["text"].startswith("ACME-1: seat_leak, severity 4 (out of specification), open")
    assert row["tags"] == "seat_leak,out_of_specification"
    assert row["time"].timestamp() == pytest.approx(leak.opened_at)
    assert row["timeend"].timestamp() == pytest.approx(span[1])  # still open: to the range end


# ------------------------------------------------------- InfluxDB 1.x, 2.x (DBRP) and 3.x

# What the panels may use so that InfluxDB 1.x, 2.x (InfluxQL through a DBRP mapping) and
# 3.x (InfluxQL on the v1 /query endpoint) all answer: 3.x does not implement SLIMIT,
# SOFFSET, the tz() clause, SHOW SERIES or the cardinality metaqueries, nor every
# function (see dashboards/README.md). Only 1.x runs here; 2.x and 3.x are held to this.
_INFLUXQL_FUNCTIONS_EVERYWHERE = frozenset(
    {"mean", "median", "count", "sum", "min", "max", "first", "last", "percentile",
     "spread", "stddev", "sqrt", "abs", "derivative", "non_negative_derivative", "difference",
     "time", "fill"}
)  # fmt: skip
_INFLUXQL_NOT_IN_3X = re.compile(
    r"\b(SLIMIT|SOFFSET|tz\(|SHOW\s+SERIES|CARDINALITY|INTO\b)", re.IGNORECASE
)


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_influxql_uses_only_what_influxdb_1_2_and_3_answer(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    for query in _queries(dashboard):
        assert not _INFLUXQL_NOT_IN_3X.search(query), f"{path.name}: {query}"
        # a word before "(": a function call, or a keyword opening a subquery or group
        called = {f.lower() for f in re.findall(r"\b([A-Za-z_]+)\s*\(", query)}
        called -= {"from", "and", "or", "not", "in", "where"}
        unknown = called - _INFLUXQL_FUNCTIONS_EVERYWHERE
        assert not unknown, f"{path.name}: {unknown} may not run on InfluxDB 3: {query}"
        # SHOW TAG VALUES is the one metaquery the variables use; 1.x to 3.x all have it
        if query.lstrip().upper().startswith("SHOW"):
            assert query.lstrip().upper().startswith("SHOW TAG VALUES"), query


def test_influx_datasource_speaks_influxql_with_a_token_as_2x_and_3x_want() -> None:
    provisioning = ROOT / "dashboards/grafana/provisioning/datasources/influxdb.yml"
    (source,) = yaml.safe_load(provisioning.read_text())["datasources"]
    assert source["type"] == "influxdb" and source["uid"] == "sealscope-influxdb"
    # InfluxQL, not Flux: the language 1.x, 2.x (via DBRP) and 3.x share
    assert source["jsonData"]["version"] == "InfluxQL"
    # the database is the bucket's name: 2.x maps it through DBRP, 3.x calls it so
    assert source["jsonData"]["dbName"] == "$SEALSCOPE_INFLUX_BUCKET"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token $SEALSCOPE_INFLUX_TOKEN"
