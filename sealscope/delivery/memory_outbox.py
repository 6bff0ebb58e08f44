"""``Outbox`` in memory, for unit tests and a single process; lost when the process ends.

Its transactions are real enough to show the contract: deliveries enqueued in a
transaction become visible only when the ``with`` block exits without an exception.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sealscope.alerts import AlertChange
from sealscope.delivery.notification import Notification, as_notification
from sealscope.delivery.outbox import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Result,
    iter_matches,
)
from sealscope.delivery.subscription import InScope, RiskInScope, Subscription, deny_all_risk
from sealscope.errors import Conflict, NotFound

__all__ = ["MemoryOutbox", "MemoryTransaction", "new_delivery_id"]


def new_delivery_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


@dataclass
class MemoryTransaction:
    pending: list[Delivery] = field(default_factory=list)


@dataclass
class _Lease:
    owner: str
    until: float


class MemoryOutbox:
    def __init__(
        self,
        *,
        in_scope: InScope,
        risk_in_scope: RiskInScope = deny_all_risk,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._in_scope = in_scope
        self._risk_in_scope = risk_in_scope
        self._clock = clock
        self._lock = threading.RLock()
        self._subs: dict[str, Subscription] = {}
        self._rows: dict[str, Delivery] = {}
        self._leases: dict[str, _Lease] = {}
        self._log: list[Attempt] = []

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        txn = MemoryTransaction()
        yield txn
        with self._lock:
            for row in txn.pending:
                self._rows[row.id] = row

    def enqueue(
        self, txn: MemoryTransaction | None, change: Notification | AlertChange
    ) -> list[str]:
        """``txn`` None (the in-memory alert store has no transaction): commit at once."""
        if txn is None:
            with self.transaction() as own:
                return self.enqueue(own, change)
        change = as_notification(change)
        now = self._clock()
        with self._lock:
            subs = list(self._subs.values())
        ids = []
        for sub in iter_matches(
            subs, change, in_scope=self._in_scope, risk_in_scope=self._risk_in_scope
        ):
            delivery_id = new_delivery_id()
            txn.pending.append(
                Delivery(
                    id=delivery_id,
                    subscription_id=sub.id,
                    channel=sub.channel,
                    target=sub.target,
                    secret=sub.secret,
                    body=change.body(delivery_id),
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            ids.append(delivery_id)
        return ids

    def claim(self, owner: str, *, limit: int, lease_s: float) -> list[Delivery]:
        now = self._clock()
        with self._lock:
            due = [
                row
                for row in self._rows.values()
                if row.status == "pending"
                and row.next_attempt_at <= now
                and self._subs[row.subscription_id].active
                and (row.id not in self._leases or self._leases[row.id].until < now)
            ]
            due.sort(key=lambda row: (row.next_attempt_at, row.created_at))
            for row in due[:limit]:
                self._leases[row.id] = _Lease(owner, now + lease_s)
            return due[:limit]

    def record(
        self, delivery: Delivery, owner: str, attempt: Attempt, *, next_attempt_at: float
    ) -> bool:
        with self._lock:
            self._log.append(attempt)
            lease = self._leases.get(delivery.id)
            if lease is None or lease.owner != owner:
                return False
            del self._leases[delivery.id]
            row = self._rows[delivery.id]
            status: DeliveryStatus = "pending" if attempt.outcome == "retry" else attempt.outcome
            self._rows[delivery.id] = dataclasses.replace(
                row,
                status=status,
                attempts=row.attempts + 1,
                next_attempt_at=next_attempt_at,
                delivered_at=attempt.started_at + attempt.duration_s
                if status == "delivered"
                else row.delivered_at,
                last_error=attempt.error,
            )
            return True

    def record_many(self, owner: str, results: Sequence[Result]) -> int:
        with self._lock:
            return sum(
                self.record(delivery, owner, attempt, next_attempt_at=next_at)
                for delivery, attempt, next_at in results
            )

    def redeliver(self, delivery_id: str) -> Delivery:
        with self._lock:
            row = self.get(delivery_id)
            # a lease, if any, stays: its holder's record still lands, never a second send
            row = dataclasses.replace(
                row, status="pending", attempts=0, next_attempt_at=self._clock()
            )
            self._rows[delivery_id] = row
            return row

    def get(self, delivery_id: str) -> Delivery:
        with self._lock:
            try:
                return self._rows[delivery_id]
            except KeyError:
                raise NotFound("delivery", delivery_id) from None

    def deliveries(
        self,
        *,
        subscription_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        with self._lock:
            rows = [
                row
                for row in self._rows.values()
                if (subscription_id is None or row.subscription_id == subscription_id)
                and (status is None or row.status == status)
            ]
        rows.sort(key=lambda row: row.created_at, reverse=True)
        return rows[:limit]

    def log(self, subscription_id: str, *, limit: int = 100) -> list[Attempt]:
        with self._lock:
            rows = [a for a in self._log if a.subscription_id == subscription_id]
        return rows[::-1][:limit]

    def add_subscription(self, subscription: Subscription) -> Subscription:
        with self._lock:
            if subscription.id in self._subs:
                raise Conflict("subscription", subscription.id)
            self._subs[subscription.id] = subscription
        return subscription

    def subscription(self, subscription_id: str) -> Subscription:
        with self._lock:
            try:
                return self._subs[subscription_id]
            except KeyError:
                raise NotFound("subscription", subscription_id) from None

    def subscriptions(self, *, org_id: str | None = None) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subs.values() if org_id is None or s.org_id == org_id]

    def deactivate(self, subscription_id: str) -> Subscription:
        with self._lock:
            sub = dataclasses.replace(self.subscription(subscription_id), active=False)
            self._subs[subscription_id] = sub
            return sub
