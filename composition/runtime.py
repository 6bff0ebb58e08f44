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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import uvicorn
from pydantic import SecretStr

from composition.admin import first_admin
from composition.alert_delivery import alert_console, delivery_dispatcher, renotifier
from composition.api.broker import BrokerLink
from composition.embedded import (
    BrokerKind,
    EmbeddedBroker,
    PortMemory,
    broker_credentials,
    pick_port,
)
from composition.metrics import (
    api_readings,
    batch_log_readings,
    delivery_readings,
    gateway_readings,
    ingest_readings,
    serving_metrics,
)
from sealscope.alerts import AlertStore, SqlAlertStore
from sealscope.commands import CommandStore, SqlCommandStore
from sealscope.config import Settings
from sealscope.db import open_migrated
from sealscope.deadletters import DeadLetterStore, SqlDeadLetterStore
from sealscope.delivery import (
    Outbox,
    SqlOutbox,
)
from sealscope.errors import ConfigError, NotFound, SealscopeError
from sealscope.metrics import ProcessMetrics
from sealscope.registry import DeviceRegistry, SqlDeviceRegistry
from sealscope.risk import JsonFileRiskStore, RiskTable
from sealscope.storage import TelemetryStore
from sealscope.storage.factory import open_telemetry_store

if TYPE_CHECKING:
    from firmware_sim import SimReport

__all__ = [
    "Core",
    "open_core",
    "open_ingest_worker_deps",
    "run_api",
    "run_gateway",
    "run_ingest",
    "run_sim",
    "run_up",
    "sim_transport",
]

log = logging.getLogger(__name__)


@dataclass
class Core:
    """The shared stores every service uses."""

    settings: Settings
    registry: DeviceRegistry
    alerts: AlertStore
    dead_letters: DeadLetterStore
    store: TelemetryStore
    outbox: Outbox  # every alert change is enqueued here, in the change's transaction
    commands: CommandStore  # device commands and the states the gateway reports


@contextlib.asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    from composition.delivery_scope import DeliveryScope
    from sealscope.accounts import SqlAccountStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_migrated(settings.database_url)
    registry = SqlDeviceRegistry(engine)
    alerts = SqlAlertStore(engine, renotify_after_s=settings.renotify_after_s)
    dead_letters = SqlDeadLetterStore(engine)
    accounts = SqlAccountStore(engine)  # the engine outlives it: closed below
    # fleet risk groups' makers: the table the detection process last saved
    scope = DeliveryScope(accounts, registry, JsonFileRiskStore(settings.risk_table_path).load)
    outbox = SqlOutbox(engine, in_scope=scope.in_scope, risk_in_scope=scope.risk_in_scope)
    alerts.on_change(outbox.enqueue)
    try:
        store = await open_telemetry_store(settings)
        try:
            commands = SqlCommandStore(engine)
            yield Core(settings, registry, alerts, dead_letters, store, outbox, commands)
        finally:
            await store.close()
    finally:
        accounts.close()
        engine.dispose()


@contextlib.asynccontextmanager
async def open_ingest_worker_deps(settings: Settings) -> AsyncIterator[Any]:
    """What an ingest worker process writes to: the same stores as ``sealscope ingest``
    (alerts reach the outbox through the same hook)."""
    from ingest.workers import WorkerDeps

    async with open_core(settings) as core, _batch_log(settings) as sink:
        yield WorkerDeps(
            core.store, core.registry, core.dead_letters, core.alerts, core.commands, sink
        )


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM (Ctrl-C), so shutdown runs in order, not by exception."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _detection(core: Core) -> Any:
    """The detectors and fleet risk ingest feeds (None when detection is off)."""
    if not core.settings.detect:
        return None
    from analytics import DetectionService
    from analytics.fleet_monitor import FleetMonitor

    core.settings.detector_state_dir.mkdir(parents=True, exist_ok=True)
    detection = DetectionService.from_settings(core.settings, alerts=core.alerts)
    return FleetMonitor.from_settings(core.settings, detection=detection, alerts=core.alerts)


