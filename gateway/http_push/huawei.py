"""Huawei IoTDA data forwarding and its OceanConnect predecessor's subscription push.

Shapes, as documented:

* IoTDA rule engine, HTTP forwarding: "Push a Device Property Reporting Notification"
  (``resource: device.property``, ``event: report``)
  https://support.huaweicloud.com/intl/en-us/api-iothub/iot_06_v5_01202.html and "Push a
  Device Message Reporting Notification" (``resource: device.message``, ``event: report``)
  https://support.huaweicloud.com/intl/en-us/api-iothub/iot_06_v5_01205.html
  -- ``notify_data.header`` names the device (``device_id``, ``node_id`` = IMEI),
  ``notify_data.body`` carries ``services[]`` or the message ``content``; ``request_id`` is
  the message id.
* OceanConnect northbound push: "Pushing Device Data Change Notifications"
  (``notifyType: deviceDataChanged``, one ``service``)
  https://support.huaweicloud.com/intl/en-us/api-IoT/iot_06_0035.html and "Pushing Batch
  Device Data Change Notifications" (``deviceDatasChanged``, ``services[]`` -- the page's
  own example spells the list ``service``, so both are read)
  https://support.huaweicloud.com/intl/en-us/api-IoT/iot_06_0036.html

Neither signs its pushes (IoTDA's HTTP forwarding action has only ``url``, ``cert_id``,
``cn_name``, ``sni_enable``), so the app authenticates them by a secret in the callback URL.
"""

from __future__ import annotations

import time
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
from .payload import Payload, PropertyGroup, property_messages, raw_bytes, raw_messages

__all__ = ["parse_huawei"]

# (service id, properties, time) keys of a service entry: IoTDA v5, OceanConnect v1
_V5_KEYS = ("service_id", "properties", "event_time")
_V1_KEYS = ("serviceId", "data", "eventTime")


def _refs(*ids: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in ids if i))


def _groups(
    services: Any, where: str, id_key: str, props_key: str, time_key: str
) -> list[PropertyGroup]:
    if not isinstance(services, list) or not services:
        raise MalformedMessage(f"{where}: expected a non-empty list of services", field=where)
    groups = []
    for i, item in enumerate(services):
        service = expect_object(item, f"{where}[{i}]")
        t = service.get(time_key)
        groups.append(
            PropertyGroup(
                service=expect_str(service.get(id_key), f"{where}[{i}].{id_key}"),
                properties=expect_object(service.get(props_key), f"{where}[{i}].{props_key}"),
                t=None if t is None else platform_time(t, f"{where}[{i}].{time_key}"),
            )
        )
    return groups


def _iotda(obj: Mapping[str, Any], digest: str) -> ParsedPush:
    resource = expect_str(obj.get("resource"), "resource")
    event = expect_str(obj.get("event"), "event")
    kind = f"{resource}/{event}"
    if kind not in ("device.property/report", "device.message/report"):
        return ParsedPush(acknowledged=[kind])
    data = expect_object(obj.get("notify_data"), "notify_data")
    header = expect_object(data.get("header"), "notify_data.header")
    body = expect_object(data.get("body"), "notify_data.body")
    refs = _refs(
        optional_str(header.get("device_id"), "notify_data.header.device_id"),
        optional_str(header.get("node_id"), "notify_data.header.node_id"),
    )
    if not refs:
        raise MalformedMessage(
            "notify_data.header names no device (device_id, node_id)", field="notify_data.header"
        )
    dedup = f"huawei:{optional_str(obj.get('request_id'), 'request_id') or digest}"
    if resource == "device.property":
        default_t = obj.get("event_time_ms") or obj.get("event_time")
        groups = _groups(body.get("services"), "notify_data.body.services", *_V5_KEYS)
        if default_t is not None:
            t = platform_time(default_t, "event_time")
            groups = [
                g if g.t is not None else PropertyGroup(g.service, g.properties, t) for g in groups
            ]
        messages: Sequence[Payload] = property_messages(groups)
    else:
        content = body.get("content")
        when = obj.get("event_time_ms") or obj.get("event_time")
        now_s = time.time() if when is None else platform_time(when, "event_time")
        if isinstance(content, dict | list):
            messages = raw_messages(msgspec.json.encode(content), now_s=now_s)
        elif isinstance(content, str):
            messages = raw_messages(raw_bytes(content), now_s=now_s)
        else:
            raise MalformedMessage(
                "notify_data.body.content: expected the device's message (object or string)",
                field="notify_data.body.content",
            )
    return ParsedPush([DeviceUplink(refs, tuple(messages), dedup)])


def _oceanconnect(obj: Mapping[str, Any], digest: str) -> ParsedPush:
    notify_type = expect_str(obj.get("notifyType"), "notifyType")
    if notify_type == "deviceDataChanged":
        services: Any = [obj.get("service")]
        where = "service"
    elif notify_type == "deviceDatasChanged":
        where = "services" if "services" in obj else "service"
        services = obj.get(where)
    else:
        return ParsedPush(acknowledged=[notify_type])
    device_id = expect_str(obj.get("deviceId"), "deviceId")
    groups = _groups(services, where, *_V1_KEYS)
    dedup = f"huawei:{optional_str(obj.get('requestId'), 'requestId') or digest}"
    return ParsedPush([DeviceUplink((device_id,), tuple(property_messages(groups)), dedup)])


def parse_huawei(body: bytes) -> ParsedPush:
    """Parse one authenticated push body; raises ``MalformedMessage``."""
    check_body(body)
    try:
        obj = expect_object(msgspec.json.decode(body), "body")
    except msgspec.MsgspecError as exc:
        raise MalformedMessage(f"body is not valid JSON: {exc}") from exc
    if "notifyType" in obj:
        return _oceanconnect(obj, body_digest(body))
    if "resource" in obj:
        return _iotda(obj, body_digest(body))
    raise MalformedMessage(
        "neither an IoTDA notification (resource/event) nor an OceanConnect one (notifyType)"
    )
