"""Real services run as child processes on free loopback ports.

Mosquitto (the embedded default broker of ``sealscope up``, and the test broker), InfluxDB
1.x and the v2 write shim in front of it (tests, ``sealscope bench ingest``). Each is a
``ManagedServer`` (``start()``, ``stop()``, ``kill()``, ``restart()``); each child dies with
its parent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from composition.servers.influxdb import InfluxServer, find_influxd
from composition.servers.mosquitto import MosquittoServer, find_mosquitto
from composition.servers.ports import ServerFailed, free_port, wait_for_port
from composition.servers.process import ManagedServer

if TYPE_CHECKING:
    from composition.servers.v2shim import V2WriteShim

__all__ = [
    "InfluxServer",
    "ManagedServer",
    "MosquittoServer",
    "ServerFailed",
    "V2WriteShim",
    "find_influxd",
    "find_mosquitto",
    "free_port",
    "wait_for_port",
]


def __getattr__(name: str) -> Any:
    # imported on demand: the shim pulls in aiohttp, and an eager import would make
    # ``python -m composition.servers.v2shim`` warn that the module was imported twice
    if name == "V2WriteShim":
        from composition.servers.v2shim import V2WriteShim

        return V2WriteShim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
