"""Wire contract v1: the payloads devices and gateways publish, and the one decoder for them.

Every field name carries its unit. Times are device event times in Unix seconds (float) or
milliseconds (integer-valued, >= 1e11), never arrival times; they are normalised to integer
nanoseconds at millisecond resolution so that a replayed sample has the same identity.

``decode_telemetry`` / ``decode_event`` / ``decode_state`` are the only way bytes become
these types; each raises a ``MessageRejected`` subclass whose ``reason`` names the field
and what was wrong. The JSON Schema published in ``sealscope/schema/`` is generated from
these types by ``json_schema()`` and tested against the decoder.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from sealscope.errors import MalformedMessage, UnknownSchemaVersion

__all__ = [
    "EVENT_KINDS",
    "SAMPLE_FIELDS",
    "SCHEMA_VERSION",
    "Event",
    "Sample",
    "State",
    "Telemetry",
    "decode_event",
    "decode_state",
    "decode_telemetry",
    "encode",
    "json_schema",
    "time_to_ns",
]

SCHEMA_VERSION: Final = 1

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


def _reading(lo: float, hi: float, unit: str) -> Any:
    return Annotated[float, msgspec.Meta(ge=lo, le=hi, description=unit)]


class Sample(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One reading set at one event time. Absent fields were not measured."""

    t: EventTime
    p_in_kpa: _reading(-101.325, 100_000, "inlet/line pressure, kPa gauge") | None = None
    p_out_kpa: _reading(-101.325, 100_000, "outlet/downstream pressure, kPa gauge") | None = None
    leak_mm3s: _reading(0, 1e9, "seat or seal leakage, mm3/s") | None = None
    position_pct: _reading(0, 100, "valve position, % open") | None = None
    stroke_s: _reading(0, 3600, "last full stroke time, s") | None = None
    torque_nm: _reading(0, 1e6, "actuation torque, N m") | None = None
    motor_a: _reading(0, 10_000, "motor current, A") | None = None
    temp_c: _reading(-60, 400, "temperature, degC") | None = None
    vib_mms: _reading(0, 1000, "vibration velocity RMS, mm/s") | None = None
    flow_m3h: _reading(0, 1e6, "flow, m3/h") | None = None
    speed_rpm: _reading(0, 100_000, "pump shaft speed, rpm") | None = None
    battery_v: _reading(0, 60, "battery voltage, V") | None = None
    rsrp_dbm: _reading(-160, 0, "NB-IoT reference signal received power, dBm") | None = None
    sinr_db: _reading(-30, 50, "NB-IoT signal to interference plus noise, dB") | None = None


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
    rsrp_dbm: _reading(-160, 0, "dBm") | None = None
    sinr_db: _reading(-30, 50, "dB") | None = None
    battery_v: _reading(0, 60, "V") | None = None
    last_wake_t: EventTime | None = None


class _Envelope(msgspec.Struct):
    v: Any = None


_envelope = msgspec.json.Decoder(_Envelope)
_decoders: dict[type, msgspec.json.Decoder[Any]] = {
    cls: msgspec.json.Decoder(cls) for cls in (Telemetry, Event, State)
}
_encoder = msgspec.json.Encoder()


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


def _decode(cls: type, payload: bytes, device_id: str | None) -> Any:
    try:
        msg = _decoders[cls].decode(payload)
    except msgspec.ValidationError as exc:
        version = _peek_version(payload)
        if version is not None and version != SCHEMA_VERSION:
            raise UnknownSchemaVersion(version, device_id=device_id) from exc
        field = _field_from_error(str(exc))
        raise MalformedMessage(f"{exc}", device_id=device_id, field=field) from exc
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"not valid JSON: {exc}", device_id=device_id) from exc
    return msg


def _peek_version(payload: bytes) -> Any:
    try:
        return _envelope.decode(payload).v
    except msgspec.MsgspecError:
        return None


def _field_from_error(text: str) -> str | None:
    # msgspec says "... - at `$.samples[0].p_in_kpa`", and names a missing field in backticks
    marker = "at `$"
    i = text.rfind(marker)
    path = text[i + len(marker) :].rstrip("`").lstrip(".") if i >= 0 else ""
    if text.startswith("Object missing required field `"):
        missing = text.split("`")[1]
        path = f"{path}.{missing}" if path else missing
    return path or None


def decode_telemetry(payload: bytes, *, device_id: str | None = None) -> Telemetry:
    msg: Telemetry = _decode(Telemetry, payload, device_id)
    for i, sample in enumerate(msg.samples):
        _check_time(sample.t, f"samples[{i}].t", device_id)
    return msg


def decode_event(payload: bytes, *, device_id: str | None = None) -> Event:
    msg: Event = _decode(Event, payload, device_id)
    _check_time(msg.t, "t", device_id)
    if msg.reading is not None:
        _check_time(msg.reading.t, "reading.t", device_id)
    return msg


def decode_state(payload: bytes, *, device_id: str | None = None) -> State:
    msg: State = _decode(State, payload, device_id)
    _check_time(msg.t, "t", device_id)
    if msg.last_wake_t is not None:
        _check_time(msg.last_wake_t, "last_wake_t", device_id)
    return msg


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
