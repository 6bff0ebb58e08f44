from __future__ import annotations

import pytest

from sealscope.errors import TopicRejected
from sealscope.topics import alerts_topic, device_filter, device_topic, parse_device_topic


def test_device_topic_round_trips() -> None:
    topic = device_topic("ACME-V-000123", "telemetry")
    assert topic == "sealscope/v1/dev/ACME-V-000123/telemetry"
    parsed = parse_device_topic(topic)
    assert (parsed.device_id, parsed.kind) == ("ACME-V-000123", "telemetry")


@pytest.mark.parametrize(
    "topic",
    [
        "sealscope/v2/dev/ACME-1/telemetry",
        "sealscope/v1/dev/ACME-1/telemetry/extra",
        "sealscope/v1/dev/ACME-1/bogus",
        "sealscope/v1/dev/a/telemetry",  # too short to be a serial
        "sealscope/v1/dev/ACME 1/telemetry",
        "other/v1/dev/ACME-1/telemetry",
    ],
)
def test_parse_device_topic_rejects_outside_the_scheme(topic: str) -> None:
    with pytest.raises(TopicRejected) as info:
        parse_device_topic(topic)
    assert info.value.reason


@pytest.mark.parametrize("device_id", ["ACME+1", "ACME#1", "AC/ME", ""])
def test_device_topic_refuses_wildcards_in_ids(device_id: str) -> None:
    with pytest.raises(TopicRejected):
        device_topic(device_id, "cmd")


def test_filters_and_alert_topics() -> None:
    assert device_filter("telemetry") == "sealscope/v1/dev/+/telemetry"
    assert device_filter("event", shared_group="ingest") == "$share/ingest/sealscope/v1/dev/+/event"
    assert alerts_topic("region/zj-wenzhou") == "sealscope/v1/alerts/region/zj-wenzhou"
    with pytest.raises(TopicRejected):
        alerts_topic("region/#")


@pytest.mark.parametrize(
    "scope",
    ["", "a+b", "region/", "/region", "a//b", "a\x00b", "a\nb", "a\x85b", "\ud800", "x" * 70000],
)
def test_alerts_topic_refuses_scopes_that_change_the_topic(scope: str) -> None:
    with pytest.raises(TopicRejected):
        alerts_topic(scope)


def test_alerts_topic_keeps_unicode_scope_levels() -> None:
    assert alerts_topic("region/温州") == "sealscope/v1/alerts/region/温州"
