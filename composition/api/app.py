"""The FastAPI application factory and its lifespan.

Every route but ``/healthz``, sign-in and the page shell needs an API key or a session
(``composition/api/auth.py``) and reads through the caller's scope (docs/access.md).
``api_allowed_hosts`` lists the names clients use (a foreign Host header answers 400).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import make_url

from composition.api.body import DEFAULT_MAX_BODY_BYTES, BodyGuard, BodyRule
from composition.api.broker import BrokerLink
from composition.api.docs import install_docs
from composition.api.handlers import install_handlers
from composition.api.hosts import TrustedHosts
from composition.api.routes import api_router, root_router
from composition.api.routes.provisioning import UPLOAD_PATH
from composition.api.stream import StreamHub, StreamTuning
from composition.delivery_scope import DeliveryScope
from composition.provisioning import open_provisioner
from sealscope.accounts import AccountStore, Authenticator, SqlAccountStore
from sealscope.alerts import AlertStore, SqlAlertStore
from sealscope.commands import CommandStore, SqlCommandStore
from sealscope.config import Settings
from sealscope.db import open_migrated
from sealscope.deadletters import DeadLetterStore, SqlDeadLetterStore
from sealscope.delivery import Outbox, SqlOutbox
from sealscope.provisioning import ClaimLimiter, MqttIdentities
from sealscope.registry import DeviceRegistry, SqlDeviceRegistry
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
    accounts: AccountStore | None = None,
    authenticator: Authenticator | None = None,
    outbox: Outbox | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    mqtt_identities: MqttIdentities | None = None,
    commands: CommandStore | None = None,
    broker: BrokerLink | None = None,
    stream_tuning: StreamTuning | None = None,
) -> FastAPI:
    """Build the API. Stores passed in belong to the caller and are left open at shutdown;
    the ones the lifespan opens from ``settings`` it also closes. A request body over
    ``max_body_bytes`` answers 413 before any route reads it (the fleet upload has its own
    cap, ``settings.provisioning_max_body_bytes``). ``mqtt_identities`` issues devices'
    broker logins at provisioning; without it the credentials file has no MQTT columns.
    Without an ``outbox`` the lifespan opens one on the state database, and feeds it the
    alert changes only when it opened the alert store too (a passed-in store's owner wires
    its own). ``broker`` is the service's broker, entered by the caller: device commands
    go out through it and the live stream's readings come from it; without one, commands
    answer 503 and the stream carries alerts only."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            reg, alr, dls, acc = registry, alerts, dead_letters, accounts
            if authenticator is not None:
                acc = authenticator.store
            engine = None
            cmds = commands
            if (
                reg is None
                or alr is None
                or dls is None
                or acc is None
                or outbox is None
                or cmds is None
            ):
                engine = open_migrated(settings.database_url)
                stack.callback(engine.dispose)
                if reg is None:
                    reg = SqlDeviceRegistry(engine)
                if alr is None:
                    alr = SqlAlertStore(engine)
                if dls is None:
                    dls = SqlDeadLetterStore(engine)
                if acc is None:
                    acc = SqlAccountStore(engine)
                if cmds is None:
                    cmds = SqlCommandStore(engine)
            store = telemetry_store
            if store is None:
                # imported here so an app with an injected store never loads store drivers
                from sealscope.storage.factory import open_telemetry_store

                store = await open_telemetry_store(settings)
                stack.push_async_callback(store.close)
            auth = authenticator if authenticator is not None else Authenticator(acc)
            box = outbox
            if box is None:
                assert engine is not None  # opened above whenever no outbox was passed in
                scope = DeliveryScope(auth.store, reg, app.state.risk_store.load)
                box = SqlOutbox(engine, in_scope=scope.in_scope, risk_in_scope=scope.risk_in_scope)
                if alerts is None:
                    alr.on_change(box.enqueue)
            app.state.outbox = box
            app.state.authenticator = auth
            app.state.registry = reg
            app.state.alerts = alr
            app.state.dead_letters = dls
            app.state.telemetry_store = store
            app.state.provisioner = stack.enter_context(
                open_provisioner(settings, registry=reg, engine=engine, mqtt=mqtt_identities)
            )
            app.state.claim_limiter = ClaimLimiter()
            app.state.commands = cmds
            app.state.broker = broker
            app.state.stream_hub = await stack.enter_async_context(
                StreamHub(
                    alerts=alr,
                    registry=reg,
                    risk_table=lambda: app.state.risk_store.load(),
                    broker=broker,
                    tuning=stream_tuning,
                )
            )
            log.info(
                "API ready (state %s, telemetry store %s)",
                make_url(settings.database_url).render_as_string(hide_password=True),
                settings.store,
            )
            yield

    app = FastAPI(
        title="sealscope",
        summary="Telemetry and seal health of NB-IoT smart pumps and valves",
        version="1",
        lifespan=lifespan,
        # served by composition/api/docs.py, behind sign-in
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # a separate API process serves the table the detection process last saved
    app.state.risk_store = risk_store or JsonFileRiskStore(settings.risk_table_path)
    install_handlers(app)
    upload = BodyRule(settings.provisioning_max_body_bytes, accepts_csv=True)
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, rules={UPLOAD_PATH: upload})
    # added last, so it runs first: a foreign Host is refused before anything reads the body
    app.add_middleware(TrustedHosts, allowed_hosts=settings.api_allowed_hosts)
    app.include_router(api_router)
    app.include_router(root_router)
    install_docs(app)
    return app
