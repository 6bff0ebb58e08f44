"""Wire contract v1: the payloads devices and gateways publish, and the one decoder for them.

Every field name carries its unit. Times are device event times in Unix seconds (float) or
milliseconds (integer-valued, >= 1e11), never arrival times; they are normalised to integer
nanoseconds at millisecond resolution so that a replayed sample has the same identity.

``decode_telemetry`` / ``decode_event`` / ``decode_state`` are the only way bytes become
these types; each raises a ``MessageRejected`` subclass (and nothing else, whatever the
bytes) whose ``reason`` names the field and what was wrong. Size is bounded before parsing;
depth is bounded by the types (msgspec fails a container where a number belongs at once)
and, before any untyped parse, by a byte scan. The untyped parse (``lint``) names faults of
the JSON itself: truncation, duplicate keys, NaN/Infinity, numbers out of range.

The JSON Schema published in ``sealscope/schema/`` is generated from these types by
``json_schema()`` and tested against the decoder.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Annotated, Any, Final, Literal

import msgspec

from sealscope.errors import MalformedMessage, PayloadTooLarge, UnknownSchemaVersion

__all__ = [
    "EVENT_KINDS",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "SAMPLE_FIELDS",
    "SCHEMA_VERSION",
    "Event",
    "Sample",
    "State",
    "Telemetry",
    "decode_event",
    "decode_state",
    "decode_telemetry",
    "decode_telemetry_readings",
    "encode",
    "json_schema",
    "lint",
    "nesting_depth",
    "time_to_ns",
]

SCHEMA_VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 256 * 1024  # default bound; ingest takes its own from settings
MAX_DEPTH: Final = 8  # v1 nests 3 deep at most; anything near Python's recursion limit is hostile

# Event times must fall in 2000-01-01 .. 2100-01-01, in seconds or in milliseconds.
_T_MIN_S: Final = 946_684_800
_T_MAX_S: Final = 4_102_444_800
_MS_THRESHOLD: Final = 100_000_000_000  # below: seconds; at or above: milliseconds

EventTime = Annotated[
    float,
    msgspec.Meta(
        ge=_T_MIN_S,
        le=_T_MAX_S * 1000,
        description="device event time: Unix seconds, or Unix milliseconds (>= 1e11)",
    ),
]


def _range(lo: float, hi: float, unit: str) -> msgspec.Meta:
    return msgspec.Meta(ge=lo, le=hi, description=unit)


# One alias per reading, so type checkers see plain floats and msgspec sees the bounds.
_PInKpa = Annotated[float, _range(-101.325, 100_000, "inlet/line pressure, kPa gauge")]
_POutKpa = Annotated[float, _range(-101.325, 100_000, "outlet/downstream pressure, kPa gauge")]
_LeakMm3s = Annotated[float, _range(0, 1e9, "seat or seal leakage, mm3/s")]
_PositionPct = Annotated[float, _range(0, 100, "valve position, % open")]
_StrokeS = Annotated[float, _range(0, 3600, "last full stroke time, s")]
_TorqueNm = Annotated[float, _range(0, 1e6, "actuation torque, N m")]
_MotorA = Annotated[float, _range(0, 10_000, "motor current, A")]
_TempC = Annotated[float, _range(-60, 400, "temperature, degC")]
_VibMms = Annotated[float, _range(0, 1000, "vibration velocity RMS, mm/s")]
_FlowM3h = Annotated[float, _range(0, 1e6, "flow, m3/h")]
_SpeedRpm = Annotated[float, _range(0, 100_000, "pump shaft speed, rpm")]
_BatteryV = Annotated[float, _range(0, 60, "battery voltage, V")]
_RsrpDbm = Annotated[float, _range(-160, 0, "NB-IoT reference signal received power, dBm")]
_SinrDb = Annotated[float, _range(-30, 50, "NB-IoT signal to interference plus noise, dB")]
_StateRsrpDbm = Annotated[float, _range(-160, 0, "dBm")]
_StateSinrDb = Annotated[float, _range(-30, 50, "dB")]
_StateBatteryV = Annotated[float, _range(0, 60, "V")]


class Sample(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One reading set at one event time. Absent fields were not measured.

    A sample with only ``t`` has nothing to store: ingest stores the other samples and
    dead-letters a message whose samples all are like that.
    """

    t: EventTime
    p_in_kpa: _PInKpa | None = None
    p_out_kpa: _POutKpa | None = None
    leak_mm3s: _LeakMm3s | None = None
    position_pct: _PositionPct | None = None
    stroke_s: _StrokeS | None = None
    torque_nm: _TorqueNm | None = None
    motor_a: _MotorA | None = None
    temp_c: _TempC | None = None
    vib_mms: _VibMms | None = None
    flow_m3h: _FlowM3h | None = None
    speed_rpm: _SpeedRpm | None = None
    battery_v: _BatteryV | None = None
    rsrp_dbm: _RsrpDbm | None = None
    sinr_db: _SinrDb | None = None


