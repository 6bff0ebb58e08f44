"""The dispatcher against a real aiohttp receiver on a loopback port: down, 500, slow,
stalled, recovering; retry budget, dead, redelivery; two dispatchers on one outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from composition.bench.webhook_receiver import Received, WebhookReceiver
from sealscope.db import open_engine, open_migrated, sqlite_url
from sealscope.delivery import (
    Dispatcher,
    RetryPolicy,
    SqlOutbox,
    WebhookChannel,
)
from tests.delivery.changes import change, webhook_sub
from tests.waiting import wait_until

TIMEOUT_S = 1.0  # the webhook channel's bound; "slow" means past it
WAIT_S = 20.0
FAST_RETRY = RetryPolicy(max_attempts=10, base_s=0.05, cap_s=0.2)


@pytest.fixture
def outbox_factory(tmp_path: Path) -> Callable[[], SqlOutbox]:
    """Outboxes on one SQLite file: each call is another process's view of it."""
    engines = []

    def make() -> SqlOutbox:
        engine = open_migrated(sqlite_url(tmp_path / "outbox.db"))
        engines.append(engine)
        return SqlOutbox(engine, in_scope=lambda org, device: True)

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_outboxes(request: pytest.FixtureRequest, tmp_path: Path):
    """Two outboxes on one database, each with its own engine (as two processes have)."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "shared.db")
    else:
        url = request.getfixturevalue("postgres_databases").create()
    engines = [open_migrated(url), open_engine(url)]
    yield [SqlOutbox(e, in_scope=lambda org, device: True) for e in engines]
    for engine in engines:
        engine.dispose()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A receiver whose port is reserved but closed until the test starts it."""
    made = WebhookReceiver(secret=None)
    yield made
    await made.stop()


def _dispatcher(outbox: SqlOutbox, *, timeout_s: float = TIMEOUT_S, **kw: Any) -> Dispatcher:
    kw.setdefault("retry", FAST_RETRY)
    return Dispatcher(
        outbox=outbox,
        channels=[WebhookChannel(timeout_s=timeout_s)],
        lease_s=timeout_s * 4,
        poll_interval_s=0.05,
        **kw,
    )


def _enqueue(outbox: SqlOutbox, n: int = 1) -> list[str]:
    with outbox.transaction() as txn:
        return [i for _ in range(n) for i in outbox.enqueue(txn, change())]


def _secret_receiver(receiver: WebhookReceiver, secret: str) -> WebhookReceiver:
    receiver._secret = secret
    return receiver


async def test_dispatcher_delivers_a_signed_webhook(outbox_factory, receiver) -> None:
    outbox = outbox_factory()
    sub = outbox.add_subscription(webhook_sub("s1", receiver.url))
    _secret_receiver(receiver, sub.secret)
    await receiver.start()
    [delivery_id] = _enqueue(outbox)

    async with _dispatcher(outbox):
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)

    [got] = receiver.received
    assert got.verified and got.webhook_id == delivery_id
    assert got.body == outbox.get(delivery_id).body
    [attempt] = outbox.log("s1")
    assert (attempt.outcome, attempt.status_code, attempt.error) == ("delivered", 204, None)
    assert attempt.duration_s > 0


async def test_dispatcher_retries_while_the_receiver_is_down_then_delivers(
    outbox_factory, receiver
) -> None:
    outbox = outbox_factory()
    outbox.add_subscription(webhook_sub("s1", receiver.url))
    [delivery_id] = _enqueue(outbox)

    async with _dispatcher(outbox):
        await wait_until(lambda: len(outbox.log("s1")) >= 2, timeout_s=WAIT_S, what="2 tries")
        down = outbox.log("s1")
        await receiver.start()
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)

    assert all(a.outcome == "retry" and a.status_code is None for a in down)
    assert all("Connect" in (a.error or "") for a in down)
    assert receiver.ids() == [delivery_id]


async def test_dispatcher_retries_500_slow_and_stalled_answers_with_one_delivery_id(
    outbox_factory, receiver
) -> None:
    outbox = outbox_factory()
    outbox.add_subscription(webhook_sub("s1", receiver.url))
    stalled = asyncio.Event()
    answers = iter(["500", "slow", "stall", "ok"])

    async def respond(_: Received) -> int:
        match next(answers):
            case "500":
                return 500
            case "slow":  # answers, but after the sender gave up
                await asyncio.sleep(TIMEOUT_S * 2)
                return 204
            case "stall":  # never answers while the test runs
                await stalled.wait()
                return 204
        return 204

    receiver.respond = respond
    await receiver.start()
    [delivery_id] = _enqueue(outbox)

    async with _dispatcher(outbox):
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)
    stalled.set()

    log = outbox.log("s1")[::-1]
    assert [(a.outcome, a.status_code) for a in log] == [
        ("retry", 500),
        ("retry", None),
        ("retry", None),
        ("delivered", 204),
    ]
    assert "within" in (log[1].error or "") and "within" in (log[2].error or "")
    assert receiver.ids() == [delivery_id] * 4  # receivers de-duplicate on this


async def test_dispatcher_marks_dead_after_the_budget_and_redelivers_on_request(
    outbox_factory, receiver
) -> None:
    outbox = outbox_factory()
    outbox.add_subscription(webhook_sub("s1", receiver.url))
    status = 503

    async def respond(_: Received) -> int:
        return status

    receiver.respond = respond
    await receiver.start()
    [delivery_id] = _enqueue(outbox)

    retry = RetryPolicy(max_attempts=3, base_s=0.05, cap_s=0.1)
    async with _dispatcher(outbox, retry=retry) as dispatcher:
        await wait_until(lambda: outbox.get(delivery_id).status == "dead", timeout_s=WAIT_S)
        assert [a.outcome for a in outbox.log("s1")] == ["dead", "retry", "retry"]
        status = 200
        outbox.redeliver(delivery_id)
        dispatcher.wake()
        await wait_until(lambda: outbox.get(delivery_id).status == "delivered", timeout_s=WAIT_S)

    assert receiver.ids() == [delivery_id] * 4


async def test_dispatcher_two_dispatchers_never_send_one_delivery_at_once(
    shared_outboxes, receiver
) -> None:
    first, second = shared_outboxes
    first.add_subscription(webhook_sub("s1", receiver.url))

    async def respond(_: Received) -> int:
        await asyncio.sleep(0.02)  # overlap the two dispatchers' sends
        return 204

    receiver.respond = respond
    await receiver.start()
    ids = _enqueue(first, 150)

    # a generous timeout: on a loaded machine no send should time out and be sent again
    async with (
        _dispatcher(first, batch=10, timeout_s=10) as a,
        _dispatcher(second, batch=10, timeout_s=10) as b,
    ):
        await wait_until(
            lambda: len(first.deliveries(status="delivered", limit=1000)) == 150,
            timeout_s=WAIT_S,
            what="150 delivered",
        )

    assert {a.outcome for a in first.log("s1", limit=1000)} == {"delivered"}
    assert sorted(receiver.ids()) == sorted(ids)  # each once: no lease was ever lost
    assert receiver.max_in_flight_per_id == 1
    assert a.sent + b.sent == 150
