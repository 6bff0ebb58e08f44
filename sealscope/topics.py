"""The v1 topic scheme: ``sealscope/v1/dev/{device_id}/{kind}``, ``sealscope/v1/alerts/{scope}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, cast

from sealscope.errors import TopicRejected

__all__ = [
    "DEVICE_ID_PATTERN",
    "DeviceTopic",
    "MessageKind",
    "alerts_topic",
    "check_device_id",
    "device_filter",
    "device_topic",
    "parse_device_topic",
]

PREFIX: Final = "sealscope/v1"
MessageKind = Literal["telemetry", "event", "state", "cmd"]
UPLINK_KINDS: Final[tuple[MessageKind, ...]] = ("telemetry", "event", "state")
_KINDS: Final = frozenset(("telemetry", "event", "state", "cmd"))

# Manufacturer-prefixed serials: letters, digits, '.', '_' and '-', never MQTT wildcards or '/'.
DEVICE_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}"
_device_id = re.compile(DEVICE_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    device_id: str
    kind: MessageKind


def check_device_id(device_id: str) -> str:
    if not _device_id.fullmatch(device_id):
        raise TopicRejected(
            f"device id {device_id!r} must match {DEVICE_ID_PATTERN}", device_id=device_id
        )
    return device_id


def device_topic(device_id: str, kind: MessageKind) -> str:
    return f"{PREFIX}/dev/{check_device_id(device_id)}/{kind}"


def device_filter(kind: MessageKind | Literal["#"], *, shared_group: str | None = None) -> str:
    """Subscription filter for one message kind of every device, optionally as a shared group."""
    topic = f"{PREFIX}/dev/+/{kind}" if kind != "#" else f"{PREFIX}/dev/#"
    return f"$share/{shared_group}/{topic}" if shared_group else topic


def parse_device_topic(topic: str) -> DeviceTopic:
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[2] != "dev":
        raise TopicRejected(f"topic {topic!r} is not sealscope/v1/dev/{{device_id}}/{{kind}}")
    device_id, kind = parts[3], parts[4]
    if kind not in _KINDS:
        raise TopicRejected(f"topic {topic!r}: unknown message kind {kind!r}", device_id=device_id)
    check_device_id(device_id)
    return DeviceTopic(device_id, cast(MessageKind, kind))  # checked against _KINDS above


# MQTT forbids U+0000 and discourages the other controls (MQTT 5 §1.5.4); a topic is UTF-8
_SCOPE_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff+#]")
_TOPIC_MAX_BYTES: Final = 65535


def alerts_topic(scope: str) -> str:
    """``sealscope/v1/alerts/{scope}``; a scope may have levels (``region/zj-wenzhou``)."""
    if not scope or _SCOPE_REFUSED.search(scope) or "" in scope.split("/"):
        raise TopicRejected(
            f"alert scope {scope!r} may not be empty, hold MQTT wildcards, control"
            " characters or empty levels"
        )
    topic = f"{PREFIX}/alerts/{scope}"
    if len(topic.encode()) > _TOPIC_MAX_BYTES:
        raise TopicRejected(f"alert scope of {len(scope)} characters is too long for a topic")
    return topic
