"""Real services for integration tests: Mosquitto and InfluxDB on free loopback ports,
and PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth; ``scripts/test`` installs
and starts it), each test session in databases of its own, dropped at the end.

A missing binary skips the tests that need it, except in CI (``CI`` set), where it fails
the run: CI must never go green by skipping the integration suite.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from composition.bench.influxdb import InfluxServer, find_influxd
from composition.bench.v2shim import V2WriteShim
from composition.servers import MosquittoServer, find_mosquitto
from sealscope.db import migrate, open_engine, sqlite_url

# where the test PostgreSQL listens; its maintenance database, used to create ours
POSTGRES_ADMIN_URL = os.environ.get(
    "SEALSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


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


class PostgresDatabases:
    """Creates uniquely named databases on the test server; drops them all at the end."""

    def __init__(self, admin: sa.Engine) -> None:
        self._admin = admin
        self._names: list[str] = []

    def create(self) -> str:
        name = f"sealscope_test_{secrets.token_hex(6)}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self._names.append(name)
        return self._admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for name in self._names:
                # FORCE: a test that failed may have left a pooled connection open
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    """Factory for fresh PostgreSQL databases (``.create()`` returns a URL)."""
    admin = open_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        admin.dispose()
        _require(None, "postgresql")
    databases = PostgresDatabases(admin)
    yield databases
    databases.drop_all()
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_engine(postgres_databases: PostgresDatabases) -> Iterator[sa.Engine]:
    """One migrated PostgreSQL database for the session's store tests."""
    engine = open_engine(postgres_databases.create())
    migrate(engine)
    yield engine
    engine.dispose()


def _truncate_all(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        names = conn.scalars(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename <> 'alembic_version'"
            )
        ).all()
        if names:
            listed = ", ".join(f'"{n}"' for n in names)
            conn.execute(sa.text(f"TRUNCATE {listed} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated, empty state database: a fresh SQLite file, or the session's PostgreSQL
    database emptied after the test. Store contract tests take this fixture."""
    if request.param == "sqlite":
        engine = open_engine(sqlite_url(tmp_path / "state" / "sealscope.db"))
        migrate(engine)
        yield engine
        engine.dispose()
        return
    engine = request.getfixturevalue("postgres_engine")
    yield engine
    _truncate_all(engine)


# NATS JetStream for the batch log between ingest and detector workers: the one these
# machines run on 127.0.0.1:4222 (or SEALSCOPE_TEST_NATS_URL); where none answers, a
# nats-server of the session's own. Tests use a stream of their own and delete it.
NATS_URL = os.environ.get("SEALSCOPE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _answers(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _answers(NATS_URL):
        yield NATS_URL
        return
    from composition.servers.nats import NatsServer, find_nats_server

    _require(find_nats_server(), "nats-server")
    server = NatsServer(workdir=tmp_path_factory.mktemp("nats"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
async def batch_log(nats_url: str) -> Any:
    """A LogConfig naming a stream, subjects and buckets of this test's own (deleted after)."""
    from sealscope.streaming import LogConfig, connect, delete_log

    token = secrets.token_hex(4)
    cfg = LogConfig(
        url=nats_url,
        stream=f"TEST_{token}",
        subject=f"test.{token}.batches",
        partitions=4,
        lease_ttl_s=2.0,
    )
    yield cfg
    nc = await connect(nats_url)
    try:
        await delete_log(nc.jetstream(), cfg)
    finally:
        await nc.close()
