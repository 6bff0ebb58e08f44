"""Long-running commands, assembled from settings: ``up``, ``ingest``, ``api``, ``sim``.

This is the composition side of the CLI: it builds components, wires them together, owns
start-up order and the shutdown order that keeps the reliability contract (publishers first,
then ingest drains into the store, then the API and the broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import uvicorn

from sealscope.alerts import AlertStore, SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore, SqliteDeadLetterStore
from sealscope.embedded import BrokerKind, EmbeddedBroker, pick_port
from sealscope.errors import SealscopeError
from sealscope.registry import DeviceRegistry, SqliteDeviceRegistry
from sealscope.storage import TelemetryStore
from sealscope.storage.factory import open_telemetry_store

__all__ = ["Core", "open_core", "run_api", "run_ingest", "run_sim", "run_up"]

log = logging.getLogger(__name__)


@dataclass
class Core:
    """The shared stores every service uses."""

    settings: Settings
    registry: DeviceRegistry
    alerts: AlertStore
    dead_letters: DeadLetterStore
    store: TelemetryStore


@contextlib.asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = SqliteDeviceRegistry(settings.state_db)
    alerts = SqliteAlertStore(settings.state_db)
    dead_letters = SqliteDeadLetterStore(settings.state_db)
    store = await open_telemetry_store(settings)
    try:
        yield Core(settings, registry, alerts, dead_letters, store)
    finally:
        await store.close()
        for closable in (dead_letters, alerts, registry):
            closable.close()


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM (Ctrl-C), so shutdown runs in order, not by exception."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _detection(core: Core) -> Any:
    if not core.settings.detect:
        return None
    from analytics import DetectionService

    core.settings.detector_state_dir.mkdir(parents=True, exist_ok=True)
    return DetectionService(
        alerts=core.alerts, state_path=core.settings.detector_state_dir / "detectors.npz"
    )


class _ApiServer(uvicorn.Server):
    """uvicorn inside our loop: we own the signals and the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def _api_server(core: Core, host: str, port: int) -> _ApiServer:
    from sealscope.api import create_app

    app = create_app(
        core.settings,
        telemetry_store=core.store,
        registry=core.registry,
        alerts=core.alerts,
        dead_letters=core.dead_letters,
    )
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return _ApiServer(config)


async def _serve_until_started(server: _ApiServer, tg: asyncio.TaskGroup) -> None:
    tg.create_task(server.serve(), name="api")
    while not server.started:
        if server.should_exit:
            raise RuntimeError("the API server failed to start")
        await asyncio.sleep(0.05)


async def run_ingest(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    from ingest import IngestService

    stop = stop or _stop_event()
    async with (
        open_core(settings) as core,
        IngestService(
            settings=settings,
            store=core.store,
            registry=core.registry,
            dead_letters=core.dead_letters,
            alerts=core.alerts,
            detection=_detection(core),
        ),
    ):
        log.info("ingest: consuming from %s:%d", settings.mqtt_host, settings.mqtt_port)
        await stop.wait()


async def run_api(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_event()
    async with open_core(settings) as core, asyncio.TaskGroup() as tg:
        server = _api_server(core, settings.api_host, settings.api_port)
        await _serve_until_started(server, tg)
        log.info("api: listening on http://%s:%d", settings.api_host, settings.api_port)
        await stop.wait()
        server.should_exit = True


async def run_sim(
    settings: Settings,
    *,
    devices: int,
    interval_s: float,
    uplinks: int | None,
    seed: int,
    backfill_s: float = 12 * 3600.0,
    register: bool = True,
    stop: asyncio.Event | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Publish a simulated fleet whose event time starts ``backfill_s`` ago, runs one uplink
    round per ``interval_s`` until it reaches the wall clock, then goes on live."""
    from firmware_sim import Fleet, FleetSpec, run_simulation

    stop = stop or _stop_event()
    fleet = Fleet(
        FleetSpec(devices=devices, seed=seed, start_t=time.time() - backfill_s, degrading_share=0.2)
    )
    registry = SqliteDeviceRegistry(settings.state_db) if register else None

    def progress(report: Any) -> None:
        if report.rounds % 10 == 0:
            log.info(
                "sim: %d rounds, %d messages acknowledged (%.0f msg/s)",
                report.rounds,
                report.messages_acked,
                report.messages_per_s,
            )

    try:
        report = await run_simulation(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            fleet=fleet,
            uplinks=uplinks,
            interval_s=interval_s,
            registry=registry,
            protocol=settings.mqtt_protocol,
            progress=progress,
            stop=stop,
            hold_at_wall_clock=True,
        )
    finally:
        if registry is not None:
            registry.close()
    print(report.summary(), file=out, flush=True)


async def run_up(
    settings: Settings,
    *,
    simulate: int = 0,
    sim_interval_s: float = 1.0,
    broker_kind: BrokerKind = "auto",
    mqtt_port: int | None = None,
    api_port: int | None = None,
    stop: asyncio.Event | None = None,
    out: TextIO = sys.stdout,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Broker, SQLite stores, ingest, detectors, API (and a simulated fleet), in one process."""
    from ingest import IngestService

    stop = stop or _stop_event()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(data_dir=settings.data_dir, port=mqtt_port, kind=broker_kind)
    await broker.start()
    assert broker.port is not None
    try:
        settings = settings.model_copy(
            update={
                "mqtt_host": broker.host,
                "mqtt_port": broker.port,
                "mqtt_protocol": broker.protocol,
            }
        )
        api_port = pick_port(settings.api_host, api_port, settings.api_port, "API")
        async with open_core(settings) as core:
            ingest = IngestService(
                settings=settings,
                store=core.store,
                registry=core.registry,
                dead_letters=core.dead_letters,
                alerts=core.alerts,
                detection=_detection(core),
            )
            async with ingest, asyncio.TaskGroup() as tg:
                if not await asyncio.to_thread(ingest.wait_connected, 10.0):
                    raise SealscopeError(
                        f"ingest could not connect to the embedded broker on port {broker.port}"
                    )
                server = _api_server(core, settings.api_host, api_port)
                await _serve_until_started(server, tg)
                info = {
                    "api": f"http://{settings.api_host}:{api_port}",
                    "mqtt": f"mqtt://{broker.host}:{broker.port}",
                    "broker": broker.chosen,
                    "data_dir": str(settings.data_dir.resolve()),
                }
                print(
                    f"sealscope is up\n"
                    f"  API and web page  {info['api']}/   (OpenAPI: {info['api']}/docs)\n"
                    f"  MQTT broker       {info['mqtt']}   ({broker.chosen}; try: "
                    f"mosquitto_sub -h {broker.host} -p {broker.port} -t 'sealscope/#' -v)\n"
                    f"  data              {info['data_dir']}\n"
                    f"Press Ctrl-C to stop.",
                    file=out,
                    flush=True,
                )
                sim_stop = asyncio.Event()
                sim_task = None
                if simulate:
                    sim_task = tg.create_task(
                        run_sim(
                            settings,
                            devices=simulate,
                            interval_s=sim_interval_s,
                            uplinks=None,
                            seed=1,
                            stop=sim_stop,
                            out=out,
                        ),
                        name="sim",
                    )
                if on_ready is not None:
                    on_ready(info)
                await stop.wait()
                print(
                    "sealscope: stopping (draining ingest into the store)...", file=out, flush=True
                )
                sim_stop.set()
                if sim_task is not None:
                    await sim_task
                server.should_exit = True
            # leaving `async with ingest` drained it: everything acknowledged is stored
    finally:
        await broker.stop()
    print("sealscope: stopped cleanly", file=out, flush=True)
