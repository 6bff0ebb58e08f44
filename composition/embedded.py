"""The embedded MQTT broker of ``sealscope up``: a Mosquitto child process when the binary is
installed (persistent sessions on disk in the data directory), otherwise amqtt in-process.

amqtt 0.12 speaks MQTT 3.1.1 only, keeps no session on disk, drops the session of an
anonymous client soon after it disconnects and does not resend in-flight QoS 1 messages
after a reconnect. So on amqtt, ingest connects as MQTT 3.1.1 with a username (its session
and queued messages then survive its reconnects), and since sealscope's ingest acknowledges a
message only after the spool fsync, a message amqtt did not resend was either already spooled
or is still queued. What amqtt cannot give is durability across a restart of the whole
process: install mosquitto for that.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sealscope.errors import ConfigError

__all__ = ["BrokerKind", "EmbeddedBroker", "pick_port"]

log = logging.getLogger(__name__)

BrokerKind = Literal["auto", "mosquitto", "amqtt"]


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_port(host: str, wanted: int | None, default: int, what: str) -> int:
    """The port to listen on: ``wanted`` if given (it must be free), else ``default`` if free,
    else any free port, saying so."""
    if wanted is not None and wanted != 0:
        if not _port_is_free(host, wanted):
            raise ConfigError(f"{what} port", f"{host}:{wanted} is already in use")
        return wanted
    if wanted is None and _port_is_free(host, default):
        return default
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    if wanted is None:
        log.warning(
            "%s: port %d on %s is taken (another %s?); using %d", what, default, host, what, port
        )
    return port


@dataclass
class EmbeddedBroker:
    """Start with ``await broker.start()``; ``protocol`` says what clients should speak."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int | None = None
    kind: BrokerKind = "auto"

    def __post_init__(self) -> None:
        self._mosquitto: Any = None
        self._amqtt: Any = None
        self.chosen: Literal["mosquitto", "amqtt"] | None = None

    @property
    def protocol(self) -> Literal["5", "3.1.1"]:
        return "5" if self.chosen == "mosquitto" else "3.1.1"

    async def start(self) -> None:
        from composition.servers.mosquitto import MosquittoServer, find_mosquitto

        port = pick_port(self.host, self.port, 1883, "MQTT broker")
        use_mosquitto = self.kind == "mosquitto" or (
            self.kind == "auto" and find_mosquitto() is not None
        )
        if use_mosquitto:
            if find_mosquitto() is None:
                raise ConfigError("broker", "mosquitto was asked for but is not installed")
            workdir = self.data_dir / "mosquitto"
            workdir.mkdir(parents=True, exist_ok=True)
            self._mosquitto = MosquittoServer(workdir=workdir, host=self.host, port=port)
            self._mosquitto.start()
            self.chosen = "mosquitto"
        else:
            await self._start_amqtt(port)
            self.chosen = "amqtt"
        self.port = port

    async def _start_amqtt(self, port: int) -> None:
        from amqtt.broker import Broker
        from amqtt.contexts import BrokerConfig

        config = BrokerConfig.from_dict(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        self._amqtt = Broker(config)
        await self._amqtt.start()

    async def stop(self) -> None:
        if self._mosquitto is not None:
            self._mosquitto.stop()
            self._mosquitto = None
        if self._amqtt is not None:
            await self._amqtt.shutdown()
            self._amqtt = None
