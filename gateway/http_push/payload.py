"""What a device said, as the platforms forward it, turned into canonical v1 payloads.

The NB-IoT platforms hand an application one of two things per uplink:

* a decoded property map (the platform ran the product's codec): ``PropertyGroup``s, each a
  service id, its properties and the platform's time for them;
* the device's own bytes (base64 or hex in a JSON string, or the JSON itself): a canonical
  v1 JSON object, or a SenML pack in JSON or CBOR (``gateway.senml``): ``raw_messages``.

Property names are the wire field names (``p_in_kpa``, ``leak_mm3s`` ...), so a product model
defines the services below and nothing is renamed here:

=============== ====================================================================
service id      properties
=============== ====================================================================
SealTelemetry   any of ``sealscope.wire.SAMPLE_FIELDS``; optional ``seq``, ``t``
SealEvent       ``kind`` (``wire.EVENT_KINDS``), optional ``detail``, ``seq``, ``t``,
                and sample fields, which become the event's ``reading``
SealState       ``fw``; optional ``config`` (object), ``rsrp_dbm``, ``sinr_db``,
                ``battery_v``, ``last_wake_t``, ``seq``, ``t``
=============== ====================================================================

A group without a service id (OneNET data streams, CTWing payload maps) is a SealEvent if it
has ``kind``, a SealState if it has ``fw``, else SealTelemetry. ``t`` (device event time, s or
ms) wins over the platform's time. ``seq`` falls back to the platform's uplink counter, then
0: the pipeline identifies a sample by device and event time, never by ``seq``.

Everything is validated by ``sealscope.wire``'s decoders and re-encoded with ``wire.encode``,
so what leaves here is exactly what a device publishing on MQTT would have sent. Every
problem raises ``MalformedMessage`` naming the property.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from gateway import senml
from gateway.prescan import check_json
from sealscope import wire
from sealscope.errors import MalformedMessage

__all__ = [
    "SERVICES",
    "Payload",
    "PropertyGroup",
    "SenmlPack",
    "WireMessage",
    "property_messages",
    "raw_bytes",
    "raw_messages",
]

Kind = Literal["telemetry", "event", "state"]
SERVICES: Final = ("SealTelemetry", "SealEvent", "SealState")

_SAMPLE: Final = frozenset(wire.SAMPLE_FIELDS)
_TELEMETRY_KEYS: Final = _SAMPLE | {"seq", "t"}
_EVENT_KEYS: Final = _SAMPLE | {"seq", "t", "kind", "detail"}
_STATE_NUMBERS: Final = frozenset({"rsrp_dbm", "sinr_db", "battery_v", "last_wake_t"})
_STATE_KEYS: Final = _STATE_NUMBERS | {"seq", "t", "fw", "config"}
_MAX_RAW_BYTES: Final = 1 << 20
_MAX_RAW_DEPTH: Final = 16  # a v1 message is 3 deep (telemetry.samples[].field)


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One canonical v1 payload for the device the push is about (not yet resolved)."""

    kind: Kind
    payload: bytes


@dataclass(frozen=True, slots=True)
class SenmlPack:
    """A device's SenML uplink, decoded; ``gateway.translate`` needs the device id (record
    names may be ``urn:dev:sn:{device_id}:...``), so it is translated after resolution."""

    records: tuple[senml.Record, ...]


Payload = WireMessage | SenmlPack


@dataclass(frozen=True, slots=True)
class PropertyGroup:
    service: str | None
    properties: Mapping[str, Any]
    t: float | None  # the platform's time for these properties, Unix s


