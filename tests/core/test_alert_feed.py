"""The alert change feed (``changes_since``, ``last_change_id``) on SQLite and PostgreSQL,
and the live stream's hub reading it, including an event id that commits after a higher
one (PostgreSQL hands sequence values out before commit)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from composition.api.stream import StreamHub, StreamTuning
from sealscope.accounts import Scope
from sealscope.alerts import AlertChange, SqlAlertStore
from sealscope.registry import Device, SqlDeviceRegistry
from tests.waiting import wait_until


def _raise(alerts: SqlAlertStore, device_id: str, cause: str = "seat_leak") -> int:
    return alerts.raise_alert(
        device_id=device_id,
        cause=cause,
        category="failure",
        severity=4,
        summary="s",
        evidence={"n": 1},
        t=1_700_000_000.0,
    ).id


def test_feed_lists_changes_in_order_with_the_alert_as_it_is_now(db_engine: sa.Engine) -> None:
    alerts = SqlAlertStore(db_engine)
    assert alerts.last_change_id() == 0
    assert alerts.changes_since(0) == []
    a = _raise(alerts, "ACME-V-1")
    alerts.acknowledge(a, actor="tech", comment="seen")
    b = _raise(alerts, "ACME-V-2")
    alerts.resolve(a, actor="tech")
    feed = alerts.changes_since(0)
    assert [(c.alert.id, c.action) for c in feed] == [
        (a, "raised"),
        (a, "acknowledged"),
        (b, "raised"),
        (a, "resolved"),
    ]
    ids = [c.event.id for c in feed]
    assert ids == sorted(ids) and alerts.last_change_id() == ids[-1]
    assert feed[0].alert.status == "resolved"  # the alert now, not at the change
    assert feed[0].alert == alerts.get(a)
    assert [c.event.id for c in alerts.changes_since(ids[1])] == ids[2:]
    assert [c.event.id for c in alerts.changes_since(ids[1], limit=1)] == ids[2:3]
    # ids named again (the stream's gap check) come back even below after_id
    again = alerts.changes_since(ids[-1], ids=[ids[0], ids[2]])
    assert [c.event.id for c in again] == [ids[0], ids[2]]


@pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)
def test_hub_delivers_a_change_that_commits_after_a_later_one(db_engine: sa.Engine) -> None:
    alerts = SqlAlertStore(db_engine)
    registry = SqlDeviceRegistry(db_engine)
    for n in (1, 2):
        registry.add(Device(f"ACME-V-{n}", "valve", "ACME", "BV-50"))
    held, release = threading.Event(), threading.Event()

    def hold_first(_conn: Any, change: AlertChange) -> None:
        if change.alert.device_id == "ACME-V-1":
            held.set()
            release.wait(30)  # inside the transaction: its event id is taken, not committed

    alerts.on_change(hold_first)

    async def scenario() -> list[tuple[int, str]]:
        tuning = StreamTuning(poll_s=0.02, gap_wait_s=60.0)
        hub = StreamHub(alerts=alerts, registry=registry, risk_table=lambda: None, tuning=tuning)
        async with hub:
            sub = hub.subscribe(Scope(kind="admin"))
            slow = asyncio.create_task(asyncio.to_thread(_raise, alerts, "ACME-V-1"))
            await asyncio.to_thread(held.wait, 30)
            await asyncio.to_thread(_raise, alerts, "ACME-V-2")  # a higher id, committed
            await wait_until(lambda: sub.queue.qsize() >= 1, 10, "the later change")
            release.set()
            await slow
            await wait_until(lambda: sub.queue.qsize() >= 2, 10, "the earlier id, late")
            got = [sub.queue.get_nowait() for _ in range(2)]
        return [(event_id or 0, frame.decode()) for event_id, frame in got]

    got = asyncio.run(scenario())
    assert got[0][0] > got[1][0]  # delivered out of id order: the late commit was not lost
    assert '"device_id":"ACME-V-2"' in got[0][1] and '"device_id":"ACME-V-1"' in got[1][1]
