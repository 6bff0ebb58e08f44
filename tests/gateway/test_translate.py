"""SenML records -> canonical v1 messages, as gateway/README.md promises."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.senml import BadSenml, decode_cbor, decode_json, encode_cbor, encode_json
from gateway.translate import CommandReport, translate
from sealscope import wire

NOW = 1_718_000_100.0
DEV = "ACME-V-000001"
README = Path(__file__).parents[2] / "gateway" / "README.md"


def uplink(pack: list[dict[str, Any]], device: str = DEV) -> Any:
    return translate(decode_json(encode_json(pack), now_s=NOW), device_id=device)


def test_translate_readme_worked_example_gives_the_documented_messages() -> None:
    text = README.read_text()
    section = text[text.index("### Worked example") :]
    pack = json.loads(section.split("```json")[1].split("```")[0])
    documented = re.findall(r"- `(sealscope/v1/dev/[^`]+)`[^\n]*:\n  `([^`]+)`", section)
    for raw in (encode_json(pack), encode_cbor(pack)):
        decoder = decode_json if raw[:1] == b"[" else decode_cbor
        result = translate(decoder(raw, now_s=NOW), device_id=DEV)
        got = [
            (f"sealscope/v1/dev/{m.device_id}/{m.kind}", m.payload.decode())
            for m in result.messages
        ]
        assert got == documented
        assert [m.retain for m in result.messages] == [False, False, True]
        assert result.seq == 42


def test_translate_units_convert_into_the_wire_fields() -> None:
    t = 1_717_000_000
    result = uplink(
        [
            {"bt": t, "n": "seq", "v": 1},
            {"n": "p_in", "u": "bar", "v": 6},
            {"n": "p_out", "u": "Pa", "v": 250_000},
            {"n": "temp", "u": "K", "v": 300},
            {"n": "position", "u": "/", "v": 0.25},
            {"n": "motor", "u": "mA", "v": 1500},
            {"n": "speed", "u": "Hz", "v": 49},
            {"n": "leak_mm3s", "v": 7},  # the wire name itself, no unit
            {"n": "battery", "v": 3.6},  # a stem without unit: the canonical one
        ]
    )
    (telemetry,) = result.messages
    sample = wire.decode_telemetry(telemetry.payload).samples[0]
    assert sample.t == t
    assert sample.p_in_kpa == pytest.approx(600)
    assert sample.p_out_kpa == pytest.approx(250)
    assert sample.temp_c == pytest.approx(26.85)
    assert sample.position_pct == pytest.approx(25)
    assert sample.motor_a == pytest.approx(1.5)
    assert sample.speed_rpm == pytest.approx(2940)
    assert sample.leak_mm3s == 7
    assert sample.battery_v == 3.6


def test_translate_groups_samples_by_time_oldest_first() -> None:
    result = uplink(
        [
            {"bn": f"urn:dev:sn:{DEV}:", "n": "seq", "v": 9},
            {"n": "p_in", "t": -60, "v": 2},
            {"n": "p_in", "t": -120, "v": 1},
            {"n": "leak", "t": -60, "v": 5},
        ]
    )
    samples = wire.decode_telemetry(result.messages[0].payload).samples
    assert [(s.t, s.p_in_kpa, s.leak_mm3s) for s in samples] == [
        (NOW - 120, 1, None),
        (NOW - 60, 2, 5),
    ]


def test_translate_command_reports() -> None:
    result = uplink(
        [
            {"n": "seq", "v": 3},
            {"n": "cmd:c-1", "vs": "delivered"},
            {"n": "cmd:c-2", "vs": "failed:valve stuck"},
        ]
    )
    assert result.messages == ()
    assert result.command_reports == (
        CommandReport("c-1", "delivered"),
        CommandReport("c-2", "failed", "valve stuck"),
    )


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([{"n": "p_in", "v": 1}], "no seq"),
        ([{"n": "seq", "v": 1}, {"n": "seq", "v": 2}], "seq appears twice"),
        ([{"n": "seq", "v": 1.5}], "not an integer"),
        ([{"n": "seq", "v": -1}], "not an integer"),
        ([{"n": "seq", "v": 2**32}], "not an integer"),
        ([{"n": "seq", "v": 1}, {"n": "humidity", "v": 1}], "unknown record name"),
        ([{"n": "seq", "v": 1}, {"n": "p_in", "u": "psi", "v": 1}], "unit 'psi'"),
        ([{"n": "seq", "v": 1}, {"n": "p_in", "vs": "high"}], "numeric value"),
        ([{"n": "seq", "v": 1}, {"n": "p_in", "v": 1e12}], "telemetry"),
        ([{"n": "seq", "v": 1}, {"n": "p_in", "t": 5e8, "v": 1}], "telemetry"),
        ([{"n": "seq", "v": 1}, {"n": "p_in", "v": 1}, {"n": "p_in_kpa", "v": 2}], "twice"),
        ([{"n": "seq", "v": 1}, {"n": "event", "vs": "explosion"}], "not one of"),
        ([{"n": "seq", "v": 1}, {"n": "detail", "vs": "x"}], "no event"),
        ([{"n": "seq", "v": 1}, {"n": "cfg:x", "v": 1}], "need an fw"),
        ([{"n": "seq", "v": 1}, {"n": "cmd:bad id", "vs": "delivered"}], "not a valid SenML name"),
        ([{"n": "seq", "v": 1}, {"n": "cmd:c-1", "vs": "done"}], "outcome"),
        ([{"n": "seq", "v": 1}, {"n": "urn:dev:sn:OTHER-1:p_in", "v": 1}], "another device"),
        ([{"n": "seq", "v": 1}, {"n": "fw", "vs": ""}], "state"),
    ],
)
def test_translate_refuses_unusable_uplinks(records: list[dict[str, Any]], reason: str) -> None:
    with pytest.raises(BadSenml, match=reason) as info:
        uplink(records)
    assert info.value.device_id == DEV or "SenML name" in reason
