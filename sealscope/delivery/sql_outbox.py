"""``Outbox`` on SQL through SQLAlchemy Core: SQLite (embedded) and PostgreSQL.

``enqueue(conn, change)`` takes the caller's ``Connection`` inside its ``engine.begin()``
block, so the alert change and its deliveries commit or roll back together.

Claiming is one ``WITH due AS MATERIALIZED (...) UPDATE ... WHERE id IN due RETURNING``.
On PostgreSQL the due select locks with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers
take disjoint rows without waiting; the outer WHERE repeats the lease test so a row
re-checked after a lock wait is skipped once another claimer holds it. SQLite has one
writer at a time, so the statement is atomic there as it stands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealscope.alerts import AlertChange
from sealscope.db import read, write
from sealscope.db.delivery import attempts, deliveries, subscriptions
from sealscope.delivery.memory_outbox import new_delivery_id
from sealscope.delivery.notification import Notification, as_notification
from sealscope.delivery.outbox import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Result,
    iter_matches,
)
from sealscope.delivery.subscription import InScope, RiskInScope, Subscription, deny_all_risk
from sealscope.errors import NotFound

__all__ = ["SqlOutbox"]

_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.subscription_id,
    subscriptions.c.channel,
    subscriptions.c.target,
    subscriptions.c.secret,
    deliveries.c.body,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.next_attempt_at,
    deliveries.c.created_at,
    deliveries.c.delivered_at,
    deliveries.c.last_error,
)

_RECORD = (
    sa.update(deliveries)
    .where(
        deliveries.c.id == sa.bindparam("b_id"),
        deliveries.c.lease_owner == sa.bindparam("b_owner"),
    )
    .values(
        status=sa.bindparam("b_status"),
        attempts=deliveries.c.attempts + 1,
        next_attempt_at=sa.bindparam("b_next"),
        last_error=sa.bindparam("b_error"),
        delivered_at=sa.func.coalesce(
            sa.bindparam("b_delivered", type_=sa.Double), deliveries.c.delivered_at
        ),
        lease_owner=None,
        lease_until=None,
    )
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        subscription_id=row.subscription_id,
        channel=row.channel,
        target=row.target,
        secret=row.secret,
        body=row.body.encode(),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
    )


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        org_id=row.org_id,
        channel=row.channel,
        target=row.target,
        secret=row.secret,
        causes=tuple(row.causes),
        categories=tuple(row.categories),
        min_severity=row.min_severity,
        kinds=tuple(row.kinds),
        active=bool(row.active),
    )


def _attempt(row: Any) -> Attempt:
    return Attempt(
        delivery_id=row.delivery_id,
        subscription_id=row.subscription_id,
        started_at=row.started_at,
        duration_s=row.duration_s,
        outcome=row.outcome,
        status_code=row.status_code,
        error=row.error,
        dispatcher=row.dispatcher,
    )


class SqlOutbox:
    """``engine`` must be migrated (``sealscope.db.migrate``, revision ``0003_delivery``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        in_scope: InScope,
        risk_in_scope: RiskInScope = deny_all_risk,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._in_scope = in_scope
        self._risk_in_scope = risk_in_scope
        self._clock = clock
        self._skip_locked = engine.dialect.name == "postgresql"

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction on the state database (``sealscope.db.write``)."""
        return write(self._engine)

    def enqueue(self, txn: Connection | None, change: Notification | AlertChange) -> list[str]:
        """``txn``: the alert change's transaction. None (an alert store with no database)
        opens one of its own, which then commits apart from the change."""
        if txn is None:
            with write(self._engine) as own:
                return self.enqueue(own, change)
        change = as_notification(change)
        now = self._clock()
        rows = txn.execute(
            sa.select(subscriptions).where(
                subscriptions.c.active, subscriptions.c.min_severity <= change.severity
            )
        ).all()
        values = []
        for sub in iter_matches(
            [_subscription(r) for r in rows],
            change,
            in_scope=self._in_scope,
            risk_in_scope=self._risk_in_scope,
        ):
            delivery_id = new_delivery_id()
            values.append(
                {
                    "id": delivery_id,
                    "subscription_id": sub.id,
                    "body": change.body(delivery_id).decode(),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        if values:
            txn.execute(sa.insert(deliveries), values)
        return [str(v["id"]) for v in values]

    def claim(self, owner: str, *, limit: int, lease_s: float) -> list[Delivery]:
        now = self._clock()
        free = sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
        due = (
            sa.select(deliveries.c.id)
            .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= now,
                free,
                subscriptions.c.active,
            )
            .order_by(deliveries.c.next_attempt_at, deliveries.c.created_at)
            .limit(limit)
        )
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True, of=deliveries)
        # MATERIALIZED: evaluated once. A plain IN (subquery with LIMIT and SKIP LOCKED) may
        # be re-run by PostgreSQL's plan and lease more rows than ``limit``.
        due_ids = sa.select(due.cte("due").prefix_with("MATERIALIZED").c.id)
        with write(self._engine) as conn:
            claimed = (
                conn.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.id.in_(due_ids), deliveries.c.status == "pending", free)
                    .values(lease_owner=owner, lease_until=now + lease_s)
                    .returning(deliveries.c.id)
                )
                .scalars()
                .all()
            )
            if not claimed:
                return []
            rows = conn.execute(self._select().where(deliveries.c.id.in_(claimed))).all()
        ordered = sorted(rows, key=lambda r: (r.next_attempt_at, r.created_at))
        return [_delivery(r) for r in ordered]

    def record(
        self, delivery: Delivery, owner: str, attempt: Attempt, *, next_attempt_at: float
    ) -> bool:
        return self.record_many(owner, [(delivery, attempt, next_attempt_at)]) == 1

    def record_many(self, owner: str, results: Sequence[Result]) -> int:
        if not results:
            return 0
        logged = []
        updates = []
        for delivery, attempt, next_at in results:
            status: DeliveryStatus = "pending" if attempt.outcome == "retry" else attempt.outcome
            logged.append(
                {
                    "delivery_id": attempt.delivery_id,
                    "subscription_id": attempt.subscription_id,
                    "started_at": attempt.started_at,
                    "duration_s": attempt.duration_s,
                    "outcome": attempt.outcome,
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                    "dispatcher": attempt.dispatcher,
                }
            )
            updates.append(
                {
                    "b_id": delivery.id,
                    "b_owner": owner,
                    "b_status": status,
                    "b_next": next_at,
                    "b_error": attempt.error,
                    "b_delivered": attempt.started_at + attempt.duration_s
                    if status == "delivered"
                    else None,
                }
            )
        with write(self._engine) as conn:
            conn.execute(sa.insert(attempts), logged)
            # fenced per row: a lease taken over by another dispatcher is not overwritten
            result = conn.execute(_RECORD, updates)
        return result.rowcount

    def redeliver(self, delivery_id: str) -> Delivery:
        # a lease, if any, stays: its holder's record still lands, never a second send
        with write(self._engine) as conn:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status="pending", attempts=0, next_attempt_at=self._clock())
            )
        return self.get(delivery_id)

    def get(self, delivery_id: str) -> Delivery:
        with read(self._engine) as conn:
            row = conn.execute(self._select().where(deliveries.c.id == delivery_id)).first()
        if row is None:
            raise NotFound("delivery", delivery_id)
        return _delivery(row)

    def deliveries(
        self,
        *,
        subscription_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        query = self._select()
        if subscription_id is not None:
            query = query.where(deliveries.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        query = query.order_by(deliveries.c.created_at.desc()).limit(limit)
        with read(self._engine) as conn:
            return [_delivery(r) for r in conn.execute(query)]

    def log(self, subscription_id: str, *, limit: int = 100) -> list[Attempt]:
        query = (
            sa.select(attempts)
            .where(attempts.c.subscription_id == subscription_id)
            .order_by(attempts.c.id.desc())
            .limit(limit)
        )
        with read(self._engine) as conn:
            return [_attempt(r) for r in conn.execute(query)]

    def add_subscription(self, subscription: Subscription) -> Subscription:
        with write(self._engine, conflict=("subscription", subscription.id)) as conn:
            conn.execute(
                sa.insert(subscriptions).values(
                    id=subscription.id,
                    org_id=subscription.org_id,
                    channel=subscription.channel,
                    target=subscription.target,
                    secret=subscription.secret,
                    causes=list(subscription.causes),
                    categories=list(subscription.categories),
                    min_severity=subscription.min_severity,
                    kinds=list(subscription.kinds),
                    active=subscription.active,
                )
            )
        return subscription

    def subscription(self, subscription_id: str) -> Subscription:
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(subscriptions).where(subscriptions.c.id == subscription_id)
            ).first()
        if row is None:
            raise NotFound("subscription", subscription_id)
        return _subscription(row)

    def subscriptions(self, *, org_id: str | None = None) -> list[Subscription]:
        query = sa.select(subscriptions).order_by(subscriptions.c.id)
        if org_id is not None:
            query = query.where(subscriptions.c.org_id == org_id)
        with read(self._engine) as conn:
            return [_subscription(r) for r in conn.execute(query)]

    def deactivate(self, subscription_id: str) -> Subscription:
        with write(self._engine) as conn:
            conn.execute(
                sa.update(subscriptions)
                .where(subscriptions.c.id == subscription_id)
                .values(active=False)
            )
        return self.subscription(subscription_id)

    @staticmethod
    def _select() -> sa.Select[Any]:
        return sa.select(*_DELIVERY_COLUMNS).join(
            subscriptions, subscriptions.c.id == deliveries.c.subscription_id
        )
