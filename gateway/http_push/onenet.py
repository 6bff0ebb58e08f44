"""China Mobile OneNET HTTP push: URL verification, signed bodies, data points.

Verification (documented): on saving a push instance OneNET sends
``GET url?msg=..&nonce=..&signature=..``; signature = base64(md5(token + nonce + msg)); the
receiver answers with ``msg`` itself. "Developer Manual", OneNET HTTP Push,
https://open.iot.10086.cn/doc/book/application-develop/httppush/develop-manual.html
(English: https://onenet.hk.chinamobile.com/suben/doc/nb-iot/book/manual/httppush/develop-manual.html).

Bodies, two generations, both signed with the same scheme over ``msg``:

* classic push (same manual; OneNET's own receiver SDK ``cm-heclouds/data-push``, PHP
  ``util.php``): ``{"msg": {...} | [...], "msg_signature": .., "nonce": ..}``, the signature
  taken over the JSON text of ``msg``. Each message: ``type`` (1 data point, 2 online/offline,
  7 cached-command result), ``dev_id``, ``ds_id``, ``at`` (ms), ``value``, ``imei`` for NB
  devices. ``{"enc_msg": ..}`` is the encrypted mode.
* current push (the same SDK's Java ``Util.java``, 2020, and the platform's http_push page,
  https://open.iot.10086.cn/doc/iot_platform/book/application-develop/push/http_push.html):
  ``{"msg": "<JSON text>", "signature": .., "nonce": .., "time": .., "id": ..}``. The
  thing-model ``msg`` (``messageType: notify``, ``notifyType: property | event``,
  ``productId``, ``deviceName``, ``data.params``) is an assumption from OneNET Studio's
  data-forwarding format: the page was not readable here.

Encrypted mode (AES-CBC) is not supported: such pushes are signature-checked and
dead-lettered with that reason; configure the push instance in plaintext (明文) mode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from sealscope import wire
from sealscope.errors import MalformedMessage

from .auth import PushRefused, onenet_signature_matches
from .notification import (
    DeviceUplink,
    ParsedPush,
    body_digest,
    check_body,
    describe,
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

__all__ = ["parse_onenet", "verify_onenet_url"]

_STREAM_FIELDS = frozenset((*wire.SAMPLE_FIELDS, "seq", "t", "fw"))


class _Envelope(msgspec.Struct):
    # an empty Raw is an absent field (msgspec cannot make Raw optional with None)
    msg: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    enc_msg: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    nonce: Any = None
    signature: Any = None
    msg_signature: Any = None
    id: Any = None


def verify_onenet_url(query: Mapping[str, str], token: str) -> str:
    """The URL-verification GET: the ``msg`` to echo, or ``PushRefused``."""
    msg, nonce, signature = (query.get(k) for k in ("msg", "nonce", "signature"))
    if not msg or not nonce or not signature:
        raise PushRefused(401, "URL verification without msg, nonce and signature")
    if not onenet_signature_matches(signature, token, nonce, [msg.encode()]):
        raise PushRefused(403, "URL verification signature does not match the token")
    return msg


def _signed_forms(raw: bytes) -> list[bytes]:
    """The classic push signs ``msg`` as the platform serialised it; the bytes in the body
    are tried first, then the compact forms a re-serialising sender (PHP) would produce."""
    forms = [raw]
    try:
        value = json.loads(raw)
    except ValueError:
        return forms
    for ensure_ascii in (True, False):
        compact = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)
        forms += [compact.encode(), compact.replace("/", "\\/").encode()]
    return list(dict.fromkeys(forms))


def _authenticate(body: bytes, token: str) -> tuple[_Envelope, Any]:
    """The envelope and its ``msg`` (decoded), once the signature holds; ``PushRefused`` if
    the body proves nothing, ``MalformedMessage`` if it is signed but unusable."""
    try:
        check_body(body)
    except MalformedMessage as exc:  # not yet authenticated: refused, not kept
        raise PushRefused(401, f"body is not a signed OneNET push: {exc.reason}") from None
    try:
        env = msgspec.json.decode(body, type=_Envelope)
    except msgspec.MsgspecError:
        raise PushRefused(401, "body is not a signed OneNET push") from None
    nonce = env.nonce
    signature = env.signature if env.signature is not None else env.msg_signature
    signed = env.msg if len(env.msg) else env.enc_msg
    if not isinstance(nonce, str) or not isinstance(signature, str) or not len(signed):
        raise PushRefused(401, "body has no msg, nonce and signature")
    raw = bytes(signed)
    if env.signature is not None:
        # current push: msg is a JSON string and the signature covers its text
        try:
            text = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            text = None
        if not isinstance(text, str):
            raise PushRefused(401, "signed msg is not a string")
        forms = [text.encode()]
    else:
        forms = _signed_forms(raw)
    if not onenet_signature_matches(signature, token, nonce, forms):
        raise PushRefused(403, "body signature does not match the token")
    if not len(env.msg):
        raise MalformedMessage(
            "encrypted OneNET push (enc_msg) is not supported; set the push instance to "
            "plaintext mode",
            field="enc_msg",
        )
    if env.signature is not None:
        check_body(forms[0], "msg")
    try:
        msg = msgspec.json.decode(forms[0] if env.signature is not None else raw)
    except msgspec.MsgspecError as exc:
        raise MalformedMessage(
            f"msg is not JSON (encrypted mode is not supported): {exc}", field="msg"
        ) from exc
    return env, msg


def _stream_messages(points: list[Mapping[str, Any]]) -> list[Payload]:
    groups: list[PropertyGroup] = []
    raw: list[Payload] = []
    for i, point in enumerate(points):
        ds_id = expect_str(point.get("ds_id"), f"msg[{i}].ds_id")
        value = point.get("value")
        t = platform_time(point.get("at"), f"msg[{i}].at")
        if ds_id in SERVICES:
            groups.append(PropertyGroup(ds_id, expect_object(value, f"msg[{i}].value"), t))
        elif ds_id in _STREAM_FIELDS:
            groups.append(PropertyGroup(None, {ds_id: value}, t))
        elif isinstance(value, str):
            # an opaque stream (e.g. an LwM2M string resource): the device's own bytes
            raw += raw_messages(raw_bytes(value), now_s=t)
        else:
            raise MalformedMessage(
                f"msg[{i}].ds_id {ds_id[:40]!r} is neither a wire field, a Seal* service nor "
                "an opaque string stream",
                field="ds_id",
            )
    return [*(property_messages(groups) if groups else []), *raw]


def _classic(items: list[Any], digest: str) -> ParsedPush:
    parsed = ParsedPush()
    by_device: dict[str, list[Mapping[str, Any]]] = {}
    imeis: dict[str, str] = {}
    for i, item in enumerate(items):
        message = expect_object(item, f"msg[{i}]")
        kind = message.get("type")
        if kind != 1:
            parsed.acknowledged.append(f"type {describe(kind)}")
            continue
        dev_id = optional_str(message.get("dev_id"), f"msg[{i}].dev_id")
        if dev_id is None:
            raise MalformedMessage(f"msg[{i}].dev_id missing", field="dev_id")
        by_device.setdefault(dev_id, []).append(message)
        imei = optional_str(message.get("imei"), f"msg[{i}].imei")
        if imei:
            imeis[dev_id] = imei
    for dev_id, points in by_device.items():
        refs = (dev_id, imeis[dev_id]) if dev_id in imeis else (dev_id,)
        messages = tuple(_stream_messages(points))
        parsed.uplinks.append(DeviceUplink(refs, messages, f"onenet:{digest}:{dev_id}"))
    return parsed


def _thing_model(msg: Mapping[str, Any], dedup: str) -> ParsedPush:
    notify_type = msg.get("notifyType")
    if msg.get("messageType") != "notify" or notify_type not in ("property", "event"):
        return ParsedPush(acknowledged=[describe(msg.get("messageType"))])
    device = expect_str(msg.get("deviceName"), "msg.deviceName")
    params = expect_object(expect_object(msg.get("data"), "msg.data").get("params"), "params")
    groups: list[PropertyGroup] = []
    by_time: dict[float, dict[str, Any]] = {}
    for name, param in params.items():
        entry = expect_object(param, f"params.{name}")
        t = platform_time(entry.get("time"), f"params.{name}.time")
        value = entry.get("value")
        if notify_type == "event":
            # an event's identifier is its kind (leak_alarm ...); its value, the event's fields
            fields = dict(expect_object(value, f"params.{name}.value"))
            if name != "SealEvent":
                fields.setdefault("kind", name)
            groups.append(PropertyGroup("SealEvent", fields, t))
        elif name in SERVICES:
            groups.append(PropertyGroup(name, expect_object(value, f"params.{name}.value"), t))
        else:
            by_time.setdefault(t, {})[name] = value
    groups += [PropertyGroup(None, props, t) for t, props in by_time.items()]
    return ParsedPush([DeviceUplink((device,), tuple(property_messages(groups)), dedup)])


def parse_onenet(body: bytes, token: str) -> ParsedPush:
    """Authenticate and parse one push body: ``PushRefused`` or ``MalformedMessage``."""
    env, msg = _authenticate(body, token)
    digest = body_digest(bytes(env.msg))
    if isinstance(msg, dict) and ("messageType" in msg or "notifyType" in msg):
        ident = optional_str(env.id, "id") if isinstance(env.id, str | int) else None
        return _thing_model(msg, f"onenet:{ident or digest}")
    if isinstance(msg, dict):
        return _classic([msg], digest)
    if isinstance(msg, list) and msg:
        return _classic(msg, digest)
    raise MalformedMessage("msg is neither a data-point message nor a list of them", field="msg")
