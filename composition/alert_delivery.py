"""The alert services `up` and `ingest` run beside ingest: the dispatcher that sends the
outbox's deliveries, and the sweep that re-notifies alerts nobody acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from sealscope.alerts import AlertStore, renotify_due
from sealscope.config import Settings
from sealscope.delivery import (
    Channel,
    Dispatcher,
    EmailChannel,
    MqttChannel,
    Outbox,
    WebhookChannel,
)
from sealscope.errors import SealscopeError

__all__ = ["RENOTIFY_SWEEP_MAX_S", "delivery_dispatcher", "renotifier"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def delivery_dispatcher(settings: Settings, outbox: Outbox) -> AsyncIterator[Dispatcher]:
    """Send the outbox's deliveries while the block runs: webhooks, MQTT on the service's
    broker (with its login, which may publish alerts), and e-mail when ``smtp_host`` is set
    (without it, e-mail deliveries are retried and end ``dead``)."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    channels: list[Channel] = [
        WebhookChannel(timeout_s=10.0),
        MqttChannel(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username if password is not None else None,
            password=password,
            timeout_s=5.0,
        ),
    ]
    if settings.smtp_host:
        smtp_password = settings.smtp_password
        channels.append(
            EmailChannel(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_sender,
                username=settings.smtp_username if smtp_password is not None else None,
                password=smtp_password.get_secret_value() if smtp_password else None,
                starttls=settings.smtp_starttls,
            )
        )
    async with Dispatcher(outbox=outbox, channels=channels) as dispatcher:
        log.info("delivery: dispatcher %s running", dispatcher.name)
        yield dispatcher


# how often the sweep looks, at most: a reminder is late by no more than this
RENOTIFY_SWEEP_MAX_S = 60.0


async def _renotify_sweeps(alerts: AlertStore, every_s: float) -> None:
    while True:
        try:
            count = await asyncio.to_thread(renotify_due, alerts, time.time())
            if count:
                log.info("alerts: re-notified %d unacknowledged alert(s)", count)
        except SealscopeError as exc:  # the store is away; the next sweep catches up
            log.warning("alerts: re-notify sweep failed: %s", exc)
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def renotifier(settings: Settings, alerts: AlertStore) -> AsyncIterator[None]:
    """Re-notify open alerts nobody acknowledged while the block runs (off at 0)."""
    period_s = settings.renotify_after_s
    if not period_s:
        yield
        return
    task = asyncio.create_task(
        _renotify_sweeps(alerts, min(RENOTIFY_SWEEP_MAX_S, period_s / 4)), name="renotify"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
