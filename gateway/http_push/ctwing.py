"""China Telecom CTWing (AEP) subscription push.

CTWing POSTs one JSON object per notification to the subscribed URL, tagged by
``messageType``: ``dataReport`` (device data: a decoded ``payload`` map for products with a
codec or thing model, or ``payload.APPdata`` = base64 of the device's bytes for transparent
LwM2M products), ``eventReport`` (``eventContent``), ``deviceOnlineOfflineReport``
(``eventType`` 1/0), ``commandResponse`` (``taskId``, ``result.resultCode``) and SaaS
device add/remove notices. Every body names ``deviceId``, ``productId``, ``tenantId``,
``protocol`` and ``timestamp`` (ms); data reports add ``IMEI``, ``upPacketSN``, ``upDataSN``,
``topic``, ``serviceId``.

Source: CTWing's subscription-push guide (订阅推送, https://www.ctwing.cn/dyts/103), which
was not retrievable here; the shapes above follow the tutorial that quotes it
(https://geekdaxue.co/read/softdev@iot/iq3b9f: POST per message, 200 = received, at most 3
retries, answer at once and process asynchronously) and bodies captured by open-source
receivers. CTWing's HTTP subscription has no documented signature, so the app
authenticates it by a secret in the callback URL, and no message id, so a retry is
recognised by the digest of its body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from sealscope.errors import MalformedMessage

from .notification import (
    DeviceUplink,
    ParsedPush,
    body_digest,
    check_body,
    expect_object,
    expect_str,
    optional_str,
    platform_time,
)
from .payload import (
    SERVICES,
    Payload,
    PropertyGroup,
    property_messages,
    raw_bytes,
    raw_messages,
)

__all__ = ["parse_ctwing"]

_FORWARDED = ("dataReport", "eventReport")
_ACKNOWLEDGED = ("deviceOnlineOfflineReport", "commandResponse", "deviceAdded", "deviceDeleted")


def _packet_sn(value: Any) -> int | None:
    # upPacketSN is the platform's per-device uplink counter; CTWing sends "" when it has none.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 10 and int(value) < 2**32:
        return int(value)
    return None


def _data_report(obj: Mapping[str, Any], t: float) -> list[Payload]:
    payload = expect_object(obj.get("payload"), "payload")
    if "APPdata" in payload:
        app_data = expect_str(payload.get("APPdata"), "payload.APPdata")
        return raw_messages(raw_bytes(app_data), now_s=t)
    service = optional_str(obj.get("serviceId"), "serviceId")
    group = PropertyGroup(service if service in SERVICES else None, payload, t)
    return [*property_messages([group], seq_hint=_packet_sn(obj.get("upPacketSN")))]


def parse_ctwing(body: bytes) -> ParsedPush:
    """Parse one authenticated push body; raises ``MalformedMessage``."""
    check_body(body)
    try:
        obj = expect_object(msgspec.json.decode(body), "body")
    except msgspec.MsgspecError as exc:
        raise MalformedMessage(f"body is not valid JSON: {exc}") from exc
    message_type = expect_str(obj.get("messageType"), "messageType")
    if message_type in _ACKNOWLEDGED:
        return ParsedPush(acknowledged=[message_type])
    if message_type not in _FORWARDED:
        # dataReportTupUnion and anything newer carry data this build cannot read: keep them.
        raise MalformedMessage(
            f"messageType {message_type[:40]!r} is not supported", field="messageType"
        )
    device_id = expect_str(obj.get("deviceId"), "deviceId")
    refs = tuple(dict.fromkeys(r for r in (device_id, optional_str(obj.get("IMEI"), "IMEI")) if r))
    t = platform_time(obj.get("timestamp"), "timestamp")
    if message_type == "dataReport":
        messages: Sequence[Payload] = _data_report(obj, t)
    else:
        content = expect_object(obj.get("eventContent"), "eventContent")
        messages = property_messages([PropertyGroup("SealEvent", content, t)])
    return ParsedPush([DeviceUplink(refs, tuple(messages), f"ctwing:{body_digest(body)}")])
