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
from sealscope.errors import MalformedMessage, MessageRejected, UnknownSchemaVersion

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
