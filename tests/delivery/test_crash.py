"""The sender killed with SIGKILL between send and record, then restarted: every alert
change is delivered again with the same delivery id, and none is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict
from pathlib import Path

from composition.bench.webhook_receiver import Received, WebhookReceiver
from sealscope.db import open_migrated, sqlite_url
from sealscope.delivery import (
    Dispatcher,
    RetryPolicy,
    SqlOutbox,
    WebhookChannel,
)
from tests.delivery.changes import change, webhook_sub
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHANGES = 20
LEASE_S = 2.0  # the restarted dispatcher's
WAIT_S = 30.0

# The dispatcher as its own process, as `sealscope up` would run it; it runs until killed.
_SENDER = """
import asyncio, sys
from sealscope.db import open_engine, sqlite_url
from sealscope.delivery import Dispatcher, SqlOutbox, WebhookChannel

async def main():
    outbox = SqlOutbox(open_engine(sqlite_url(sys.argv[1])), in_scope=lambda org, device: True)
    # the held requests must not time out before the kill, even on a loaded machine
    channel = WebhookChannel(timeout_s=3.0)
    async with Dispatcher(outbox=outbox, channels=[channel], lease_s=6.0, poll_interval_s=0.05):
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_dispatcher_killed_between_send_and_record_redelivers_with_the_same_id(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "outbox.db"
    engine = open_migrated(sqlite_url(db_path))
    outbox = SqlOutbox(engine, in_scope=lambda org, device: True)
    receiver = WebhookReceiver(secret=None)
    sub = outbox.add_subscription(webhook_sub("s1", receiver.url))
    receiver._secret = sub.secret
    release = asyncio.Event()

    async def hold_until_the_sender_is_dead(_: Received) -> int:
        await release.wait()
        return 204

    receiver.respond = hold_until_the_sender_is_dead
    await receiver.start()
    with outbox.transaction() as txn:
        ids = [i for _ in range(CHANGES) for i in outbox.enqueue(txn, change())]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sender = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SENDER, str(db_path), env=env
    )
    try:
        await wait_until(
            lambda: len(receiver.received) == CHANGES, timeout_s=WAIT_S, what="all sent"
        )
        sender.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(sender.wait(), 10) == -signal.SIGKILL
    finally:
        if sender.returncode is None:
            sender.kill()
            await sender.wait()
    release.set()
    # sent but never recorded: the outbox still owes every delivery
    assert {outbox.get(i).status for i in ids} == {"pending"}
    assert outbox.log("s1") == []

    receiver.respond = _accept
    retry = RetryPolicy(max_attempts=5, base_s=0.05, cap_s=0.2)
    channel = WebhookChannel(timeout_s=1.0)
    async with Dispatcher(outbox=outbox, channels=[channel], lease_s=LEASE_S, retry=retry):
        await wait_until(
            lambda: len(outbox.deliveries(status="delivered", limit=1000)) == CHANGES,
            timeout_s=WAIT_S,
            what="every change delivered after the restart",
        )
    await receiver.stop()
    engine.dispose()

    bodies: dict[str, set[bytes]] = defaultdict(set)
    for got in receiver.received:
        assert got.verified
        bodies[got.webhook_id].add(got.body)
    assert set(bodies) == set(ids)  # every change arrived, nothing else did
    assert all(len(b) == 1 for b in bodies.values())  # a duplicate is the same message
    counts = [receiver.ids().count(i) for i in ids]
    assert counts == [2] * CHANGES  # once before the kill, once after the restart
    assert len(outbox.log("s1", limit=1000)) == CHANGES


async def _accept(_: Received) -> int:
    return 204