@contextlib.asynccontextmanager
async def _batch_log(settings: Settings) -> AsyncIterator[Any]:
    """The JetStream publisher ingest feeds detector workers through, if configured."""
    if settings.nats_url is None:
        yield None
        return
    from sealscope.streaming import BatchPublisher, LogConfig

    async with BatchPublisher(LogConfig.from_settings(settings)) as publisher:
        yield publisher


class _ApiServer(uvicorn.Server):
    """uvicorn inside our loop: we own the signals and the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    async def shutdown(self, sockets: Any = None) -> None:
        # uvicorn waits for open responses before it stops: end the live streams first
        hub = getattr(getattr(self.config.app, "state", None), "stream_hub", None)
        if hub is not None:
            hub.close_streams()
        await super().shutdown(sockets)


class _LiveRisk:
    """The risk store of a process that runs the detectors: reads the table live."""

    def __init__(self, monitor: Any) -> None:
        self._monitor = monitor

    def save(self, table: RiskTable) -> None:
        pass  # the monitor saves its own table to the shared file

    def load(self) -> RiskTable:
        table: RiskTable = self._monitor.table()
        return table


def _api_server(
    core: Core,
    host: str,
    port: int,
    risk_store: Any = None,
    components: Callable[[], dict[str, str]] | None = None,
    wake_dispatcher: Callable[[], None] | None = None,
    broker: BrokerLink | None = None,
) -> _ApiServer:
    from composition.api import create_app

    app = create_app(
        core.settings,
        telemetry_store=core.store,
        registry=core.registry,
        alerts=core.alerts,
        dead_letters=core.dead_letters,
        risk_store=risk_store,
        outbox=core.outbox,
        commands=core.commands,
        broker=broker,
    )
    app.state.wake_dispatcher = wake_dispatcher  # redelivery sends now, not at the next poll
    if components is not None:
        app.state.health_components = components  # /healthz reports what is down
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,  # a response still open then is cut
    )
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
        _batch_log(settings) as sink,
        IngestService(
            settings=settings,
            store=core.store,
            registry=core.registry,
            dead_letters=core.dead_letters,
            alerts=core.alerts,
            commands=core.commands,
            # with a batch log, detection runs in `sealscope detect-worker` processes
            detection=_detection(core) if sink is None else None,
            sink=sink,
            open_worker_deps=open_ingest_worker_deps,
        ) as ingest,
        renotifier(settings, core.alerts),
        alert_console(core.alerts),
        delivery_dispatcher(settings, core.outbox) as dispatcher,
    ):
        metrics = ProcessMetrics()
        metrics.add(*ingest_readings(ingest), *delivery_readings(dispatcher))
        if sink is not None:
            metrics.add(*batch_log_readings(sink))
        log.info("ingest: consuming from %s:%d", settings.mqtt_host, settings.mqtt_port)
        with serving_metrics(settings, metrics):
            await stop.wait()


async def run_api(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_event()
    async with (
        open_core(settings) as core,
        BrokerLink.from_settings(settings) as broker,
        asyncio.TaskGroup() as tg,
    ):
        server = _api_server(core, settings.api_host, settings.api_port, broker=broker)
        await _serve_until_started(server, tg)
        log.info("api: listening on http://%s:%d", settings.api_host, settings.api_port)
        metrics = ProcessMetrics()  # the process's own figures, and the live stream's
        metrics.add(*api_readings(server.config.app))
        with serving_metrics(settings, metrics):
            await stop.wait()
        server.should_exit = True


SimProfile = Literal["demo", "field"]
SimTransport = Literal["mqtt", "mqtt-device", "coap"]


def sim_transport(
    settings: Settings,
    fleet: Any,
    transport: SimTransport,
    *,
    connections: int,
    downlink: bool,
    coap_host: str,
    coap_port: int,
) -> Any:
    """None for the shared MQTT connection (the runner builds it), else the transport."""
    if transport == "mqtt":
        return None
    if transport == "mqtt-device":
        from firmware_sim import DeviceMqttTransport

        # each device logs in as itself: the broker needs fleet.credentials() as users
        return DeviceMqttTransport(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            credentials=fleet.credentials(),
            connections=connections,
            downlink=downlink,
        )
    from firmware_sim.coap import CoapTransport
    from gateway.keys import SqliteDeviceKeys, load_pepper

    # The simulated devices own their ids: (re)issue their keys in the gateway's key store
    # under the same data directory, as provisioning would.
    keys = SqliteDeviceKeys(settings.state_db, pepper=load_pepper(settings.gateway_pepper_path))
    try:
        issued = keys.issue_many(fleet.device_ids)
        for device_id in fleet.device_ids:
            if device_id not in issued:
                issued[device_id] = keys.issue(device_id, replace=True)
    finally:
        keys.close()
    return CoapTransport(host=coap_host, port=coap_port, keys=issued, concurrency=connections)


async def run_sim(
    settings: Settings,
    *,
    devices: int,
    interval_s: float,
    uplinks: int | None,
    seed: int,
    backfill_s: float = 12 * 3600.0,
    register: bool = True,
    profile: SimProfile = "demo",
    transport: SimTransport = "mqtt",
    speed: float | None = None,
    connections: int = 64,
    downlink: bool = False,
    coap_host: str = "127.0.0.1",
    coap_port: int = 5683,
    truth_out: Path | None = None,
    progress_bar: bool = False,
    stop: asyncio.Event | None = None,
    out: TextIO = sys.stdout,
) -> SimReport:
    """Publish a simulated fleet; returns what the far end acknowledged.

    Live (no ``speed``): event time starts ``backfill_s`` ago, one uplink round per
    ``interval_s`` until it reaches the wall clock, then it goes on live. With ``speed``
    (simulated seconds per wall second) the fleet starts at its spec's fixed start time and
    runs ahead of the wall clock, for evaluation."""
    from firmware_sim import Fleet, FleetSpec, run_simulation

    stop = stop or _stop_event()
    live = speed is None
    start_t = time.time() - backfill_s if live else None
    if profile == "field":
        spec = FleetSpec.field(devices=devices, seed=seed)
    else:
        spec = FleetSpec(devices=devices, seed=seed, degrading_share=0.2)
    if start_t is not None:
        spec = spec.replace(start_t=start_t)
    fleet = Fleet(spec)
    carrier = sim_transport(
        settings,
        fleet,
        transport,
        connections=connections,
        downlink=downlink,
        coap_host=coap_host,
        coap_port=coap_port,
    )
    registry = (
        SqlDeviceRegistry(open_migrated(settings.database_url), owns_engine=True)
        if register
        else None
    )

    def progress(report: Any) -> None:
        if not progress_bar and report.rounds % 10 == 0:
            log.info(
                "sim: %d rounds, %d messages acknowledged (%.0f msg/s)",
                report.rounds,
                report.messages_acked,
                report.messages_per_s,
            )

    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    try:
        report = await run_simulation(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username if password is not None else None,
            password=password,
            fleet=fleet,
            uplinks=uplinks,
            interval_s=interval_s,
            registry=registry,
            protocol=settings.mqtt_protocol,
            progress=progress,
            stop=stop,
            hold_at_wall_clock=live,
            transport=carrier,
            speed=speed,
            progress_bar=progress_bar,
        )
    finally:
        if registry is not None:
            registry.close()
    print(report.summary(), file=out, flush=True)
    if truth_out is not None:
        print(f"ground truth: {fleet.write_truth(str(truth_out))}", file=out, flush=True)
    return report


async def run_gateway(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``sealscope gateway``: CoAP (and, with ``push_port``, the platforms' HTTP push)."""
    from gateway import run_gateway as serve_gateway

    stop = stop or _stop_event()
    factory = _push_app_factory(settings) if settings.push_port is not None else None
    metrics = ProcessMetrics()
    with serving_metrics(settings, metrics):
        await serve_gateway(
            settings,
            coap_host=settings.coap_host,
            coap_port=settings.coap_port,
            http_host=settings.push_host,
            http_port=settings.push_port,
            http_app_factory=factory,
            stop=stop,
            on_ready=lambda gateway: metrics.add(*gateway_readings(gateway)),
        )


