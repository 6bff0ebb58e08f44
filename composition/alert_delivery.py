"""The alert services `up` and `ingest` run beside ingest: the dispatcher that sends the
outbox's deliveries, the sweep that re-notifies alerts nobody acknowledged, and the console
line for each alert that opens or clears."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TextIO

from sealscope.alerts import AlertChange, AlertStore, renotify_due
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

__all__ = [
    "RENOTIFY_SWEEP_MAX_S",
    "alert_console",
    "alert_line",
    "delivery_dispatcher",
    "renotifier",
]

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


_CONSOLE_ACTIONS = {"raised": "OPEN", "cleared": "CLEARED", "resolved": "RESOLVED"}
_ADVICE_CHARS = 100


def alert_line(change: AlertChange) -> str | None:
    """One console line for an alert that opened, cleared (detector) or was resolved (by
    a person); None for the other changes."""
    word = _CONSOLE_ACTIONS.get(change.action)
    if word is None:
        return None
    alert = change.alert
    at = datetime.fromtimestamp(change.event.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    advice = alert.evidence.get("advice")
    text = " ".join((advice if isinstance(advice, str) and advice else alert.summary).split())
    if len(text) > _ADVICE_CHARS:
        text = text[: _ADVICE_CHARS - 1] + "…"
    who = f" by {change.event.actor}" if change.action == "resolved" else ""
    category = alert.category.replace("_", " ")
    return (
        f"{at}  alert {word}{who}  {alert.device_id}  {alert.cause}  "
        f"severity {alert.severity} ({category})  #{alert.id}  {text}"
    )


async def _console(alerts: AlertStore, out: TextIO | None, every_s: float, after: int) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            changes = await asyncio.to_thread(alerts.changes_since, after, limit=1000)
        except SealscopeError as exc:
            log.warning("alerts: reading the change feed for the console failed: %s", exc)
            continue
        for change in changes:
            after = max(after, change.event.id)
            line = alert_line(change)
            if line is None:
                continue
            if out is not None:
                print(line, file=out, flush=True)
            else:
                log.info("%s", line)


@contextlib.asynccontextmanager
async def alert_console(
    alerts: AlertStore, *, out: TextIO | None = None, every_s: float = 1.0
) -> AsyncIterator[None]:
    """While the block runs, write a line for each alert that opens or clears, from the
    alert change feed (so changes made by any process show): to ``out`` (``up``'s
    console), or to the log when ``out`` is None."""
    after = await asyncio.to_thread(alerts.last_change_id)  # from now on
    task = asyncio.create_task(_console(alerts, out, every_s, after), name="alert-console")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
