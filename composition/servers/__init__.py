"""Real services run as child processes on free loopback ports.

Mosquitto is the embedded default broker of ``sealscope up`` and the broker the tests and
benches start. It is a ``ManagedServer`` (``start()``, ``stop()``, ``kill()``,
``restart()``) whose child dies with its parent. The InfluxDB 1.x server and the v2 write
shim in front of it are harness for tests and benches only: ``composition.bench``.
"""

from __future__ import annotations

from composition.servers.mosquitto import MosquittoServer, find_mosquitto
from composition.servers.nats import NatsServer, find_nats_server
from composition.servers.ports import ServerFailed, free_port, free_ports, wait_for_port
from composition.servers.process import ManagedServer

__all__ = [
    "ManagedServer",
    "MosquittoServer",
    "NatsServer",
    "ServerFailed",
    "find_mosquitto",
    "find_nats_server",
    "free_port",
    "free_ports",
    "wait_for_port",
]