def _push_app_factory(settings: Settings) -> Callable[[Any], Any]:
    from gateway.http_push import PlatformCredentials, create_push_app

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    try:
        credentials = PlatformCredentials(
            huawei_token=secret(settings.push_huawei_token),
            ctwing_token=secret(settings.push_ctwing_token),
            onenet_token=secret(settings.push_onenet_token),
        )
    except ValueError as exc:
        raise ConfigError("push", str(exc)) from exc

    def factory(gateway: Any) -> Any:
        registry = SqlDeviceRegistry(open_migrated(settings.database_url), owns_engine=True)

        def resolve(platform: str, ref: str) -> str | None:
            # a platform's device is registered under its IMEI / node id or platform id
            try:
                return registry.get(ref).device_id
            except (NotFound, ValueError):
                return None

        app = create_push_app(
            sink=gateway.forwarder,
            credentials=credentials,
            dead_letters=gateway.dead_letters,
            resolve_device=resolve,
            queue_max=settings.push_queue_max,
            max_body_bytes=settings.push_max_body_bytes,
        )

        async def close_registry(_app: Any) -> None:
            registry.close()

        app.on_cleanup.append(close_registry)
        return app

    return factory


_BROKER_POLL_S = 0.2
_BROKER_RESTART_MAX_DELAY_S = 30.0