SAMPLE_FIELDS: Final[tuple[str, ...]] = tuple(f for f in Sample.__struct_fields__ if f != "t")

Seq = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1, description="per-device uplink counter")]


class Telemetry(msgspec.Struct, forbid_unknown_fields=True):
    """``sealscope/v1/dev/{device_id}/telemetry``: a batch of samples from one uplink."""

    v: Literal[1]
    seq: Seq
    samples: Annotated[list[Sample], msgspec.Meta(min_length=1, max_length=10_000)]


EVENT_KINDS: Final = (
    "leak_alarm",
    "actuation_fault",
    "sensor_fault",
    "low_battery",
    "tamper",
)


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``sealscope/v1/dev/{device_id}/event``: an alarm the device raised at once."""

    v: Literal[1]
    seq: Seq
    t: EventTime
    kind: Literal["leak_alarm", "actuation_fault", "sensor_fault", "low_battery", "tamper"]
    detail: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    reading: Sample | None = None


ConfigValue = int | float | str | bool


class State(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``sealscope/v1/dev/{device_id}/state`` (retained): firmware, config, radio, last wake."""

    v: Literal[1]
    t: EventTime
    fw: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    seq: Seq | None = None
    config: dict[Annotated[str, msgspec.Meta(max_length=64)], ConfigValue] = {}
    rsrp_dbm: _StateRsrpDbm | None = None
    sinr_db: _StateSinrDb | None = None
    battery_v: _StateBatteryV | None = None
    last_wake_t: EventTime | None = None


_decoders: dict[type, msgspec.json.Decoder[Any]] = {
    cls: msgspec.json.Decoder(cls) for cls in (Telemetry, Event, State)
}
_encoder = msgspec.json.Encoder()
_to_builtins = msgspec.to_builtins


def time_to_ns(t: float) -> int:
    """Normalise an event time (s or ms) to integer ns at millisecond resolution."""
    if t >= _MS_THRESHOLD:
        return round(t) * 1_000_000
    return round(t * 1000) * 1_000_000


def _check_time(t: float, where: str, device_id: str | None) -> None:
    # The decoder already bounds t to [2000 in s, 2100 in ms]; what is left is the gap between.
    if _T_MAX_S < t < _T_MIN_S * 1000:
        raise MalformedMessage(
            f"{where}: {t!r} is neither Unix seconds nor Unix milliseconds in 2000..2100",
            field=where,
            device_id=device_id,
        )


