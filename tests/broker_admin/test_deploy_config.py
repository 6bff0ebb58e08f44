"""deploy/mosquitto/mosquitto-dynsec.conf in the real broker: devices confined and bound to
their client ids, services on their own listener, changes applied without a restart."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from composition.bench.dynsec import DynsecBroker
from composition.servers import find_mosquitto
from composition.servers.mosquitto import find_dynsec_plugin
from composition.servers.ports import free_ports, wait_for_port
from sealscope.broker_admin import DEVICE_ACL_PATTERNS, BrokerAdmin, write_initial_config
from sealscope.topics import device_topic
from tests.broker_admin.broker import WAIT_S, Session

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
ADMIN, ADMIN_PASSWORD = "sealscope-broker-admin", "deploy-test-admin-pw"


@dataclass(frozen=True)
class DeployedBroker:
    devices: DynsecBroker  # the devices' listener (1883 in production)
    services: DynsecBroker  # the services' listener (1884, compose network only)


def _adapt(tmp_path: Path, device_port: int, service_port: int, plugin: str) -> Path:
    """The committed config with only container paths and listener ports rewritten."""
    text = (DEPLOY / "mosquitto-dynsec.conf").read_text()
    text = text.replace("/usr/lib/mosquitto_dynamic_security.so", plugin)
    text = text.replace("/mosquitto/config/", f"{tmp_path}/")
    text = text.replace("/mosquitto/data/", f"{tmp_path}/data/")
    text = re.sub(r"(?m)^listener 1883$", f"listener {device_port} 127.0.0.1", text)
    text = re.sub(r"(?m)^listener 1884$", f"listener {service_port} 127.0.0.1", text)
    if os.geteuid() == 0:
        text += "\nuser root\n"  # as root it would drop to "mosquitto", locked out of tmp
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    return conf


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[DeployedBroker]:
    mosquitto, plugin = find_mosquitto(), find_dynsec_plugin()
    if mosquitto is None or plugin is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto with its dynamic-security plugin is required in CI")
        pytest.skip("mosquitto or its dynamic-security plugin is not installed")
    (tmp_path / "data").mkdir()
    (tmp_path / "acl-dynsec").write_text((DEPLOY / "acl-dynsec").read_text())
    write_initial_config(
        tmp_path / "data" / "dynamic-security.json",
        admin_username=ADMIN,
        admin_password=ADMIN_PASSWORD,
    )
    device_port, service_port = free_ports(2)
    conf = _adapt(tmp_path, device_port, service_port, plugin)
    with (tmp_path / "mosquitto.log").open("w") as log:
        proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for port in (device_port, service_port):
            wait_for_port("127.0.0.1", port, WAIT_S, proc)

        def on(port: int) -> DynsecBroker:
            server = type("Listener", (), {"host": "127.0.0.1", "port": port})()
            return DynsecBroker(server, ADMIN, ADMIN_PASSWORD)  # type: ignore[arg-type]

        yield DeployedBroker(devices=on(device_port), services=on(service_port))
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT_S)


def test_deploy_acl_dynsec_holds_exactly_the_device_patterns() -> None:
    lines = (DEPLOY / "acl-dynsec").read_text().splitlines()
    rules = [line for line in lines if line.strip() and not line.startswith("#")]
    assert tuple(rules) == DEVICE_ACL_PATTERNS


def test_deploy_dynsec_config_confines_devices_and_applies_revocation_live(
    deployed: DeployedBroker,
) -> None:
    me, other = "ACME-V-000001", "ACME-V-000002"
    with deployed.services.control() as control:
        admin = BrokerAdmin(control)
        passwords = admin.provision_devices([me, other])
        ingest_password = admin.provision_service("ingest")
        health_password = admin.provision_service("health")
        with (
            Session(deployed.services, "sealscope-ingest", ingest_password, "ingest-1") as ingest,
            Session(deployed.devices, "sealscope-health", health_password, "h") as health,
            # on the devices' listener the client id becomes the username, so asking for a
            # service's id gets the device its own session, not the service's
            Session(deployed.devices, me, passwords[me], "sealscope-ingest") as device,
        ):
            assert ingest.connect() == "Success"
            assert health.connect() == "Success"
            assert device.connect() == "Success"
            assert ingest.subscribe("$share/ingest/sealscope/v1/dev/#") == "Granted QoS 1"
            assert health.subscribe("$SYS/broker/uptime") == "Granted QoS 1"
            assert health.subscribe("sealscope/v1/dev/#") == "Not authorized"
            assert device.publish(device_topic(other, "telemetry")) == "Not authorized"
            assert device.publish(device_topic(me, "telemetry"), b"mine") == "Success"
            assert ingest.messages.get(timeout=WAIT_S).payload == b"mine"
            assert not ingest.disconnected.is_set()

            admin.revoke_devices([me])
            assert device.disconnected.wait(WAIT_S), "a revoked device stays connected"
        with Session(deployed.devices, me, passwords[me], me) as again:
            assert again.connect() == "Not authorized"
