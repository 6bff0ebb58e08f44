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
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sealscope.errors import ConfigError

__all__ = [
    "BrokerCredentials",
    "BrokerKind",
    "EmbeddedBroker",
    "PortMemory",
    "broker_credentials",
    "pick_port",
]

log = logging.getLogger(__name__)

BrokerKind = Literal["auto", "mosquitto", "amqtt"]

# Mosquitto's ACL file: topic lines before the first ``user`` line are the anonymous
# clients'. A local device (or the README's mosquitto_pub) may publish uplinks under any
# device id and read everything under sealscope/ (the banner's mosquitto_sub); the
# services publish commands and alerts and read uplinks as themselves.
_ANONYMOUS_ACL = [
    "topic write sealscope/v1/dev/+/telemetry",
    "topic write sealscope/v1/dev/+/event",
    "topic write sealscope/v1/dev/+/state",
    "topic read sealscope/#",
]
_SERVICE_ACL = ["topic readwrite sealscope/#"]


@dataclass(frozen=True)
class BrokerCredentials:
    """One service's login on the embedded broker; repr shows no secret."""

    username: str
    password: str
    client_id: str

    def __repr__(self) -> str:
        return f"BrokerCredentials(username={self.username!r}, client_id=...)"


def broker_credentials(path: Path) -> dict[str, BrokerCredentials]:
    """Ingest's and the gateway's logins on ``up``'s broker, made once and kept 0600.

    The client ids carry a random suffix: Mosquitto lets any client, anonymous ones too,
    take over the session of whoever uses its client id, so a well-known id
    (``sealscope-ingest``) would let any local client kick ingest off the broker.
    """
    try:
        raw = json.loads(path.read_text())
        return {role: BrokerCredentials(**fields) for role, fields in raw.items()}
    except FileNotFoundError:
        pass
    except (ValueError, TypeError) as exc:
        raise ConfigError("broker credentials", f"{path} is unreadable: {exc}") from exc
    made = {
        role: BrokerCredentials(
            username=f"sealscope-{role}",
            password=secrets.token_urlsafe(24),
            client_id=f"sealscope-{role}-{secrets.token_hex(8)}",
        )
        for role in ("ingest", "gateway")
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({role: vars(c) for role, c in made.items()}, f, indent=1)
    return made


class PortMemory:
    """The ports ``up`` chose last time (``ports.json`` in the data directory), so a
    fallback port stays the same from one start to the next."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, name: str) -> int | None:
        try:
            port = json.loads(self.path.read_text()).get(name)
        except (OSError, ValueError, AttributeError):
            return None
        return port if isinstance(port, int) and 0 < port < 65536 else None

    def remember(self, name: str, port: int) -> None:
        try:
            ports = json.loads(self.path.read_text())
            if not isinstance(ports, dict):
                ports = {}
        except (OSError, ValueError):
            ports = {}
        ports[name] = port
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports) + "\n")
        tmp.replace(self.path)


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


def pick_port(
    host: str, wanted: int | None, default: int, what: str, remembered: int | None = None
) -> int:
    """The port to listen on: ``wanted`` if given (it must be free), else the one used last
    time (``remembered``) if free, else ``default`` if free, else any free port, saying so."""
    if wanted is not None and wanted != 0:
        if not _port_is_free(host, wanted):
            raise ConfigError(f"{what} port", f"{host}:{wanted} is already in use")
        return wanted
    if wanted is None:
        for candidate in (remembered, default):
            if candidate is not None and _port_is_free(host, candidate):
                return candidate
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
    """Start with ``await broker.start()``; ``protocol`` says what clients should speak.

    With Mosquitto, ``credentials`` (see ``broker_credentials``) become its users, with the
    ACL above; anonymous clients may still publish uplinks. ``start()`` must run on a
    thread that lives as long as the broker (the child dies with the thread that forked
    it): the event loop's.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int | None = None
    kind: BrokerKind = "auto"
    default_port: int = 1883
    credentials: dict[str, BrokerCredentials] | None = None

    def __post_init__(self) -> None:
        self._mosquitto: Any = None
        self._amqtt: Any = None
        self.chosen: Literal["mosquitto", "amqtt"] | None = None

    @property
    def protocol(self) -> Literal["5", "3.1.1"]:
        return "5" if self.chosen == "mosquitto" else "3.1.1"

    @property
    def is_supervised(self) -> bool:
        """True for a child process that can die alone (amqtt lives and dies with us)."""
        return self._mosquitto is not None

    @property
    def is_running(self) -> bool:
        if self._mosquitto is not None:
            return bool(self._mosquitto.is_running)
        return self.chosen is not None

    @property
    def returncode(self) -> int | None:
        return self._mosquitto.returncode if self._mosquitto is not None else None

    def restart(self) -> None:
        """Start a dead Mosquitto again: same port, same persistence file."""
        self._mosquitto.start()

    async def start(self) -> None:
        from composition.servers.mosquitto import MosquittoServer, find_mosquitto

        use_mosquitto = self.kind == "mosquitto" or (
            self.kind == "auto" and find_mosquitto() is not None
        )
        memory = PortMemory(self.data_dir / "ports.json")
        if use_mosquitto:
            if find_mosquitto() is None:
                raise ConfigError("broker", "mosquitto was asked for but is not installed")
            workdir = self.data_dir / "mosquitto"
            workdir.mkdir(parents=True, exist_ok=True)
            creds = self.credentials or {}
            server = MosquittoServer(
                workdir=workdir,
                host=self.host,
                users={c.username: c.password for c in creds.values()} or None,
                acl_lines=_acl(creds) if creds else None,
                allow_anonymous=True,
                # every change saved: a SIGKILL of the broker loses no acknowledged message
                # (see README "Reliability" and `sealscope bench broker` for the cost)
                autosave_interval=1,
                autosave_on_changes=True,
                use_pidfile=True,
            )
            # a broker left by an earlier `up` that was SIGKILLed holds our port
            server.stop_leftover()
            port = pick_port(
                self.host, self.port, self.default_port, "MQTT broker", memory.get("mqtt")
            )
            server.port = port
            server.start()
            self._mosquitto = server
            self.chosen = "mosquitto"
        else:
            port = pick_port(
                self.host, self.port, self.default_port, "MQTT broker", memory.get("mqtt")
            )
            await self._start_amqtt(port)
            self.chosen = "amqtt"
        self.port = port
        memory.remember("mqtt", port)

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


def _acl(creds: dict[str, BrokerCredentials]) -> list[str]:
    lines = list(_ANONYMOUS_ACL)
    for c in creds.values():
        lines += [f"user {c.username}", *_SERVICE_ACL]
    return lines
