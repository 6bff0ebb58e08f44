"""The outbox port: deliveries written with the alert change, claimed, sent, recorded.

``enqueue(txn, change)`` runs inside the caller's transaction (the one that writes the alert
change) and adds one delivery per matching subscription, so either both are durable or
neither is. A delivery's id is fixed then and is the ``webhook-id`` of every attempt.

Dispatchers ``claim`` due deliveries with a lease: a claimed row is invisible to other
claimers until its lease ends, so two dispatchers never send one row at once, and a
crashed dispatcher's rows come back when its lease expires. ``record`` is fenced by the
lease owner: a dispatcher whose lease was taken over cannot overwrite the new owner's state
(its attempt is still logged).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from sealscope.alerts import AlertChange
from sealscope.delivery.notification import Notification
from sealscope.delivery.subscription import ChannelKind, Subscription

__all__ = [
    "STATUSES",
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "Outbox",
    "Outcome",
    "Result",
]

DeliveryStatus = Literal["pending", "delivered", "dead"]
STATUSES: Final[tuple[DeliveryStatus, ...]] = ("pending", "delivered", "dead")
Outcome = Literal["delivered", "retry", "dead"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert change for one subscription, with what it takes to send it."""

    id: str  # the webhook-id: the same for every attempt
    subscription_id: str
    channel: ChannelKind
    target: str
    secret: str | None = field(repr=False)
    body: bytes = field(repr=False)
    status: DeliveryStatus
    attempts: int  # attempts within the current retry budget
    next_attempt_at: float
    created_at: float
    delivered_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One send, as the delivery log keeps it."""

    delivery_id: str
    subscription_id: str
    started_at: float  # Unix s
    duration_s: float
    outcome: Outcome
    status_code: int | None = None  # HTTP status; SMTP reply code; MQTT reason code
    error: str | None = None
    dispatcher: str = ""


# what one send produced: the delivery, its attempt, when to try next if it is retried
Result = tuple[Delivery, Attempt, float]


class Outbox(Protocol):
    def transaction(self) -> AbstractContextManager[Any]:
        """A transaction to pass to ``enqueue`` (SQL adapters: ``engine.begin()``)."""
        ...

    def enqueue(self, txn: Any, change: Notification | AlertChange) -> list[str]:
        """Add a delivery per matching subscription inside ``txn``; returns their ids.

        Fits ``AlertStore.on_change`` as it is: ``alerts.on_change(outbox.enqueue)``."""
        ...

    def claim(self, owner: str, *, limit: int, lease_s: float) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries to ``owner``, oldest due first."""
        ...

    def record(
        self, delivery: Delivery, owner: str, attempt: Attempt, *, next_attempt_at: float
    ) -> bool:
        """Log ``attempt`` and, if ``owner`` still holds the lease, apply its outcome and
        release the lease. Returns whether the state was applied."""
        ...

    def record_many(self, owner: str, results: Sequence[Result]) -> int:
        """``record`` for several attempts in one transaction; returns how many applied."""
        ...

    def redeliver(self, delivery_id: str) -> Delivery:
        """Make a delivered or dead delivery pending again, due now, with a fresh budget.
        Raises NotFound."""
        ...

    def get(self, delivery_id: str) -> Delivery:
        """Raises NotFound."""
        ...

    def deliveries(
        self,
        *,
        subscription_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
    ) -> list[Delivery]: ...

    def log(self, subscription_id: str, *, limit: int = 100) -> list[Attempt]:
        """The subscription's delivery log, newest first."""
        ...

    def add_subscription(self, subscription: Subscription) -> Subscription:
        """Raises Conflict if the id exists."""
        ...

    def subscription(self, subscription_id: str) -> Subscription:
        """Raises NotFound."""
        ...

    def subscriptions(self, *, org_id: str | None = None) -> list[Subscription]: ...

    def deactivate(self, subscription_id: str) -> Subscription:
        """Stop matching and sending; the log stays. Raises NotFound."""
        ...


def iter_matches(
    subscriptions: Iterator[Subscription] | list[Subscription],
    change: Notification,
    *,
    in_scope: Any,
    risk_in_scope: Any,
) -> Iterator[Subscription]:
    """The subscriptions ``change`` goes to; shared by every adapter."""
    for sub in subscriptions:
        if sub.matches(change, in_scope=in_scope, risk_in_scope=risk_in_scope):
            yield sub
