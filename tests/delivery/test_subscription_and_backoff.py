"""Subscription validation and filters; the retry policy's bounds."""

from __future__ import annotations

import random

import pytest

from sealscope.delivery import RetryPolicy, Subscription
from tests.delivery.changes import change, webhook_sub


@pytest.mark.parametrize(
    ("channel", "target"),
    [
        ("webhook", "ftp://example.org/x"),
        ("webhook", "http://exa mple.org/"),
        ("mqtt", "a/b"),
        ("mqtt", "#"),
        ("mqtt", "+"),
        ("mqtt", ""),
        ("email", "no-at-sign"),
        ("email", "a@b\r\nBcc: c@d"),
        ("sms", "+4912345"),
    ],
)
def test_subscription_refuses_bad_targets(channel, target) -> None:
    with pytest.raises(ValueError):
        Subscription(id="s", org_id="o", channel=channel, target=target)


def test_subscription_refuses_bad_filters_and_secrets() -> None:
    with pytest.raises(ValueError, match="secret"):
        Subscription(id="s", org_id="o", channel="webhook", target="http://h/x")
    with pytest.raises(ValueError, match="NAMUR"):
        webhook_sub("s", "http://h/x", categories=("broken",))
    with pytest.raises(ValueError, match="severity"):
        webhook_sub("s", "http://h/x", min_severity=6)
    with pytest.raises(ValueError, match="kinds"):
        webhook_sub("s", "http://h/x", kinds=("telemetry",))


def test_subscription_mqtt_topic_is_the_alerts_topic_of_its_scope() -> None:
    sub = Subscription(id="s", org_id="o", channel="mqtt", target="mp-zhejiang")
    assert sub.topic == "sealscope/v1/alerts/mp-zhejiang"


def test_subscription_wants_combines_filters_with_and() -> None:
    sub = webhook_sub("s", "http://h/x", causes=("seat_leak",), min_severity=3, kinds=("device",))
    assert sub.wants(change(cause="seat_leak", severity=3))
    assert not sub.wants(change(cause="seat_leak", severity=2))
    assert not sub.wants(change(cause="actuation_wear", severity=5))


def test_alert_change_refuses_what_no_subscriber_could_scope() -> None:
    with pytest.raises(ValueError, match="device_id"):
        change(device_id=None)
    with pytest.raises(ValueError, match="dimension"):
        change(kind="fleet_risk", device_id=None)
    with pytest.raises(ValueError, match="NE 107"):
        change(category="bad")


def test_retry_policy_full_jitter_stays_under_the_exponential_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=10.0, rng=random.Random(7))
    for attempts, ceiling_s in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (60, 10.0)]:
        delays = [policy.delay_s(attempts) for _ in range(200)]
        assert all(0.0 <= d <= ceiling_s for d in delays)
        assert max(delays) > ceiling_s * 0.8  # spread over the whole range, not a fixed step
    assert not policy.is_exhausted(4)
    assert policy.is_exhausted(5)
