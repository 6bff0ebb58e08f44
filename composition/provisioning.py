"""Provisioning wired to its stores: the registry, the provisioning tables on the state
database, the gateway's CoAP key store, and broker administration when one is given or
configured (``broker_admin_host``: logins applied in the background by a ``BrokerApplier``
whose sealing key is ``provisioning/broker-key`` in the data directory, shared like the
pepper by API instances sharing a database).

The claim-code pepper is a server secret of its own (``provisioning/pepper`` in the data
directory, made on first use like the gateway's): API instances that share a database must
share it too, or a code issued by one would not verify on another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from gateway.keys import SqliteDeviceKeys, load_pepper
from sealscope.broker_admin import DynsecControl
from sealscope.config import Settings
from sealscope.db import open_migrated
from sealscope.errors import ConfigError
from sealscope.provisioning import (
    BrokerApplier,
    ClaimCodes,
    MqttIdentities,
    PasswordSealer,
    Provisioner,
    SqlBrokerQueue,
    SqlProvisioningStore,
    load_sealing_key,
)
from sealscope.registry import DeviceRegistry

__all__ = ["broker_admin_connect", "claim_pepper_path", "open_provisioner"]


def claim_pepper_path(settings: Settings) -> Path:
    return settings.data_dir / "provisioning" / "pepper"


def broker_admin_connect(settings: Settings) -> Callable[[], DynsecControl] | None:
    """Opens the configured dynsec admin connection; None when no broker admin is set."""
    host = settings.broker_admin_host
    if host is None:
        return None
    if settings.broker_admin_password is None:
        raise ConfigError("broker_admin_password", "required with broker_admin_host")
    password = settings.broker_admin_password.get_secret_value()

    def connect() -> DynsecControl:
        return DynsecControl(
            host=host,
            port=settings.broker_admin_port,
            username=settings.broker_admin_username,
            password=password,
            chunk_commands=settings.broker_admin_chunk_commands,
        )

    return connect


def broker_key_path(settings: Settings) -> Path:
    return settings.data_dir / "provisioning" / "broker-key"


class _GatewayKeys:
    """The gateway's key store, opened at the first upload: the gateway reads its keys from
    the SQLite state file whatever the database URL, and an API that never provisions
    should not create that file."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: SqliteDeviceKeys | None = None
        self._lock = threading.Lock()

    def _open(self) -> SqliteDeviceKeys:
        with self._lock:
            if self._keys is None:
                pepper = load_pepper(self._settings.gateway_pepper_path)
                self._keys = SqliteDeviceKeys(self._settings.state_db, pepper=pepper)
            return self._keys

    def issue_many(self, device_ids: Iterable[str]) -> dict[str, str]:
        return self._open().issue_many(device_ids)

    def rotate(self, device_id: str) -> str:
        return self._open().rotate(device_id)

    def close(self) -> None:
        with self._lock:
            if self._keys is not None:
                self._keys.close()
                self._keys = None


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
        keys = _GatewayKeys(settings)
        stack.callback(keys.close)
        applier = None
        connect = broker_admin_connect(settings) if mqtt is None else None
        if connect is not None:
            sealer = PasswordSealer(load_sealing_key(broker_key_path(settings)))
            applier = BrokerApplier(
                SqlBrokerQueue(engine, sealer),
                connect,
                chunk_commands=settings.broker_admin_chunk_commands,
            )
            applier.start()  # resumes what an earlier process left pending
            stack.callback(applier.close)
        yield Provisioner(
            registry=registry,
            store=SqlProvisioningStore(engine),
            claim_codes=ClaimCodes(load_pepper(claim_pepper_path(settings))),
            coap_keys=keys,
            mqtt=mqtt,
            mqtt_queue=applier,
        )
