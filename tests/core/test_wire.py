"""The v1 decoder and the published JSON Schema must agree, and every rejection says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealscope import wire
from sealscope.errors import (
    MalformedMessage,
    MessageRejected,
    PayloadTooLarge,
    UnknownSchemaVersion,
)
from tests.ingest.hostile import hostile_payloads

SCHEMA_DIR = Path(wire.__file__).parent / "schema"
T0 = 1_763_800_000.0

VALID_TELEMETRY: list[dict[str, Any]] = [
    {"v": 1, "seq": 0, "samples": [{"t": T0}]},
    {"v": 1, "seq": 7, "samples": [{"t": T0, "p_in_kpa": 812.5, "leak_mm3s": 0.4}]},
    {"v": 1, "seq": 8, "samples": [{"t": int(T0 * 1000), "position_pct": 0}]},
    {"v": 1, "seq": 9, "samples": [{"t": T0 + i, "temp_c": 20.0 + i} for i in range(12)]},
    {"v": 1, "seq": 10, "samples": [{"t": T0, "p_in_kpa": None}]},
]

INVALID_TELEMETRY: list[tuple[dict[str, Any], str]] = [
    ({"v": 1, "seq": 1, "samples": []}, "samples"),
    ({"v": 1, "samples": [{"t": T0}]}, "seq"),
    ({"v": 1, "seq": -1, "samples": [{"t": T0}]}, "seq"),
    ({"v": 1, "seq": 1, "samples": [{"t": T0, "p_in_kpa": "high"}]}, "samples[0].p_in_kpa"),
    ({"v": 1, "seq": 1, "samples": [{"t": T0, "position_pct": 120}]}, "samples[0].position_pct"),
    ({"v": 1, "seq": 1, "samples": [{"t": T0, "p_inn_kpa": 1}]}, "samples[0]"),
    ({"v": 1, "seq": 1, "samples": [{"p_in_kpa": 1}]}, "samples[0].t"),
    ({"v": 1, "seq": 1, "samples": [{"t": 1.0}]}, "samples[0].t"),
    ({"v": 1, "seq": 1, "samples": [{"t": 17_638_000_000}]}, "samples[0].t"),
    ({"v": 1, "seq": 1, "samples": [{"t": T0}], "extra": 1}, None),
]


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.v1.json").read_text())


@pytest.mark.parametrize("cls", [wire.Telemetry, wire.Event, wire.State])
def test_schema_file_is_generated_from_the_types(cls: type) -> None:
    assert _schema(cls.__name__.lower()) == wire.json_schema(cls)


@pytest.mark.parametrize("doc", VALID_TELEMETRY)
def test_decode_telemetry_accepts_what_the_schema_accepts(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, _schema("telemetry"))
    msg = wire.decode_telemetry(json.dumps(doc).encode())
    assert msg.seq == doc["seq"]
    assert len(msg.samples) == len(doc["samples"])


@pytest.mark.parametrize(("doc", "field"), INVALID_TELEMETRY)
def test_decode_telemetry_rejects_what_the_schema_rejects(
    doc: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, _schema("telemetry"))
    with pytest.raises(MalformedMessage) as info:
        wire.decode_telemetry(json.dumps(doc).encode(), device_id="ACME-V-1")
    assert info.value.device_id == "ACME-V-1"
    assert info.value.reason
    if field is not None:
        assert info.value.field == field


def test_decode_rejects_unknown_version_by_name() -> None:
    with pytest.raises(UnknownSchemaVersion) as info:
        wire.decode_telemetry(b'{"v": 2, "seq": 1, "readings": []}')
    assert info.value.version == 2
    assert "v=2" in info.value.reason
    assert info.value.code == "unknown_version"


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1,2]", b'{"v":1', b"\xff\xfe"])
def test_decode_rejects_garbage_with_a_reason(payload: bytes) -> None:
    with pytest.raises(MessageRejected) as info:
        wire.decode_telemetry(payload)
    assert info.value.reason


def test_event_and_state_decode_and_match_schema() -> None:
    event = {"v": 1, "seq": 3, "t": T0, "kind": "leak_alarm", "detail": "over local limit"}
    state = {"v": 1, "t": T0, "fw": "1.4.2", "config": {"uplink_interval_s": 3600}}
    jsonschema.validate(event, _schema("event"))
    jsonschema.validate(state, _schema("state"))
    assert wire.decode_event(json.dumps(event).encode()).kind == "leak_alarm"
    assert wire.decode_state(json.dumps(state).encode()).config == {"uplink_interval_s": 3600}
    bad_event = dict(event, kind="explosion")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_event, _schema("event"))
    with pytest.raises(MalformedMessage):
        wire.decode_event(json.dumps(bad_event).encode())


def test_time_to_ns_accepts_seconds_and_milliseconds_alike() -> None:
    assert wire.time_to_ns(T0 + 0.25) == wire.time_to_ns((T0 + 0.25) * 1000)
    assert wire.time_to_ns(1_700_000_000) == 1_700_000_000_000_000_000


_reading = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(10**12), 10**12),
    st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    t=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 10**14)),
    p_in=_reading,
    position=_reading,
    seq=st.integers(-5, 2**33),
)
def test_decoder_and_schema_agree_on_generated_messages(
    t: float, p_in: Any, position: Any, seq: int
) -> None:
    doc = {"v": 1, "seq": seq, "samples": [{"t": t, "p_in_kpa": p_in, "position_pct": position}]}
    schema_ok = jsonschema.Draft202012Validator(_schema("telemetry")).is_valid(doc)
    try:
        wire.decode_telemetry(json.dumps(doc).encode())
        decoder_ok = True
    except MessageRejected:
        decoder_ok = False
    assert decoder_ok == schema_ok, doc


def _sample_with(value: bytes) -> bytes:
    return b'{"v":1,"seq":1,"samples":[{"t":1763800000,"p_in_kpa":' + value + b"}]}"


FAULTS: list[tuple[bytes, str]] = [
    # the payload: RecursionError in the version peek used to kill ingest
    (b'{"v":1,"seq":1,"samples":[' + b"[" * 1000 + b"]" * 1000 + b"]}", "nesting deeper than 8"),
    (
        b'{"v":1,"seq":1,"samples":[' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"]}",
        "nesting deeper than 8",
    ),
    # msgspec checks t against its bound before it notices the input ends
    (b'{"v":1,"seq":1,"samples":[{"t":17', "malformed JSON: truncated at byte 33"),
    (
        b'{"v":1,"seq":1,"samples":[{"t":1763800000,"p_in_kpa":"hi',
        "malformed JSON: truncated at byte 56",
    ),
    (
        b'{"v":1,"seq":1,"samples":[{"t":1763800000,"p_in_kpa":1,"p_in_kpa":2}]}',
        "duplicate key 'p_in_kpa' at $.samples[0]",
    ),
    (b'{"v":1,"seq":1,"v":1,"samples":[{"t":1763800000,"p_in_kpa":1}]}', "duplicate key 'v' at $"),
    (_sample_with(b"NaN"), "non-finite number NaN: JSON numbers must be finite"),
    (_sample_with(b"-Infinity"), "non-finite number -Infinity: JSON numbers must be finite"),
    (_sample_with(b"1e400"), "number out of range: 1e400"),
    (_sample_with(b"1" + b"0" * 400), "number out of range: " + "1" + "0" * 39 + "... (401 chars)"),
    (
        b'{"v":1,"seq":1,"samples":[{"t":1763800000,"p_in_kpa":1}]} 7',
        "malformed JSON: extra data at byte 58",
    ),
    (
        b'{"v":1,"seq":1,"samples":[{"t":1763800000,"p_in_kpa":1,}]}',
        "malformed JSON: expecting property name enclosed in double quotes at byte 55",
    ),
    (b"\xff\xfe{}", "not UTF-8: byte 0xff at byte 0"),
    (b"   ", "malformed JSON: empty payload"),
    (b'"\\ud800"', "malformed JSON: lone UTF-16 surrogate in a \\u escape"),
    (b"x" * 300_000, "payload 300000 bytes > 262144"),
]


@pytest.mark.parametrize(("payload", "reason"), FAULTS)
def test_decode_names_the_real_fault(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        wire.decode_telemetry(payload, device_id="ACME-V-1")
    assert info.value.reason == reason
    assert info.value.device_id == "ACME-V-1"


def test_decode_refuses_an_oversized_payload_before_parsing() -> None:
    valid = json.dumps(VALID_TELEMETRY[3]).encode()
    with pytest.raises(PayloadTooLarge) as info:
        wire.decode_telemetry(valid, max_bytes=len(valid) - 1)
    assert (info.value.code, info.value.size_bytes) == ("too_large", len(valid))
    assert wire.decode_telemetry(valid, max_bytes=len(valid)).seq == 9


def test_decode_state_rejects_duplicate_config_keys_and_infinite_values() -> None:
    base = b'{"v":1,"t":1763800000,"fw":"1.0","config":{"a":1,X}}'
    with pytest.raises(MalformedMessage, match=r"duplicate key 'a' at \$\.config"):
        wire.decode_state(base.replace(b"X", b'"a":2'))
    with pytest.raises(MalformedMessage, match="number out of range: 1e999"):
        wire.decode_state(base.replace(b"X", b'"b":1e999'))
    assert wire.decode_state(base.replace(b"X", b'"b":2')).config == {"a": 1, "b": 2}


def test_decode_telemetry_accepts_nulls_and_colons_without_a_false_duplicate() -> None:
    # nulls and colons in keys' whitespace make the fast count disagree: the exact check decides
    payload = b'{"v":1, "seq" : 2, "samples":[{"t":1763800000,"p_in_kpa":null,"temp_c":4}]}'
    msg, readings = wire.decode_telemetry_readings(payload)
    assert msg.seq == 2
    assert readings == [{"t": 1763800000.0, "temp_c": 4.0}]


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    assert wire.nesting_depth(b'{"detail":"[[[[[[[[[[[[{{{{\\"[[["}') == 1
    assert wire.nesting_depth(b"[[[[") == 4  # truncated: as deep as it got
    assert wire.nesting_depth(b"]]]") == 0
    assert wire.nesting_depth(b'{"a":"unterminated [[[[[[[[[[') == 1


@settings(max_examples=400, deadline=None)
@given(payload=hostile_payloads)
def test_decoders_raise_only_message_rejected_on_hostile_bytes(payload: bytes) -> None:
    for decode in (wire.decode_telemetry, wire.decode_event, wire.decode_state):
        try:
            decode(payload)
        except MessageRejected as exc:
            assert exc.reason
            assert len(exc.reason) < 400


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64).map(lambda b: b'{"v":1,"seq":1,"samples":[' + b))
def test_decoders_raise_only_message_rejected_on_json_prefixed_garbage(payload: bytes) -> None:
    for decode in (wire.decode_telemetry, wire.decode_event, wire.decode_state):
        with pytest.raises(MessageRejected):
            decode(payload)
