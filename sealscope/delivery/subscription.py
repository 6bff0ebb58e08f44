"""Subscriptions: an organisation asks for the alert changes in its scope on one channel.

Filters are all optional and combine with AND: causes, NAMUR NE 107 categories, a minimum
severity and kinds (``device`` alerts, ``fleet_risk``). Scope is not a filter the
subscriber chooses: it is asked of the injected ``in_scope`` callables at enqueue time, so a
subscription never receives a change outside its organisation's scope.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from sealscope.delivery.notification import CATEGORIES, KINDS, Notification
from sealscope.topics import alerts_topic

__all__ = [
    "ChannelKind",
    "InScope",
    "RiskInScope",
    "Subscription",
    "check_target",
    "deny_all_risk",
]

ChannelKind = Literal["webhook", "mqtt", "email"]
CHANNEL_KINDS: Final[tuple[ChannelKind, ...]] = ("webhook", "mqtt", "email")

InScope = Callable[[str, str], bool]  # (org_id, device_id) -> may the org see the device
RiskInScope = Callable[[str, str, str], bool]  # (org_id, dimension, group)

_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}")


def deny_all_risk(org_id: str, dimension: str, group: str) -> bool:
    """Default for fleet risk until the accounts Scope answers it: nobody is sent it."""
    return False


def check_target(channel: ChannelKind, target: str) -> str:
    """Validate a channel target: an http(s) URL, an alert topic scope, an email address."""
    if channel == "webhook":
        if not re.fullmatch(r"https?://[^\s]{1,2000}", target):
            raise ValueError(f"webhook target {target!r} is not an http(s) URL")
    elif channel == "mqtt":
        # one topic level, no wildcards: sealscope/v1/alerts/{scope}
        if not _SCOPE.fullmatch(target):
            raise ValueError(f"mqtt scope {target!r} is not one topic level of [A-Za-z0-9._-]")
        alerts_topic(target)
    elif channel == "email":
        if not _EMAIL.fullmatch(target):
            raise ValueError(f"email target {target!r} is not an address")
    else:
        raise ValueError(f"channel {channel!r} is not one of {CHANNEL_KINDS}")
    return target


@dataclass(frozen=True, slots=True)
class Subscription:
    """``target``: webhook URL, MQTT scope (topic ``sealscope/v1/alerts/{scope}``) or email
    address. ``secret``: the webhook signing secret (``whsec_...``), None for the others.
    Empty filter tuples mean "any"."""

    id: str
    org_id: str
    channel: ChannelKind
    target: str
    secret: str | None = field(default=None, repr=False)
    causes: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    min_severity: int = 1
    kinds: tuple[str, ...] = ()
    active: bool = True

    def __post_init__(self) -> None:
        check_target(self.channel, self.target)
        if (self.channel == "webhook") != (self.secret is not None):
            raise ValueError("a webhook subscription has a secret; other channels have none")
        if not 1 <= self.min_severity <= 5:
            raise ValueError(f"min_severity {self.min_severity} is outside 1..5")
        if bad := set(self.categories) - set(CATEGORIES):
            raise ValueError(f"categories {sorted(bad)} are not NAMUR NE 107")
        if bad := set(self.kinds) - set(KINDS):
            raise ValueError(f"kinds {sorted(bad)} are not one of {KINDS}")

    @property
    def topic(self) -> str:
        return alerts_topic(self.target)

    def wants(self, change: Notification) -> bool:
        """The subscriber's own filters (scope is checked separately)."""
        return (
            self.active
            and (not self.causes or change.cause in self.causes)
            and (not self.categories or change.category in self.categories)
            and change.severity >= self.min_severity
            and (not self.kinds or change.kind in self.kinds)
        )

    def matches(
        self, change: Notification, *, in_scope: InScope, risk_in_scope: RiskInScope
    ) -> bool:
        if not self.wants(change):
            return False
        if change.kind == "device":
            assert change.device_id is not None  # Notification guarantees it
            return in_scope(self.org_id, change.device_id)
        assert change.dimension is not None and change.group is not None
        return risk_in_scope(self.org_id, change.dimension, change.group)
