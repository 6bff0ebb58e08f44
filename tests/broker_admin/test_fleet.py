"""A fleet provisioned through BrokerAdmin publishes through the real broker, each device
only as itself. CI uses 1,000 devices; ``python -m composition.bench.dynsec`` runs 10,000
and prints the figures (10,000 take minutes to provision on Mosquitto 2.0.11)."""

from __future__ import annotations

from composition.bench.dynsec import UplinkCounter, publish_once_per_device
from sealscope.broker_admin import BrokerAdmin
from sealscope.topics import device_topic
from tests.broker_admin.broker import WAIT_S, DynsecBroker, Session

FLEET = 1_000


def test_fleet_publishes_through_the_broker_each_device_only_as_itself(
    dynsec_broker: DynsecBroker,
) -> None:
    ids = [f"FLEET-V-{i:06d}" for i in range(FLEET)]
    host, port = dynsec_broker.server.host, dynsec_broker.server.port
    with dynsec_broker.control() as control:
        admin = BrokerAdmin(control)
        passwords = admin.provision_devices(ids)
        ingest_password = admin.provision_service("ingest", "sealscope-ingest-fleet")
    assert sorted(passwords) == ids
    with UplinkCounter(dynsec_broker, "sealscope-ingest-fleet", ingest_password) as ingest:
        forger = ids[0]
        with Session(dynsec_broker, forger, passwords[forger], forger) as device:
            assert device.connect() == "Success"
            assert device.publish(device_topic(ids[1], "telemetry")) == "Not authorized"
            assert device.publish(device_topic("GHOST-0001", "telemetry")) == "Not authorized"
            assert device.publish(device_topic(forger, "telemetry")) == "Success"
        # one connection delivers in order: its own message arriving means the two
        # refused ones would have arrived already
        assert ingest.wait_for(1, timeout_s=WAIT_S)
        assert ingest.devices == {forger}

        run = publish_once_per_device(host, port, passwords, workers=8)
        assert set(run.connack.values()) == {"Success"}
        assert set(run.puback.values()) == {"Success"}
        assert ingest.wait_for(FLEET, timeout_s=60), f"{len(ingest.devices)} of {FLEET} arrived"
        assert ingest.devices == set(ids)
