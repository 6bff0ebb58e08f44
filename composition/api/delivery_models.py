"""Request and response bodies for subscriptions and their delivery log.

A webhook URL is http(s), names a host, carries no credentials (``user:pass@``: they would
sit in the delivery log and every operator's screen) and no fragment, within length bounds.
The signing secret is in the answer to the creation only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sealscope.alerts import Category
from sealscope.delivery import Attempt, Delivery, Subscription
from sealscope.delivery.outbox import DeliveryStatus, Outcome
from sealscope.delivery.subscription import ChannelKind

__all__ = [
    "AttemptPublic",
    "DeliveryLogEntry",
    "DeliveryLogPublic",
    "DeliveryPublic",
    "SubscriptionCreate",
    "SubscriptionCreated",
    "SubscriptionPublic",
    "SubscriptionsPublic",
]

MIN_URL_CHARS = 11  # "http://a.b/"
MAX_URL_CHARS = 2000
_CAUSE = r"^[a-z][a-z0-9_]{0,63}$"


def _webhook_url(url: str) -> str:
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("the URL holds whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"the URL does not parse: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must be http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("the URL must not carry credentials (user:password@)")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.fragment or url.endswith("#"):
        raise ValueError("the URL must not carry a fragment")
    if port == 0:
        raise ValueError("the URL's port must be 1..65535")
    return url


WebhookUrl = Annotated[
    str,
    Field(
        min_length=MIN_URL_CHARS, max_length=MAX_URL_CHARS, examples=["https://ops.example/hook"]
    ),
    AfterValidator(_webhook_url),
]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,189}$",
        examples=["oncall@operator.example"],
    ),
]


class SubscriptionCreate(BaseModel):
    """``url`` for a webhook, ``email`` for email; MQTT needs neither (the topic is the
    organisation's). Empty filter lists mean any."""

    model_config = ConfigDict(extra="forbid")

    channel: ChannelKind
    url: WebhookUrl | None = None
    email: Email | None = None
    causes: list[Annotated[str, Field(pattern=_CAUSE)]] = Field([], max_length=32)
    categories: list[Category] = Field([], max_length=4)
    min_severity: int = Field(1, ge=1, le=5, strict=True)
    kinds: list[Literal["device", "fleet_risk"]] = Field([], max_length=2)

    @model_validator(mode="after")
    def _target_fits_channel(self) -> Self:
        wanted = {"webhook": "url", "email": "email", "mqtt": None}[self.channel]
        for name in ("url", "email"):
            given = getattr(self, name) is not None
            if given and name != wanted:
                raise ValueError(f"a {self.channel} subscription takes no {name}")
            if not given and name == wanted:
                raise ValueError(f"a {self.channel} subscription needs {name}")
        return self


def _utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class SubscriptionPublic(BaseModel):
    id: str
    org_id: int
    channel: ChannelKind
    target: str = Field(description="webhook URL, MQTT topic or email address")
    causes: list[str]
    categories: list[str]
    min_severity: int
    kinds: list[str]

    @classmethod
    def of(cls, sub: Subscription) -> SubscriptionPublic:
        return cls(
            id=sub.id,
            org_id=int(sub.org_id),
            channel=sub.channel,
            target=sub.topic if sub.channel == "mqtt" else sub.target,
            causes=list(sub.causes),
            categories=list(sub.categories),
            min_severity=sub.min_severity,
            kinds=list(sub.kinds),
        )


class SubscriptionCreated(SubscriptionPublic):
    secret: str | None = Field(
        description="webhooks: the signing secret (whsec_...), shown this once: store it now"
    )


class SubscriptionsPublic(BaseModel):
    data: list[SubscriptionPublic]


class AttemptPublic(BaseModel):
    started_at: datetime
    duration_s: float
    outcome: Outcome
    status_code: int | None = Field(description="HTTP status, SMTP reply or MQTT reason code")
    error: str | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptPublic:
        return cls(
            started_at=_utc(attempt.started_at),
            duration_s=attempt.duration_s,
            outcome=attempt.outcome,
            status_code=attempt.status_code,
            error=attempt.error,
        )


class DeliveryPublic(BaseModel):
    id: str = Field(description="the webhook-id of every attempt; de-duplicate on it")
    subscription_id: str
    status: DeliveryStatus
    attempts: int = Field(description="attempts within the current retry budget")
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryPublic:
        return cls(
            id=delivery.id,
            subscription_id=delivery.subscription_id,
            status=delivery.status,
            attempts=delivery.attempts,
            created_at=_utc(delivery.created_at),
            next_attempt_at=_utc(delivery.next_attempt_at),
            delivered_at=_utc(delivery.delivered_at),
            last_error=delivery.last_error,
        )


class DeliveryLogEntry(DeliveryPublic):
    log: list[AttemptPublic] = Field(description="its attempts, newest first")


class DeliveryLogPublic(BaseModel):
    data: list[DeliveryLogEntry] = Field(description="newest first")
    limit: int
