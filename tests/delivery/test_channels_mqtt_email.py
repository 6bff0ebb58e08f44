"""The MQTT channel against a real Mosquitto, the email channel against a real aiosmtpd."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import aiomqtt
import pytest
from aiosmtpd.controller import Controller

from composition.servers import free_port
from sealscope.db import open_migrated, sqlite_url
from sealscope.delivery import (
    Dispatcher,
    EmailChannel,
    MqttChannel,
    RetryPolicy,
    SqlOutbox,
    Subscription,
)
from tests.delivery.changes import change
from tests.waiting import wait_until

WAIT_S = 20.0
FAST_RETRY = RetryPolicy(max_attempts=10, base_s=0.05, cap_s=0.2)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqlOutbox]:
    engine = open_migrated(sqlite_url(tmp_path / "outbox.db"))
    yield SqlOutbox(engine, in_scope=lambda org, device: True)
    engine.dispose()


class _Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.mark.integration
async def test_mqtt_channel_publishes_on_the_subscriber_topic_with_qos1(mosquitto, outbox) -> None:
    scope = f"org-{uuid.uuid4().hex[:8]}"
    outbox.add_subscription(Subscription(id="m1", org_id="org-mp", channel="mqtt", target=scope))
    [delivery_id] = _enqueue(outbox)
    got: list[aiomqtt.Message] = []

    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        await client.subscribe(f"sealscope/v1/alerts/{scope}", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                got.append(message)

        reader = asyncio.create_task(collect())
        channel = MqttChannel(host=mosquitto.host, port=mosquitto.port, timeout_s=2.0)
        async with Dispatcher(outbox=outbox, channels=[channel], lease_s=5, retry=FAST_RETRY):
            await wait_until(
                lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S
            )
        await wait_until(lambda: got, timeout_s=WAIT_S, what="the alert on the topic")
        reader.cancel()

    [message] = got
    assert message.qos == 1
    assert json.loads(message.payload)["delivery_id"] == delivery_id
    [attempt] = outbox.log("m1")
    assert attempt.outcome == "delivered"


@pytest.mark.integration
async def test_mqtt_channel_retries_while_the_broker_is_down(fresh_mosquitto, outbox) -> None:
    broker = fresh_mosquitto()
    broker.stop()
    outbox.add_subscription(Subscription(id="m1", org_id="org-mp", channel="mqtt", target="s1"))
    [delivery_id] = _enqueue(outbox)

    channel = MqttChannel(host=broker.host, port=broker.port, timeout_s=1.0)
    async with Dispatcher(outbox=outbox, channels=[channel], lease_s=5, retry=FAST_RETRY):
        await wait_until(lambda: len(outbox.log("m1")) >= 2, timeout_s=WAIT_S, what="2 tries")
        broker.start()
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)

    outcomes = [a.outcome for a in outbox.log("m1")]
    assert outcomes[0] == "delivered" and set(outcomes[1:]) == {"retry"}


async def test_email_channel_sends_one_message_per_delivery_with_its_id(smtp, outbox) -> None:
    controller, inbox = smtp
    outbox.add_subscription(
        Subscription(id="e1", org_id="org-mp", channel="email", target="tech@example.org")
    )
    [delivery_id] = _enqueue(outbox, summary="leak\r\nBcc: evil@example.org")

    channel = EmailChannel(
        host=controller.hostname, port=controller.port, sender="alerts@sealscope.test"
    )
    async with Dispatcher(outbox=outbox, channels=[channel], lease_s=30, retry=FAST_RETRY):
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)

    [(sender, recipients, raw)] = inbox.messages
    assert (sender, recipients) == ("alerts@sealscope.test", ["tech@example.org"])
    message = message_from_bytes(raw)
    assert message["Message-ID"] == f"<{delivery_id}@sealscope>"
    assert message["X-Sealscope-Delivery-Id"] == delivery_id
    assert message["Bcc"] is None  # the summary could not inject a header
    assert "maintenance_required" in message["Subject"]
    assert outbox.log("e1")[0].status_code == 250


async def test_email_channel_retries_while_the_smtp_server_is_down(outbox) -> None:
    port = free_port()
    outbox.add_subscription(
        Subscription(id="e1", org_id="org-mp", channel="email", target="tech@example.org")
    )
    [delivery_id] = _enqueue(outbox)
    inbox = _Inbox()
    channel = EmailChannel(host="127.0.0.1", port=port, sender="a@sealscope.test", timeout_s=1)
    async with Dispatcher(outbox=outbox, channels=[channel], lease_s=5, retry=FAST_RETRY):
        await wait_until(lambda: len(outbox.log("e1")) >= 2, timeout_s=WAIT_S, what="2 tries")
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await wait_until(
                lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S
            )
        finally:
            controller.stop()
    assert len(inbox.messages) == 1
    assert all("SMTP" in (a.error or "") for a in outbox.log("e1")[1:])


def _enqueue(outbox: SqlOutbox, **overrides: object) -> list[str]:
    with outbox.transaction() as txn:
        return outbox.enqueue(txn, change(**overrides))


async def test_runtime_dispatcher_sends_email_when_smtp_is_configured(
    smtp, outbox, tmp_path: Path
) -> None:
    # the dispatcher `up` and `ingest` run: SMTP settings alone turn the e-mail channel on
    from composition.alert_delivery import delivery_dispatcher
    from sealscope.config import Settings

    controller, inbox = smtp
    outbox.add_subscription(
        Subscription(id="e2", org_id="org-mp", channel="email", target="duty@example.org")
    )
    [delivery_id] = _enqueue(outbox)
    settings = Settings(
        data_dir=tmp_path / "data",
        smtp_host=controller.hostname,
        smtp_port=controller.port,
        smtp_sender="alerts@sealscope.test",
    )
    async with delivery_dispatcher(settings, outbox):
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)
    [(sender, recipients, _raw)] = inbox.messages
    assert (sender, recipients) == ("alerts@sealscope.test", ["duty@example.org"])