def _decode(cls: type, payload: bytes, device_id: str | None, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise PayloadTooLarge(len(payload), max_bytes, device_id=device_id)
    # The typed decoder cannot nest deeper than the schema (3): a container where a number or
    # a struct belongs fails at once. Only the diagnosis below parses untyped, after a depth check.
    try:
        return _decoders[cls].decode(payload)
    except msgspec.MsgspecError as exc:
        doc = lint(payload, device_id=device_id)  # raises for faults of JSON itself
        version = doc.get("v") if isinstance(doc, dict) else None
        if version is not None and version != SCHEMA_VERSION:
            raise UnknownSchemaVersion(version, device_id=device_id) from exc
        if not isinstance(exc, msgspec.ValidationError):  # json took what msgspec did not
            # msgspec calls a lone surrogate "truncated"; Python's json accepts it
            detail = str(exc).removeprefix("JSON is malformed: ")
            if _LONE_SURROGATE.search(payload):
                detail = "lone UTF-16 surrogate in a \\u escape"
            raise MalformedMessage(f"malformed JSON: {detail}", device_id=device_id) from exc
        field = _field_from_error(str(exc))
        raise MalformedMessage(f"{exc}", device_id=device_id, field=field) from exc


def _field_from_error(text: str) -> str | None:
    # msgspec says "... - at `$.samples[0].p_in_kpa`", and names a missing field in backticks
    marker = "at `$"
    i = text.rfind(marker)
    path = text[i + len(marker) :].rstrip("`").lstrip(".") if i >= 0 else ""
    if text.startswith("Object missing required field `"):
        missing = text.split("`")[1]
        path = f"{path}.{missing}" if path else missing
    return path or None


def decode_telemetry(
    payload: bytes, *, device_id: str | None = None, max_bytes: int = MAX_PAYLOAD_BYTES
) -> Telemetry:
    return decode_telemetry_readings(payload, device_id=device_id, max_bytes=max_bytes)[0]


def decode_telemetry_readings(
    payload: bytes, *, device_id: str | None = None, max_bytes: int = MAX_PAYLOAD_BYTES
) -> tuple[Telemetry, list[dict[str, float]]]:
    """The message and each sample as a dict of its present fields (``t`` included).

    The dicts come for free with the duplicate-key check, and ingest stores them as they are.
    """
    msg: Telemetry = _decode(Telemetry, payload, device_id, max_bytes)
    readings: list[dict[str, float]] = _to_builtins(msg.samples)  # omits absent (None) fields
    # Duplicate keys collapse silently in msgspec. Every key brings one colon, so when the
    # colons number exactly the keys decoded, no key can repeat; nulls or colons inside
    # strings send the message to the exact (slower) check.
    if payload.count(b":") != 3 + sum(map(len, readings)):
        lint(payload, device_id=device_id)
    for i, sample in enumerate(msg.samples):
        _check_time(sample.t, f"samples[{i}].t", device_id)
    return msg, readings


def decode_event(
    payload: bytes, *, device_id: str | None = None, max_bytes: int = MAX_PAYLOAD_BYTES
) -> Event:
    msg: Event = _decode(Event, payload, device_id, max_bytes)
    lint(payload, device_id=device_id)  # events are rare: always the exact duplicate-key check
    _check_time(msg.t, "t", device_id)
    if msg.reading is not None:
        _check_time(msg.reading.t, "reading.t", device_id)
    return msg


def decode_state(
    payload: bytes, *, device_id: str | None = None, max_bytes: int = MAX_PAYLOAD_BYTES
) -> State:
    msg: State = _decode(State, payload, device_id, max_bytes)
    lint(payload, device_id=device_id)  # config is a free dict: duplicates hide there too
    _check_time(msg.t, "t", device_id)
    if msg.last_wake_t is not None:
        _check_time(msg.last_wake_t, "last_wake_t", device_id)
    return msg


# -- the JSON itself: what msgspec either accepts silently or names misleadingly ----------

# a JSON string, or an unterminated one running to the end of the input
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")] = _DEPTH_STEP[ord("{")] = 1
_DEPTH_STEP[ord("]")] = _DEPTH_STEP[ord("}")] = -1
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_MAX_INT_DIGITS: Final = 20  # past any v1 range (t in ms is 13 digits), and past int() limits


def nesting_depth(payload: bytes) -> int:
    """How deep brackets nest outside strings, by a byte scan that parses nothing."""
    brackets = _STRING.sub(b"", payload).translate(None, _NOT_BRACKET)
    return max(0, max(accumulate(_DEPTH_STEP[b] for b in brackets), default=0))


class _JsonFault(Exception):
    pass


class _Duplicated(dict[str, Any]):
    """An object that had a key twice (kept so the walk can say where)."""

    key: str


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            break
        seen.add(key)
    dup = _Duplicated(obj)
    dup.key = key
    return dup


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} chars)"


