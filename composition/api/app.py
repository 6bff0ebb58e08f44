"""The FastAPI application factory and its lifespan.

No authentication yet (API keys and scopes come later): keep ``api_host`` on loopback, and
``api_allowed_hosts`` to the names clients use (a foreign Host header answers 400).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from composition.api.body import DEFAULT_MAX_BODY_BYTES, BodyGuard
from composition.api.handlers import install_handlers
from composition.api.hosts import TrustedHosts
from composition.api.routes import api_router, root_router
from sealscope.alerts import AlertStore, SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore, SqliteDeadLetterStore
from sealscope.registry import DeviceRegistry, SqliteDeviceRegistry
from sealscope.risk import JsonFileRiskStore, RiskStore
from sealscope.storage import TelemetryStore

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    telemetry_store: TelemetryStore | None = None,
    registry: DeviceRegistry | None = None,
    alerts: AlertStore | None = None,
    dead_letters: DeadLetterStore | None = None,
    risk_store: RiskStore | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """Build the API. Stores passed in belong to the caller and are left open at shutdown;
    the ones the lifespan opens from ``settings`` it also closes. A request body over
    ``max_body_bytes`` answers 413 before any route reads it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            reg, alr, dls = registry, alerts, dead_letters
            if reg is None:
                reg = SqliteDeviceRegistry(settings.state_db)
                stack.callback(reg.close)
            if alr is None:
                alr = SqliteAlertStore(settings.state_db)
                stack.callback(alr.close)
            if dls is None:
                dls = SqliteDeadLetterStore(settings.state_db)
                stack.callback(dls.close)
            store = telemetry_store
            if store is None:
                # imported here so an app with an injected store never loads store drivers
                from sealscope.storage.factory import open_telemetry_store

                store = await open_telemetry_store(settings)
                stack.push_async_callback(store.close)
            app.state.registry = reg
            app.state.alerts = alr
            app.state.dead_letters = dls
            app.state.telemetry_store = store
            log.info("API ready (state %s, telemetry store %s)", settings.state_db, settings.store)
            yield

    app = FastAPI(
        title="sealscope",
        summary="Telemetry and seal health of NB-IoT smart pumps and valves",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # a separate API process serves the table the detection process last saved
    app.state.risk_store = risk_store or JsonFileRiskStore(settings.risk_table_path)
    install_handlers(app)
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes)
    # added last, so it runs first: a foreign Host is refused before anything reads the body
    app.add_middleware(TrustedHosts, allowed_hosts=settings.api_allowed_hosts)
    app.include_router(api_router)
    app.include_router(root_router)
    return app
