"""A platform's push, parsed: which device it is about, what it said, how to recognise a retry.

Each platform module (``huawei``, ``ctwing``, ``onenet``) turns a verified JSON body into a
``ParsedPush``: the ``DeviceUplink``s to forward, and the notifications it acknowledges
without forwarding (online/offline, command responses: nothing the v1 wire carries). Parsing
is pure and fast, so the app can answer the platform before any I/O; a body that cannot be
parsed raises ``MalformedMessage``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from gateway.prescan import check_json
from sealscope.errors import MalformedMessage

from .payload import Payload

__all__ = [
    "PLATFORMS",
    "DeviceUplink",
    "ParsedPush",
    "Platform",
    "body_digest",
    "check_body",
    "describe",
    "expect_object",
    "expect_str",
    "optional_str",
    "platform_time",
]

Platform = Literal["huawei", "ctwing", "onenet"]
PLATFORMS: Final[tuple[Platform, ...]] = ("huawei", "ctwing", "onenet")

# yyyyMMdd'T'HHmmss'Z' (IoTDA event_time, OceanConnect eventTime) and the ISO forms IoTDA
# uses for event_time_ms and device-reported service event_time.
_TIME_FORMATS: Final = ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")
# the deepest real push (IoTDA: notify_data.body.services[].properties.config) is ~7 levels
MAX_BODY_DEPTH: Final = 32


@dataclass(frozen=True, slots=True)
class DeviceUplink:
    """One device's uplink from one push, as canonical payloads still to be addressed."""

    device_refs: tuple[str, ...]  # the platform's ids for the device, most specific first
    messages: tuple[Payload, ...]
    dedup_key: str  # stable across the platform's retries of this push


@dataclass(slots=True)
class ParsedPush:
    uplinks: list[DeviceUplink] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # notification types not forwarded


def body_digest(data: bytes) -> str:
    """A retry resends the same body; its digest is the message id of last resort."""
    return hashlib.sha256(data).hexdigest()[:32]


def check_body(body: bytes, what: str = "body") -> None:
    """``MalformedMessage`` for a JSON body nested past ``MAX_BODY_DEPTH`` or with a key
    twice in one object, before it is parsed (the app bounded its size)."""
    check_json(body, max_bytes=None, max_depth=MAX_BODY_DEPTH, what=what)


def describe(value: Any) -> str:
    """A short label for a value a reason quotes: never long, never a huge integer (whose
    ``str`` raises past 4300 digits)."""
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else "<large integer>"
    if isinstance(value, float):
        return repr(value)
    return type(value).__name__


def expect_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{where}: expected a JSON object", field=where)
    return value


def expect_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{where}: expected a non-empty string", field=where)
    return value


def optional_str(value: Any, where: str) -> str | None:
    """A string the platform may leave out, send empty, or (CTWing) as a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedMessage(f"{where}: expected a string", field=where)
    if isinstance(value, int) and value.bit_length() <= 64:
        return str(value)
    if not isinstance(value, str):
        raise MalformedMessage(f"{where}: expected a string", field=where)
    return value


def platform_time(value: Any, where: str) -> float:
    """A platform timestamp in Unix seconds: milliseconds as a number, or a UTC string."""
    if isinstance(value, bool):
        raise MalformedMessage(f"{where}: expected a time", field=where)
    if isinstance(value, int | float):
        if not 0 < value < 1e14:
            raise MalformedMessage(f"{where}: time out of range", field=where)
        return value / 1000.0
    if isinstance(value, str):
        for fmt in _TIME_FORMATS:
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
        if value.isdigit() and len(value) <= 14:
            return platform_time(int(value), where)
    raise MalformedMessage(
        f"{where}: expected epoch milliseconds or yyyyMMdd'T'HHmmss'Z'", field=where
    )