def _constant(name: str) -> Any:
    raise _JsonFault(f"non-finite number {name}: JSON numbers must be finite")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _JsonFault(f"number out of range: {_clip(text)}")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _JsonFault(f"number out of range: {_clip(text)}")
    return int(text)


def _first_duplicate(node: Any, path: str) -> tuple[str, str] | None:
    if isinstance(node, _Duplicated):
        return node.key, path
    children = (
        ((f"{path}.{_clip(k)}", v) for k, v in node.items())
        if isinstance(node, dict)
        else ((f"{path}[{i}]", v) for i, v in enumerate(node))
        if isinstance(node, list)
        else ()
    )
    for child_path, child in children:
        if (found := _first_duplicate(child, child_path)) is not None:
            return found
    return None


def lint(payload: bytes, *, device_id: str | None = None) -> Any:
    """Parse untyped and reject faults of the JSON itself, each by its name.

    Depth first (by a byte scan), then encoding, syntax ("truncated at byte N" rather than
    whatever field validation tripped over first), NaN/Infinity, numbers out of range and
    duplicate keys. Returns the parsed document. The slow path: about 10x the typed decode.
    """

    def fault(reason: str, field: str | None = None) -> MalformedMessage:
        return MalformedMessage(reason, device_id=device_id, field=field)

    if nesting_depth(payload) > MAX_DEPTH:
        raise fault(f"nesting deeper than {MAX_DEPTH}")
    try:
        text = payload.decode()
    except UnicodeDecodeError as exc:
        raise fault(f"not UTF-8: byte 0x{payload[exc.start]:02x} at byte {exc.start}") from None
    if not text.strip():
        raise fault("malformed JSON: empty payload")
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except _JsonFault as exc:
        raise fault(str(exc)) from None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise fault(f"malformed JSON: truncated at byte {len(payload)}") from None
        at = len(text[: exc.pos].encode())
        raise fault(f"malformed JSON: {exc.msg[0].lower()}{exc.msg[1:]} at byte {at}") from None
    if (dup := _first_duplicate(doc, "$")) is not None:
        key, path = dup
        raise fault(f"duplicate key {_clip(key)!r} at {path}", path[2:] or None)
    return doc


def encode(msg: Telemetry | Event | State) -> bytes:
    return _encoder.encode(msg)


def json_schema(cls: type) -> dict[str, Any]:
    """The published JSON Schema of one v1 message type (draft 2020-12).

    msgspec cannot say "seconds or milliseconds, nothing in between", so event-time
    properties are rewritten to an ``anyOf`` of the two ranges the decoder accepts.
    """
    schema: dict[str, Any] = msgspec.json.schema(cls)
    time_schema = {
        "description": "device event time: Unix seconds, or Unix milliseconds (>= 1e11)",
        "anyOf": [
            {"type": "number", "minimum": _T_MIN_S, "maximum": _T_MAX_S},
            {"type": "number", "minimum": _T_MIN_S * 1000, "maximum": _T_MAX_S * 1000},
        ],
    }
    for definition in schema.get("$defs", {}).values():
        for name, prop in definition.get("properties", {}).items():
            if name in ("t", "last_wake_t"):
                if "anyOf" in prop:  # optional: time or null
                    prop["anyOf"] = [time_schema, {"type": "null"}]
                else:
                    definition["properties"][name] = dict(time_schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://sealscope.dev/schema/v1/{cls.__name__.lower()}.json"
    return schema
