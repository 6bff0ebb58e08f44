"""Subscriptions to alert changes, their delivery log, and redelivery on request.

A subscription belongs to the caller's organisation: another organisation's answers 404
exactly as a missing one, and so does a deleted one. Every organisation kind may subscribe;
what reaches it is decided at enqueue time by its scope (``composition/delivery_scope.py``),
never by the filters it picks. MQTT subscriptions publish on the organisation's own topic
``sealscope/v1/alerts/org-{org_id}``.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict

from composition.api.auth import PrincipalDep
from composition.api.delivery_models import (
    AttemptPublic,
    DeliveryLogEntry,
    DeliveryLogPublic,
    DeliveryPublic,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionsPublic,
)
from composition.api.models import ErrorBody
from composition.api.params import Limit
from sealscope.accounts import Principal
from sealscope.delivery import Outbox, Subscription, new_secret
from sealscope.delivery.outbox import DeliveryStatus
from sealscope.errors import NotFound

__all__ = ["mqtt_scope_of", "router"]

router = APIRouter(tags=["subscriptions"])

_ID = {"min_length": 1, "max_length": 64}
SubscriptionId = Annotated[str, Path(description="the subscription's id", **_ID)]
DeliveryId = Annotated[str, Path(description="the delivery's id (its webhook-id)", **_ID)]
_missing: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


class Redeliver(BaseModel):
    """No fields: the body is optional, and anything in it is refused."""

    model_config = ConfigDict(extra="forbid")


def get_outbox(request: Request) -> Outbox:
    return request.app.state.outbox


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


def mqtt_scope_of(org_id: int) -> str:
    """The organisation's alert topic level: ``sealscope/v1/alerts/org-{org_id}``."""
    return f"org-{org_id}"


def _own(outbox: Outbox, principal: Principal, subscription_id: str) -> Subscription:
    principal.require("alerts:read")
    try:
        sub = outbox.subscription(subscription_id)
    except NotFound:
        sub = None
    if sub is None or not sub.active or sub.org_id != str(principal.org_id):
        raise NotFound("subscription", subscription_id)
    return sub


@router.post(
    "/subscriptions",
    response_model=SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
)
def create_subscription(
    body: SubscriptionCreate, principal: PrincipalDep, outbox: OutboxDep, response: Response
) -> SubscriptionCreated:
    principal.require("alerts:read")  # whoever may read alerts may have them sent
    target = {"webhook": body.url, "email": body.email}.get(body.channel)
    sub = outbox.add_subscription(
        Subscription(
            id=f"sub_{secrets.token_hex(12)}",
            org_id=str(principal.org_id),
            channel=body.channel,
            target=target or mqtt_scope_of(principal.org_id),
            secret=new_secret() if body.channel == "webhook" else None,
            causes=tuple(body.causes),
            categories=tuple(body.categories),
            min_severity=body.min_severity,
            kinds=tuple(body.kinds),
        )
    )
    response.headers["Cache-Control"] = "no-store"  # the secret is in the body
    return SubscriptionCreated(secret=sub.secret, **SubscriptionPublic.of(sub).model_dump())


@router.get("/subscriptions", response_model=SubscriptionsPublic)
def list_subscriptions(principal: PrincipalDep, outbox: OutboxDep) -> SubscriptionsPublic:
    principal.require("alerts:read")
    own = outbox.subscriptions(org_id=str(principal.org_id))
    return SubscriptionsPublic(data=[SubscriptionPublic.of(s) for s in own if s.active])


@router.get(
    "/subscriptions/{subscription_id}", response_model=SubscriptionPublic, responses=_missing
)
def get_subscription(
    subscription_id: SubscriptionId, principal: PrincipalDep, outbox: OutboxDep
) -> SubscriptionPublic:
    return SubscriptionPublic.of(_own(outbox, principal, subscription_id))


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_missing,
)
def delete_subscription(
    subscription_id: SubscriptionId, principal: PrincipalDep, outbox: OutboxDep
) -> Response:
    # deactivated, not erased: nothing more is sent, and the log stays for the record
    outbox.deactivate(_own(outbox, principal, subscription_id).id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# attempts shown per page of deliveries: enough for a full retry budget each
_ATTEMPTS_PER_DELIVERY = 20


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=DeliveryLogPublic,
    responses=_missing,
)
def list_deliveries(
    subscription_id: SubscriptionId,
    principal: PrincipalDep,
    outbox: OutboxDep,
    state: Annotated[DeliveryStatus | None, Query(description="pending, delivered or dead")] = None,
    limit: Limit = 100,
) -> DeliveryLogPublic:
    sub = _own(outbox, principal, subscription_id)
    found = outbox.deliveries(subscription_id=sub.id, status=state, limit=limit)
    attempts: dict[str, list[AttemptPublic]] = {d.id: [] for d in found}
    # the newest attempts of the subscription; an old delivery may show only its last ones
    for attempt in outbox.log(sub.id, limit=min(1000, limit * _ATTEMPTS_PER_DELIVERY)):
        if attempt.delivery_id in attempts:
            attempts[attempt.delivery_id].append(AttemptPublic.of(attempt))
    entries = [
        DeliveryLogEntry(log=attempts[d.id], **DeliveryPublic.of(d).model_dump()) for d in found
    ]
    return DeliveryLogPublic(data=entries, limit=limit)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryPublic,
    responses=_missing,
)
def redeliver(
    delivery_id: DeliveryId,
    principal: PrincipalDep,
    outbox: OutboxDep,
    request: Request,
    body: Redeliver | None = None,
) -> DeliveryPublic:
    """Send again, due now, with a fresh retry budget and the same delivery id."""
    principal.require("alerts:read")
    delivery = outbox.get(delivery_id)
    try:
        _own(outbox, principal, delivery.subscription_id)
    except NotFound:
        raise NotFound("delivery", delivery_id) from None
    again = outbox.redeliver(delivery.id)
    wake = getattr(request.app.state, "wake_dispatcher", None)
    if wake is not None:  # a dispatcher in this process: send now, not at its next poll
        wake()
    return DeliveryPublic.of(again)