async def _supervise_broker(broker: EmbeddedBroker, stop: asyncio.Event) -> None:
    """Restart the broker child if it dies alone: same port, same persistence file.

    Restarting runs on the event loop's thread on purpose: a child dies with the thread
    that forked it (PR_SET_PDEATHSIG), and this thread lives as long as ``up``.
    """
    delay_s = 0.5
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=_BROKER_POLL_S)
        if stop.is_set() or broker.is_running:
            continue
        log.warning(
            "broker: exited (code %s); restarting it on port %s", broker.returncode, broker.port
        )
        try:
            broker.restart()
            delay_s = 0.5
            log.info("broker: restarted on port %s", broker.port)
        except SealscopeError as exc:
            log.error("broker: restart failed, next try in %.1f s: %s", delay_s, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay_s)
            delay_s = min(delay_s * 2, _BROKER_RESTART_MAX_DELAY_S)


def _up_settings(settings: Settings, broker: EmbeddedBroker) -> tuple[Settings, Settings]:
    """Ingest's settings and the simulator's on the embedded broker (their own logins)."""
    assert broker.port is not None
    common: dict[str, Any] = {
        "mqtt_host": broker.host,
        "mqtt_port": broker.port,
        "mqtt_protocol": broker.protocol,
    }
    creds = broker.credentials or {}
    if broker.chosen != "mosquitto" or not creds:
        # amqtt: anonymous, but ingest's client id is still one nobody can guess
        ingest_id = creds["ingest"].client_id if creds else settings.mqtt_client_id
        ingest = settings.model_copy(update={**common, "mqtt_client_id": ingest_id})
        return ingest, ingest
    ingest_login, gateway_login = creds["ingest"], creds["gateway"]
    ingest = settings.model_copy(
        update={
            **common,
            "mqtt_username": ingest_login.username,
            "mqtt_password": SecretStr(ingest_login.password),
            "mqtt_client_id": ingest_login.client_id,
        }
    )
    # the simulated fleet shares one connection for all devices, as the gateway does
    sim = settings.model_copy(
        update={
            **common,
            "mqtt_username": gateway_login.username,
            "mqtt_password": SecretStr(gateway_login.password),
            "gateway_mqtt_username": gateway_login.username,
            "gateway_mqtt_password": SecretStr(gateway_login.password),
            "gateway_mqtt_client_id": gateway_login.client_id,
        }
    )
    return ingest, sim


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
    """Broker, SQLite stores, ingest, detectors, API (and a simulated fleet), in one process.

    Ports: an explicit one must be free; otherwise the one used last time (remembered in
    the data directory), else the configured default, else any free one, remembered.
    """
    from ingest import IngestService

    stop = stop or _stop_event()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(
        data_dir=settings.data_dir,
        port=mqtt_port,
        kind=broker_kind,
        default_port=settings.mqtt_port,
        credentials=broker_credentials(settings.broker_dir / "credentials.json"),
    )
    await broker.start()
    assert broker.port is not None
    try:
        settings, sim_settings = _up_settings(settings, broker)
        memory = PortMemory(settings.ports_path)
        api_port = pick_port(
            settings.api_host, api_port, settings.api_port, "API", memory.get("api")
        )
        memory.remember("api", api_port)
        admin_once = first_admin(settings)
        admin_key = admin_once[0] if admin_once else None
        async with open_core(settings) as core:
            monitor = _detection(core)
            ingest = IngestService(
                settings=settings,
                store=core.store,
                registry=core.registry,
                dead_letters=core.dead_letters,
                alerts=core.alerts,
                detection=monitor,
                commands=core.commands,
                open_worker_deps=open_ingest_worker_deps,
            )

            def components() -> dict[str, str]:
                return {
                    "broker": "up" if broker.is_running else "down",
                    "ingest": "connected" if ingest.wait_connected(0) else "reconnecting",
                }

            async with (
                contextlib.AsyncExitStack() as stack,  # closed last: metrics outlive the rest
                ingest,
                renotifier(settings, core.alerts),
                delivery_dispatcher(settings, core.outbox) as dispatcher,
                BrokerLink.from_settings(settings) as broker_link,
                alert_console(core.alerts, out=out),
                asyncio.TaskGroup() as tg,
            ):
                if not await asyncio.to_thread(ingest.wait_connected, 10.0):
                    raise SealscopeError(
                        f"ingest could not connect to the embedded broker on port {broker.port}"
                    )
                metrics = ProcessMetrics()
                metrics.add(*ingest_readings(ingest), *delivery_readings(dispatcher))
                metrics_server = stack.enter_context(serving_metrics(settings, metrics))
                supervisor_stop = asyncio.Event()
                if broker.is_supervised:
                    tg.create_task(_supervise_broker(broker, supervisor_stop), name="broker")
                # one process: the API serves the live risk table, not the saved one
                server = _api_server(
                    core,
                    settings.api_host,
                    api_port,
                    risk_store=_LiveRisk(monitor) if monitor is not None else None,
                    components=components,
                    wake_dispatcher=dispatcher.wake,
                    broker=broker_link,
                )
                await _serve_until_started(server, tg)
                metrics.add(*api_readings(server.config.app))
                info = {
                    "api": f"http://{settings.api_host}:{api_port}",
                    "mqtt": f"mqtt://{broker.host}:{broker.port}",
                    "broker": broker.chosen,
                    "data_dir": str(settings.data_dir.resolve()),
                }
                if metrics_server is not None:
                    info["metrics"] = metrics_server.url
                if admin_once is not None:
                    # printed to the terminal once, never logged; the store keeps digests
                    access = (
                        f"  admin API key     {admin_once[0]}\n"
                        f"  web page sign-in  admin / {admin_once[1]}\n"
                        f"                    (both shown this once: save them now)\n"
                    )
                else:
                    access = (
                        "  admin API key     made at the first start and shown then; "
                        "a new one: sealscope accounts create-key --admin\n"
                    )
                print(
                    f"sealscope is up\n"
                    f"  API and web page  {info['api']}/   (OpenAPI: {info['api']}/docs)\n"
                    f"  MQTT broker       {info['mqtt']}   ({broker.chosen}; try: "
                    f"mosquitto_sub -h {broker.host} -p {broker.port} -t 'sealscope/#' -v)\n"
                    f"  data              {info['data_dir']}\n"
                    f"{access}"
                    f"For the README's examples, in your shell:\n"
                    f"  export SEALSCOPE_MQTT_PORT={broker.port} SEALSCOPE_API_PORT={api_port}"
                    + (f" SEALSCOPE_KEY={admin_key}" if admin_key else "")
                    + "\n"
                    "Press Ctrl-C to stop.",
                    file=out,
                    flush=True,
                )
                sim_stop = asyncio.Event()
                sim_task = None
                if simulate:
                    sim_task = tg.create_task(
                        run_sim(
                            sim_settings,
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
                supervisor_stop.set()
            # leaving `async with ingest` drained it: everything acknowledged is stored
    finally:
        await broker.stop()
    print("sealscope: stopped cleanly", file=out, flush=True)
