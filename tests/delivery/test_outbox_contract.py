"""The outbox contract, run against the in-memory, SQLite and PostgreSQL adapters."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from sealscope.alerts import SqlAlertStore
from sealscope.db import delivery as delivery_tables
from sealscope.delivery import Attempt, SqlOutbox, Subscription
from sealscope.errors import Conflict, NotFound
from tests.delivery.changes import change, webhook_sub

URL = "http://127.0.0.1:9/hook"


def _attempt(delivery: Any, outcome: str, **kw: Any) -> Attempt:
    return Attempt(
        delivery_id=delivery.id,
        subscription_id=delivery.subscription_id,
        started_at=1.0,
        duration_s=0.01,
        outcome=outcome,  # type: ignore[arg-type]
        **kw,
    )


def _enqueue(outbox: Any, alert_change: Any) -> list[str]:
    with outbox.transaction() as txn:
        return outbox.enqueue(txn, alert_change)


def test_outbox_enqueue_fans_out_to_matching_subscriptions_in_scope(make_outbox) -> None:
    outbox = make_outbox(in_scope=lambda org, device: org != "org-other")
    outbox.add_subscription(webhook_sub("all", URL))
    outbox.add_subscription(webhook_sub("leaks", URL, causes=("seat_leak",)))
    outbox.add_subscription(webhook_sub("wear", URL, causes=("actuation_wear",)))
    outbox.add_subscription(webhook_sub("severe", URL, min_severity=4))
    outbox.add_subscription(webhook_sub("failures", URL, categories=("failure",)))
    outbox.add_subscription(webhook_sub("risk", URL, kinds=("fleet_risk",)))
    outbox.add_subscription(webhook_sub("elsewhere", URL, org_id="org-other"))
    outbox.add_subscription(
        Subscription(id="mqtt", org_id="org-mp", channel="mqtt", target="org-mp")
    )

    ids = _enqueue(outbox, change(severity=3, category="maintenance_required"))

    got = {outbox.get(i).subscription_id for i in ids}
    assert got == {"all", "leaks", "mqtt"}
    delivery = outbox.get(ids[0])
    body = json.loads(delivery.body)
    assert body["delivery_id"] == delivery.id
    assert body["data"]["cause"] == "seat_leak"
    assert delivery.status == "pending" and delivery.attempts == 0


def test_outbox_fleet_risk_goes_only_where_risk_scope_allows(make_outbox) -> None:
    outbox = make_outbox(risk_in_scope=lambda org, dim, group: group == "LOT-7")
    outbox.add_subscription(webhook_sub("risk", URL, kinds=("fleet_risk",)))
    risk = dict(kind="fleet_risk", device_id=None, dimension="batch", type="fleet_risk.flagged")

    assert _enqueue(outbox, change(**risk, group="LOT-8")) == []
    assert len(_enqueue(outbox, change(**risk, group="LOT-7"))) == 1


def test_outbox_failed_transaction_leaves_no_delivery(make_outbox) -> None:
    outbox = make_outbox()
    outbox.add_subscription(webhook_sub("all", URL))
    alerts = sa.Table("alert_writes", sa.MetaData(), sa.Column("id", sa.Integer))
    engine = getattr(outbox, "_engine", None)
    if engine is not None:
        alerts.create(engine)

    with pytest.raises(RuntimeError, match="after the enqueue"), outbox.transaction() as txn:
        if engine is not None:  # the alert change itself, in the same transaction
            txn.execute(sa.insert(alerts).values(id=1))
        assert len(outbox.enqueue(txn, change())) == 1
        raise RuntimeError("the alert write failed after the enqueue")

    assert outbox.deliveries() == []
    assert outbox.claim("d1", limit=10, lease_s=30) == []
    if engine is not None:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 0


def test_outbox_claim_leases_a_row_to_one_owner_until_it_expires(make_outbox, clock) -> None:
    outbox = make_outbox()
    outbox.add_subscription(webhook_sub("all", URL))
    [delivery_id] = _enqueue(outbox, change())

    assert [d.id for d in outbox.claim("d1", limit=10, lease_s=30)] == [delivery_id]
    assert outbox.claim("d2", limit=10, lease_s=30) == []
    clock.now += 29
    assert outbox.claim("d2", limit=10, lease_s=30) == []
    clock.now += 2  # d1 crashed: its lease ran out
    [again] = outbox.claim("d2", limit=10, lease_s=30)
    assert again.id == delivery_id


def test_outbox_record_is_fenced_by_the_lease_owner(make_outbox, clock) -> None:
    outbox = make_outbox()
    outbox.add_subscription(webhook_sub("all", URL))
    _enqueue(outbox, change())
    [first] = outbox.claim("d1", limit=1, lease_s=10)
    clock.now += 11
    [second] = outbox.claim("d2", limit=1, lease_s=10)

    stale = outbox.record(first, "d1", _attempt(first, "delivered"), next_attempt_at=clock.now)
    assert stale is False
    assert outbox.get(first.id).status == "pending"
    assert outbox.record(second, "d2", _attempt(second, "delivered"), next_attempt_at=clock.now)
    assert outbox.get(first.id).status == "delivered"
    assert len(outbox.log("all")) == 2  # both attempts happened, both are logged


def test_outbox_retry_dead_and_redeliver(make_outbox, clock) -> None:
    outbox = make_outbox()
    outbox.add_subscription(webhook_sub("all", URL))
    [delivery_id] = _enqueue(outbox, change())

    [d] = outbox.claim("d1", limit=1, lease_s=10)
    outbox.record(
        d, "d1", _attempt(d, "retry", status_code=500, error="500"), next_attempt_at=clock.now + 5
    )
    row = outbox.get(delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "500")
    assert outbox.claim("d1", limit=1, lease_s=10) == []  # not due yet
    clock.now += 5
    [d] = outbox.claim("d1", limit=1, lease_s=10)
    outbox.record(d, "d1", _attempt(d, "dead", error="timeout"), next_attempt_at=clock.now)
    assert outbox.get(delivery_id).status == "dead"
    assert outbox.claim("d1", limit=1, lease_s=10) == []

    assert outbox.redeliver(delivery_id).status == "pending"
    [d] = outbox.claim("d1", limit=1, lease_s=10)
    assert d.id == delivery_id and d.attempts == 0
    outbox.record(d, "d1", _attempt(d, "delivered", status_code=204), next_attempt_at=clock.now)
    assert outbox.get(delivery_id).status == "delivered"
    log = outbox.log("all")
    assert [a.outcome for a in log] == ["delivered", "dead", "retry"]  # newest first
    assert log[-1].status_code == 500
    assert outbox.deliveries(subscription_id="all", status="delivered")[0].id == delivery_id
    with pytest.raises(NotFound):
        outbox.redeliver("msg_missing")


def test_outbox_subscriptions_conflict_missing_and_deactivated(make_outbox) -> None:
    outbox = make_outbox()
    sub = outbox.add_subscription(webhook_sub("s1", URL, causes=("seat_leak",)))
    with pytest.raises(Conflict):
        outbox.add_subscription(sub)
    with pytest.raises(NotFound):
        outbox.subscription("nope")
    assert outbox.subscription("s1") == sub
    assert outbox.subscriptions(org_id="org-mp") == [sub]
    assert outbox.subscriptions(org_id="org-x") == []
    _enqueue(outbox, change())

    assert outbox.deactivate("s1").active is False
    assert outbox.claim("d1", limit=10, lease_s=10) == []  # queued rows stop too
    assert _enqueue(outbox, change()) == []


def test_outbox_concurrent_claimers_never_share_a_row(sql_engine, clock) -> None:
    outbox = SqlOutbox(sql_engine, in_scope=lambda org, device: True, clock=clock)
    outbox.add_subscription(webhook_sub("all", URL))
    with outbox.transaction() as txn:
        for _ in range(200):
            outbox.enqueue(txn, change())
    claimed: Counter[str] = Counter()
    sizes: list[int] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while batch := outbox.claim(owner, limit=7, lease_s=600):
            with lock:
                sizes.append(len(batch))
                claimed.update(d.id for d in batch)

    threads = [threading.Thread(target=claimer, args=(f"d{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == 200
    assert set(claimed.values()) == {1}
    assert max(sizes) <= 7


def test_outbox_tables_come_from_the_0003_delivery_revision(sql_engine) -> None:
    names = set(sa.inspect(sql_engine).get_table_names())
    tables = (delivery_tables.subscriptions, delivery_tables.deliveries, delivery_tables.attempts)
    assert {t.name for t in tables} <= names


def test_outbox_record_many_applies_only_rows_whose_lease_is_held(make_outbox, clock) -> None:
    outbox = make_outbox()
    outbox.add_subscription(webhook_sub("all", URL))
    kept, lost = (_enqueue(outbox, change())[0] for _ in range(2))
    claimed = {d.id: d for d in outbox.claim("d1", limit=2, lease_s=10)}
    clock.now += 11
    [taken] = outbox.claim("d2", limit=1, lease_s=10)  # the older one, by due time
    assert taken.id == kept
    kept, lost = lost, kept  # d1 still holds only the one d2 did not take

    results = [
        (claimed[kept], _attempt(claimed[kept], "delivered"), clock.now),
        (claimed[lost], _attempt(claimed[lost], "retry", error="x"), clock.now + 5),
    ]
    assert outbox.record_many("d1", results) == 1
    assert outbox.get(kept).status == "delivered"
    assert outbox.get(lost).attempts == 0  # d2's lease stands
    assert len(outbox.log("all")) == 2


def test_outbox_commits_and_rolls_back_with_the_alert_store_change(sql_engine) -> None:
    outbox = SqlOutbox(sql_engine, in_scope=lambda org, device: True)
    outbox.add_subscription(webhook_sub("all", URL))
    store = SqlAlertStore(sql_engine)
    store.on_change(outbox.enqueue)  # the alert store's write path, in its transaction

    alert = store.raise_alert(
        device_id="ACME-V-0001",
        cause="seat_leak",
        category="maintenance_required",
        severity=3,
        summary="seat leak 2.4x",
        evidence={"ratio": 2.4},
        t=1_700_000_000.0,
    )
    [raised] = outbox.deliveries()
    body = json.loads(raised.body)
    assert body["type"] == "alert.raised" and body["data"]["alert_id"] == alert.id
    assert "actor" not in json.dumps(body)

    def later_listener_fails(conn: object, change: object) -> None:
        raise RuntimeError("a later write of the change failed")

    store.on_change(later_listener_fails)
    with pytest.raises(RuntimeError, match="later write"):
        store.acknowledge(alert.id, actor="tech-1", comment="on my way")

    assert store.get(alert.id).status == "open"  # the change rolled back...
    assert [d.id for d in outbox.deliveries()] == [raised.id]  # ...and its outbox row too
