"""Alert changes and subscriptions for the delivery tests."""

from __future__ import annotations

import itertools
from typing import Any

from sealscope.delivery import Notification, Subscription, new_secret

_ids = itertools.count(1)


def change(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "type": "alert.raised",
        "kind": "device",
        "alert_id": next(_ids),
        "cause": "seat_leak",
        "category": "maintenance_required",
        "severity": 3,
        "summary": "seat leak 2.4x its commissioning baseline",
        "device_id": "ACME-V-0001",
        "evidence": {"ratio": 2.4},
        "changed_at": 1_700_000_000.0,
    }
    fields.update(overrides)
    return Notification(**fields)


def webhook_sub(sub_id: str, url: str, **overrides: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": sub_id,
        "org_id": "org-mp",
        "channel": "webhook",
        "target": url,
        "secret": new_secret(),
    }
    fields.update(overrides)
    return Subscription(**fields)
