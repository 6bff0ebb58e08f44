"""The gateway as one service: key store, dead letters, forwarder, downlink queue, CoAP
server and (optionally) the platforms' HTTP push app, started and stopped in order.

Start-up: forwarder first (whatever a previous run left on disk starts flowing), then the
command subscription, then the ingresses. Shutdown is the reverse, so no ingress can
answer a device after the forwarder stopped taking its uplinks; the forwarder then drains
what it can to the broker within ``drain_timeout_s`` and keeps the rest on disk.

Files under ``data_dir``: ``gateway/spool/`` (the disk queue), ``gateway/pepper`` (the key
hashing secret, 0600). Tables in the state database: ``gateway_device_keys``,
``gateway_dedup``, ``gateway_commands`` (and the shared ``dead_letters``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from gateway.coap import CoapServer, UplinkResource
from gateway.downlink import CommandSubscriber, DownlinkQueue
from gateway.forwarder import Forwarder
from gateway.http_push import RedactingAccessLogger
from gateway.keys import SqliteDeviceKeys, load_pepper
from gateway.throttle import FailureThrottle
from sealscope.deadletters import SqliteDeadLetterStore

if TYPE_CHECKING:
    from sealscope.config import Settings

__all__ = ["Gateway", "HttpAppFactory", "run_gateway"]

log = logging.getLogger(__name__)

# Builds the HTTP push ASGI app from the running gateway (its ``forwarder`` is the
# ``UplinkSink``; ``keys``, ``dead_letters`` and ``downlinks`` are there too).
HttpAppFactory = Callable[["Gateway"], Any]

DEFAULT_CLIENT_ID = "sealscope-gateway"


class Gateway:
    def __init__(
        self,
        *,
        data_dir: Path,
        state_db: Path,
        mqtt_host: str,
        mqtt_port: int,
        mqtt_username: str | None = None,
        mqtt_password: str | None = None,
        mqtt_protocol: Literal["5", "3.1.1"] = "5",
        client_id: str = DEFAULT_CLIENT_ID,
        coap_host: str = "0.0.0.0",
        coap_port: int = 5683,
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
        http_app_factory: HttpAppFactory | None = None,
        spool_max_bytes: int = 1 << 30,
        dedup_window_s: float = 24 * 3600.0,
        expiry_interval_s: float = 1.0,
        drain_timeout_s: float = 5.0,
        max_commands_per_response: int = 8,
        auth_failures: FailureThrottle | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if http_port is not None and http_app_factory is None:
            raise ValueError("an HTTP port needs an http_app_factory")
        if expiry_interval_s <= 0:
            raise ValueError("expiry_interval_s must be > 0")
        self.data_dir = Path(data_dir)
        self.state_db = Path(state_db)
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.mqtt_protocol = mqtt_protocol
        self.client_id = client_id
        self.coap_host = coap_host
        self.coap_port = coap_port
        self.http_host = http_host
        self.http_port = http_port
        self._mqtt_username = mqtt_username
        self._mqtt_password = mqtt_password
        self._http_app_factory = http_app_factory
        self._spool_max_bytes = spool_max_bytes
        self._dedup_window_s = dedup_window_s
        self._expiry_interval_s = expiry_interval_s
        self._drain_timeout_s = drain_timeout_s
        self._max_commands = max_commands_per_response
        self._auth_failures = auth_failures
        self._clock = clock
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # built on entry
        self.keys: SqliteDeviceKeys
        self.dead_letters: SqliteDeadLetterStore
        self.forwarder: Forwarder
        self.downlinks: DownlinkQueue
        self.subscriber: CommandSubscriber
        self.resource: UplinkResource
        self.http_server: Any = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Gateway:
        """A gateway on the shared settings; the gateway's own knobs come as keywords."""
        secret = settings.gateway_mqtt_password
        password = secret.get_secret_value() if secret is not None else None
        # an anonymous broker needs no user; a secured one gets the gateway's own, which
        # the ACL lets publish for every device
        username = settings.gateway_mqtt_username if password is not None else None
        kwargs: dict[str, Any] = {
            "data_dir": settings.data_dir,
            "state_db": settings.state_db,
            "mqtt_host": settings.mqtt_host,
            "mqtt_port": settings.mqtt_port,
            "mqtt_username": username,
            "mqtt_password": password,
            "mqtt_protocol": settings.mqtt_protocol,
            "client_id": settings.gateway_mqtt_client_id,
            "coap_host": settings.coap_host,
            "coap_port": settings.coap_port,
            "spool_max_bytes": settings.spool_max_bytes,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "gateway" / "spool"

    @property
    def pepper_path(self) -> Path:
        return self.data_dir / "gateway" / "pepper"

    async def __aenter__(self) -> Gateway:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._start(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys = SqliteDeviceKeys(self.state_db, pepper=load_pepper(self.pepper_path))
        stack.callback(self.keys.close)
        self.dead_letters = SqliteDeadLetterStore(self.state_db)
        stack.callback(self.dead_letters.close)
        self.forwarder = await stack.enter_async_context(
            Forwarder(
                directory=self.spool_dir,
                state_db=self.state_db,
                host=self.mqtt_host,
                port=self.mqtt_port,
                username=self._mqtt_username,
                password=self._mqtt_password,
                protocol=self.mqtt_protocol,
                client_id=self.client_id,
                max_bytes=self._spool_max_bytes,
                dedup_window_s=self._dedup_window_s,
                drain_timeout_s=self._drain_timeout_s,
                dead_letters=self.dead_letters,
                clock=self._clock,
            )
        )
        self.downlinks = DownlinkQueue(
            state_db=self.state_db,
            publish=self.forwarder.publish,
            clock=self._clock,
            max_per_response=self._max_commands,
        )
        stack.callback(self.downlinks.close)
        self.subscriber = await stack.enter_async_context(
            CommandSubscriber(
                queue=self.downlinks,
                host=self.mqtt_host,
                port=self.mqtt_port,
                client_id=f"{self.client_id}-cmd",
                username=self._mqtt_username,
                password=self._mqtt_password,
                protocol=self.mqtt_protocol,
                dead_letters=self.dead_letters,
            )
        )
        expiry = asyncio.create_task(
            self.downlinks.run_expiry(interval_s=self._expiry_interval_s),
            name="gateway-downlink-expiry",
        )
        stack.push_async_callback(_cancel, expiry)
        self.resource = UplinkResource(
            keys=self.keys,
            sink=self.forwarder,
            downlinks=self.downlinks,
            dead_letters=self.dead_letters,
            clock=self._clock,
            auth_failures=self._auth_failures,
        )
        # the summaries of failed key checks come out even once a flood stops
        flush = asyncio.create_task(
            self.resource.auth_failures.run(), name="gateway-auth-failure-log"
        )
        stack.push_async_callback(_cancel, flush)
        await stack.enter_async_context(
            CoapServer(self.resource, host=self.coap_host, port=self.coap_port)
        )
        if self.http_port is not None and self._http_app_factory is not None:
            await self._start_http(stack)

    async def _start_http(self, stack: contextlib.AsyncExitStack) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:  # the caller owns the signals
                yield

        assert self._http_app_factory is not None and self.http_port is not None
        app = self._http_app_factory(self)
        if isinstance(app, web.Application):
            await self._start_aiohttp(stack, app)
            return
        config = uvicorn.Config(
            app, host=self.http_host, port=self.http_port, log_level="warning", lifespan="auto"
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(), name="gateway-http-push")

        async def stop_http() -> None:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)

        stack.push_async_callback(stop_http)
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the HTTP push server failed to start")
            await asyncio.sleep(0.02)
        self.http_server = server
        log.info("gateway: HTTP push on http://%s:%d", self.http_host, self.http_port)

    async def _start_aiohttp(self, stack: contextlib.AsyncExitStack, app: web.Application) -> None:
        # the push URLs carry platform secrets: only the redacting access log may see them
        runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        assert self.http_port is not None
        site = web.TCPSite(runner, self.http_host, self.http_port)
        await site.start()
        self.http_server = site
        log.info("gateway: HTTP push on http://%s:%d", self.http_host, self.http_port)

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def run_gateway(
    settings: Settings,
    *,
    coap_host: str = "0.0.0.0",
    coap_port: int = 5683,
    http_host: str = "127.0.0.1",
    http_port: int | None = None,
    http_app_factory: HttpAppFactory | None = None,
    stop: asyncio.Event,
    on_ready: Callable[[Gateway], None] | None = None,
    **options: Any,
) -> None:
    """``sealscope gateway``: serve until ``stop`` is set, then shut down in order.

    ``on_ready`` sees the started gateway (the composition hangs its metrics on it).
    ``options`` are further ``Gateway`` keywords (``dedup_window_s``, ``client_id``,
    ``mqtt_username``, ...)."""
    async with Gateway.from_settings(
        settings,
        coap_host=coap_host,
        coap_port=coap_port,
        http_host=http_host,
        http_port=http_port,
        http_app_factory=http_app_factory,
        **options,
    ) as gateway:
        log.info(
            "gateway: CoAP on %s:%d/udp -> MQTT %s:%d",
            coap_host,
            coap_port,
            gateway.mqtt_host,
            gateway.mqtt_port,
        )
        if on_ready is not None:
            on_ready(gateway)
        await stop.wait()
    log.info("gateway: stopped")
