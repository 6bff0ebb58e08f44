"""A fleet provisioned through BrokerAdmin publishes through the real broker, each device
only as itself. CI uses 1,000 devices; ``python -m composition.bench.dynsec`` runs 10,000
and prints the figures (10,000 take minutes to provision on Mosquitto 2.0.11)."""

from __future__ import annotations

from sealscope.broker_admin import BrokerAdmin
from tests.broker_admin.broker import DynsecBroker, assert_fleet_publishes_only_as_itself

FLEET = 1_000


def test_fleet_publishes_through_the_broker_each_device_only_as_itself(
    dynsec_broker: DynsecBroker,
) -> None:
    ids = [f"FLEET-V-{i:06d}" for i in range(FLEET)]
    with dynsec_broker.control() as control:
        passwords = BrokerAdmin(control).provision_devices(ids)
    assert sorted(passwords) == ids
    assert_fleet_publishes_only_as_itself(
        dynsec_broker, passwords, ingest_username="sealscope-ingest-fleet"
    )
