"""Real services for integration tests: Mosquitto and InfluxDB on free loopback ports.

A missing binary skips the tests that need it, except in CI (``CI`` set), where it fails
the run: CI must never go green by skipping the integration suite.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from composition.bench.influxdb import InfluxServer, find_influxd
from composition.bench.v2shim import V2WriteShim
from composition.servers import MosquittoServer, find_mosquitto


def _require(binary: str | None, name: str) -> None:
    if binary is not None:
        return
    reason = f"{name} is not installed (apt-get install {name})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so integration services are required")
    pytest.skip(reason)


@dataclass(frozen=True)
class InfluxTarget:
    """An InfluxDB 1.x with the v2 write shim (and its token) in front of it."""

    write_url: str  # the shim: v2 writes, InfluxQL /query passed through
    token: str = field(repr=False)  # keep it out of failure reports
    org: str
    bucket: str
    database: str
    server: InfluxServer  # direct 1.x access for seeding and checking
    shim: V2WriteShim


def _start_influx(workdir: Path, *, max_body_size: int | None = None) -> InfluxTarget:
    _require(find_influxd(), "influxdb")
    server = InfluxServer(workdir=workdir, max_body_size=max_body_size)
    server.start()
    try:
        database = "sealscope_test"
        server.create_database(database)
        token = secrets.token_urlsafe(24)
        shim = V2WriteShim(target_url=server.url, token=token)
        shim.start()
    except BaseException:
        server.stop()
        raise
    return InfluxTarget(
        write_url=shim.url,
        token=token,
        org="sealscope",
        bucket=database,
        database=database,
        server=server,
        shim=shim,
    )


def _stop_influx(target: InfluxTarget) -> None:
    target.shim.stop()
    target.server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """A broker shared by the session, anonymous access; use a unique topic per test."""
    _require(find_mosquitto(), "mosquitto")
    server = MosquittoServer(workdir=tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[Callable[..., MosquittoServer]]:
    """Factory for a broker of the test's own (to restart, kill, or configure users/ACL)."""
    started: list[MosquittoServer] = []

    def make(**kwargs: Any) -> MosquittoServer:
        _require(find_mosquitto(), "mosquitto")
        server = MosquittoServer(workdir=tmp_path / f"mosquitto-{len(started)}", **kwargs)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxTarget]:
    """InfluxDB + token-protected v2 shim shared by the session; use unique series per test."""
    target = _start_influx(tmp_path_factory.mktemp("influxdb"))
    yield target
    _stop_influx(target)


@pytest.fixture
def fresh_influx(tmp_path: Path) -> Iterator[Callable[..., InfluxTarget]]:
    """Factory for an InfluxDB + shim of the test's own (to stop, or with ``max_body_size``)."""
    started: list[InfluxTarget] = []

    def make(*, max_body_size: int | None = None) -> InfluxTarget:
        target = _start_influx(tmp_path / f"influx-{len(started)}", max_body_size=max_body_size)
        started.append(target)
        return target

    yield make
    for target in started:
        _stop_influx(target)