def _show(value: Any) -> str:
    """A short repr for reasons: never the whole of a long string, never a huge integer
    (``repr`` of one past 4300 digits raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "<integer out of range>"
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)
    return type(value).__name__


def _number(value: Any, where: str) -> float:
    # Platform codecs sometimes stringify numbers ("512.5"); a bool is never a reading.
    if isinstance(value, bool):
        raise MalformedMessage(f"{where}: expected a number, got {_show(value)}", field=where)
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise MalformedMessage(
                f"{where}: {_show(value)} is out of range", field=where
            ) from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise MalformedMessage(
                f"{where}: expected a number, got {_show(value)}", field=where
            ) from None
    else:
        raise MalformedMessage(
            f"{where}: expected a number, got {type(value).__name__}", field=where
        )
    if not math.isfinite(number):
        raise MalformedMessage(f"{where}: {_show(value)} is not a finite number", field=where)
    return number


def _integer(value: Any, where: str) -> int:
    number = _number(value, where)
    if number != int(number):
        raise MalformedMessage(f"{where}: expected an integer, got {_show(value)}", field=where)
    return int(number)


def _check_keys(props: Mapping[str, Any], allowed: frozenset[str], service: str) -> None:
    unknown = sorted(k for k in props if k not in allowed)
    if unknown:
        raise MalformedMessage(
            f"{service}: unknown propert{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(_show, unknown[:5]))}; the product model must use the wire "
            "field names",
            field=unknown[0],
        )


def _service_of(group: PropertyGroup) -> str:
    if group.service is None:
        if "kind" in group.properties:
            return "SealEvent"
        if "fw" in group.properties:
            return "SealState"
        return "SealTelemetry"
    if group.service not in SERVICES:
        raise MalformedMessage(
            f"unknown service {_show(group.service)}; expected one of {', '.join(SERVICES)}",
            field="service",
        )
    return group.service


def _event_time(group: PropertyGroup, service: str) -> float:
    if "t" in group.properties:
        return _number(group.properties["t"], f"{service}.t")
    if group.t is None:
        raise MalformedMessage(f"{service}: no event time (no 't' and no platform time)")
    return group.t


def _seq(props: Mapping[str, Any], service: str, seq_hint: int | None) -> int:
    if "seq" in props:
        return _integer(props["seq"], f"{service}.seq")
    return seq_hint if seq_hint is not None else 0


def _readings(props: Mapping[str, Any], service: str) -> dict[str, float]:
    return {k: _number(v, f"{service}.{k}") for k, v in props.items() if k in _SAMPLE}


def _validated(kind: Kind, obj: dict[str, Any]) -> WireMessage:
    data = msgspec.json.encode(obj)
    decoders: dict[Kind, Callable[[bytes], Any]] = {
        "telemetry": wire.decode_telemetry,
        "event": wire.decode_event,
        "state": wire.decode_state,
    }
    return WireMessage(kind, wire.encode(decoders[kind](data)))


def _telemetry(groups: list[PropertyGroup], seq_hint: int | None) -> WireMessage:
    by_time: dict[int, dict[str, Any]] = {}
    seq: int | None = None
    for group in groups:
        _check_keys(group.properties, _TELEMETRY_KEYS, "SealTelemetry")
        t = _event_time(group, "SealTelemetry")
        if "seq" in group.properties:
            seq = _seq(group.properties, "SealTelemetry", seq_hint)
        # Several groups at the same event time are one reading set (one per data stream).
        sample = by_time.setdefault(wire.time_to_ns(t), {"t": t})
        sample.update(_readings(group.properties, "SealTelemetry"))
    samples = [by_time[k] for k in sorted(by_time)]
    return _validated(
        "telemetry",
        {"v": 1, "seq": seq if seq is not None else (seq_hint or 0), "samples": samples},
    )


def _event(group: PropertyGroup, seq_hint: int | None) -> WireMessage:
    props = group.properties
    _check_keys(props, _EVENT_KEYS, "SealEvent")
    t = _event_time(group, "SealEvent")
    obj: dict[str, Any] = {
        "v": 1,
        "seq": _seq(props, "SealEvent", seq_hint),
        "t": t,
        "kind": props.get("kind"),
    }
    if "detail" in props:
        obj["detail"] = props["detail"]
    reading = _readings(props, "SealEvent")
    if reading:
        obj["reading"] = {"t": t, **reading}
    return _validated("event", obj)


def _state(group: PropertyGroup, seq_hint: int | None) -> WireMessage:
    props = group.properties
    _check_keys(props, _STATE_KEYS, "SealState")
    obj: dict[str, Any] = {"v": 1, "t": _event_time(group, "SealState"), "fw": props.get("fw")}
    if "seq" in props or seq_hint is not None:
        obj["seq"] = _seq(props, "SealState", seq_hint)
    if "config" in props:
        obj["config"] = props["config"]
    for name in _STATE_NUMBERS & props.keys():
        obj[name] = _number(props[name], f"SealState.{name}")
    return _validated("state", obj)


def property_messages(
    groups: Iterable[PropertyGroup], *, seq_hint: int | None = None
) -> list[WireMessage]:
    """Canonical messages for one uplink's decoded properties: telemetry groups merge into
    one ``Telemetry`` (one sample per event time); each event or state group is its own."""
    telemetry: list[PropertyGroup] = []
    out: list[WireMessage] = []
    for group in groups:
        service = _service_of(group)
        if service == "SealTelemetry":
            telemetry.append(group)
        elif service == "SealEvent":
            out.append(_event(group, seq_hint))
        else:
            out.append(_state(group, seq_hint))
    if telemetry:
        out.insert(0, _telemetry(telemetry, seq_hint))
    if not out:
        raise MalformedMessage("the push carries no properties")
    return out


def _looks_like_payload(data: bytes) -> bool:
    # a JSON object or array, or a CBOR array (major type 4: 0x80-0x9f), as SenML-CBOR is
    return data.lstrip()[:1] in (b"{", b"[") or 0x80 <= data[0] <= 0x9F


def raw_bytes(text: str) -> bytes:
    """The device's bytes from a platform string: JSON as it is, or hex or base64 of a
    device payload (JSON, or SenML-CBOR).

    The platforms say which encoding only by convention (CTWing ``APPdata`` is base64, OneNET
    opaque resources are often hex), so each is tried and the one that yields a payload wins.
    """
    stripped = text.strip()
    if len(stripped) > 2 * _MAX_RAW_BYTES:
        raise MalformedMessage(f"raw payload longer than {_MAX_RAW_BYTES} bytes")
    if stripped[:1] in ("{", "["):
        return stripped.encode()
    candidates: list[bytes] = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(stripped))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(stripped, validate=True))
    for data in candidates:
        if data and _looks_like_payload(data):
            return data
    raise MalformedMessage("raw payload is neither JSON nor hex or base64 of JSON or SenML-CBOR")


def raw_messages(data: bytes, *, now_s: float) -> list[Payload]:
    """Canonical messages from a device's own bytes: a canonical v1 JSON object, or a SenML
    pack (JSON array or CBOR array), decoded by ``gateway.senml`` now and translated by
    ``gateway.translate`` once the device id is known. ``now_s`` is when the platform
    received the uplink: SenML's relative times count from it."""
    head = data.lstrip()[:1]
    if head == b"[":
        return [SenmlPack(tuple(senml.decode_json(data, now_s=now_s)))]
    if head != b"{":
        return [SenmlPack(tuple(senml.decode_cbor(data, now_s=now_s)))]
    check_json(data, max_bytes=_MAX_RAW_BYTES, max_depth=_MAX_RAW_DEPTH, what="raw payload")
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"raw payload is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedMessage("raw payload must be a canonical v1 JSON object")
    if "samples" in obj:
        return [WireMessage("telemetry", wire.encode(wire.decode_telemetry(data)))]
    if "kind" in obj:
        return [WireMessage("event", wire.encode(wire.decode_event(data)))]
    if "fw" in obj:
        return [WireMessage("state", wire.encode(wire.decode_state(data)))]
    raise MalformedMessage(
        "raw payload is not a v1 telemetry (samples), event (kind) or state (fw) object"
    )
