"""The downlink queue's state machine, with statuses captured instead of published."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.downlink import CommandSubscriber, DownlinkQueue, decode_command_request
from gateway.forwarder import OutboundMessage
from gateway.translate import CommandReport
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.errors import Conflict, MalformedMessage

DEV = "ACME-V-000001"


class Clock:
    def __init__(self) -> None:
        self.now = 1_718_000_000.0

    def __call__(self) -> float:
        return self.now


class Statuses:
    def __init__(self) -> None:
        self.published: list[OutboundMessage] = []

    async def __call__(self, messages: Sequence[OutboundMessage]) -> None:
        self.published += messages

    def states(self) -> list[tuple[str, str]]:
        return [
            (json.loads(m.payload)["id"], json.loads(m.payload)["state"]) for m in self.published
        ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def statuses() -> Statuses:
    return Statuses()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock, statuses: Statuses) -> DownlinkQueue:
    q = DownlinkQueue(state_db=tmp_path / "state.db", publish=statuses, clock=clock)
    yield q
    q.close()


async def test_downlink_command_life_pending_sent_delivered_succeeded(
    queue: DownlinkQueue, statuses: Statuses
) -> None:
    cmd = await queue.enqueue(DEV, "set_interval", {"uplink_interval_s": 3600}, command_id="c-1")
    assert cmd.state == "pending"
    assert await queue.on_uplink("OTHER-V-1") == []
    (sent,) = await queue.on_uplink(DEV)
    assert sent.for_device() == {
        "id": "c-1",
        "name": "set_interval",
        "params": {"uplink_interval_s": 3600},
        "exp": cmd.expires_at,
    }
    # not acknowledged: sent again with the next response
    (again,) = await queue.on_uplink(DEV)
    assert again.attempts == 2
    assert await queue.on_uplink(DEV, [CommandReport("c-1", "delivered")]) == []
    await queue.on_uplink(DEV, [CommandReport("c-1", "succeeded")])
    assert queue.get("c-1").state == "succeeded"
    assert statuses.states() == [
        ("c-1", "pending"),
        ("c-1", "sent"),
        ("c-1", "sent"),
        ("c-1", "delivered"),
        ("c-1", "succeeded"),
    ]
    assert {m.topic for m in statuses.published} == {f"sealscope/v1/dev/{DEV}/cmd/status"}
    # reports after the end change nothing
    await queue.on_uplink(DEV, [CommandReport("c-1", "failed", "late")])
    assert queue.get("c-1").state == "succeeded"
    assert len(statuses.published) == 5


async def test_downlink_failure_carries_the_device_detail(
    queue: DownlinkQueue, statuses: Statuses
) -> None:
    await queue.enqueue(DEV, "self_test", command_id="c-2")
    await queue.on_uplink(DEV)
    await queue.on_uplink(DEV, [CommandReport("c-2", "failed", "valve stuck")])
    last = json.loads(statuses.published[-1].payload)
    assert last["state"] == "failed" and last["detail"] == "valve stuck"


async def test_downlink_expiry(queue: DownlinkQueue, clock: Clock, statuses: Statuses) -> None:
    await queue.enqueue(DEV, "self_test", command_id="c-3", ttl_s=60)
    await queue.enqueue(DEV, "self_test", command_id="c-4", ttl_s=600)
    clock.now += 61
    assert [c.id for c in await queue.on_uplink(DEV)] == ["c-4"]  # never offers an expired one
    assert [c.id for c in await queue.expire_due()] == ["c-3"]
    assert await queue.expire_due() == []
    assert queue.get("c-3").state == "expired"
    assert ("c-3", "expired") in statuses.states()


async def test_downlink_same_id_is_the_same_command(
    queue: DownlinkQueue, statuses: Statuses
) -> None:
    first = await queue.enqueue(DEV, "self_test", command_id="c-5")
    again = await queue.enqueue(DEV, "self_test", command_id="c-5")
    assert again == first
    assert len(statuses.published) == 1
    with pytest.raises(Conflict):
        await queue.enqueue("OTHER-V-1", "self_test", command_id="c-5")


async def test_downlink_caps_commands_per_response(queue: DownlinkQueue) -> None:
    for i in range(10):
        await queue.enqueue(DEV, "noop", command_id=f"c-{i:02d}")
    sent = await queue.on_uplink(DEV)
    assert [c.id for c in sent] == [f"c-{i:02d}" for i in range(8)]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"v": 2, "name": "x"}',
        b'{"v": 1, "name": "Bad Name"}',
        b'{"v": 1, "name": "x", "params": {"a": [1]}}',
        b'{"v": 1, "name": "x", "id": "has space"}',
        b'{"v": 1, "name": "x", "ttl_s": -5}',
        b'{"v": 1, "name": "x", "extra": 1}',
    ],
)
def test_downlink_refuses_bad_command_requests(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_command_request(payload)


async def test_downlink_subscriber_dead_letters_bad_commands(
    queue: DownlinkQueue, tmp_path: Path
) -> None:
    dead = SqliteDeadLetterStore(tmp_path / "state.db")
    sub = CommandSubscriber(
        queue=queue, host="127.0.0.1", port=1, client_id="unused", dead_letters=dead
    )
    await sub.handle(f"sealscope/v1/dev/{DEV}/cmd", b'{"v": 1}')
    await sub.handle(f"sealscope/v1/dev/{DEV}/cmd", b'{"v": 1, "name": "self_test", "id": "c-9"}')
    (letter,) = dead.list()
    assert letter.device_id == DEV and letter.code == "malformed"
    assert queue.get("c-9").state == "pending"
    dead.close()
