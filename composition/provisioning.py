"""Provisioning wired to its stores: the registry, the provisioning tables on the state
database, the gateway's CoAP key store, and broker administration when one is given.

The claim-code pepper is a server secret of its own (``provisioning/pepper`` in the data
directory, made on first use like the gateway's): API instances that share a database must
share it too, or a code issued by one would not verify on another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from gateway.keys import SqliteDeviceKeys, load_pepper
from sealscope.config import Settings
from sealscope.db import open_migrated
from sealscope.provisioning import (
    ClaimCodes,
    MqttIdentities,
    Provisioner,
    SqlProvisioningStore,
)
from sealscope.registry import DeviceRegistry

__all__ = ["claim_pepper_path", "open_provisioner"]


def claim_pepper_path(settings: Settings) -> Path:
    return settings.data_dir / "provisioning" / "pepper"


@contextmanager
def open_provisioner(
    settings: Settings,
    *,
    registry: DeviceRegistry,
    engine: Engine | None = None,
    mqtt: MqttIdentities | None = None,
) -> Iterator[Provisioner]:
    """A ``Provisioner`` for the life of the block; ``engine`` (migrated) is the caller's,
    else one is opened on ``settings.database_url`` and closed at the end."""
    with ExitStack() as stack:
        if engine is None:
            engine = open_migrated(settings.database_url)
            stack.callback(engine.dispose)
        # the gateway reads its keys from the SQLite state file, whatever the database URL
        keys = SqliteDeviceKeys(settings.state_db, pepper=load_pepper(settings.gateway_pepper_path))
        stack.callback(keys.close)
        yield Provisioner(
            registry=registry,
            store=SqlProvisioningStore(engine),
            claim_codes=ClaimCodes(load_pepper(claim_pepper_path(settings))),
            coap_keys=keys,
            mqtt=mqtt,
        )
