"""Property-based tests of SenML decoding and translation (hypothesis)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import cbor2
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.senml import BadSenml, Record, decode_cbor, decode_json, encode_cbor, encode_json
from gateway.translate import READING_UNITS, translate
from sealscope import wire

NOW = 1_718_000_000.0
DEV = "PROP-V-000001"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:./_-]{0,20}", fullmatch=True)
units = st.none() | st.sampled_from(["kPa", "Cel", "mm3/s", "%", "V", "dBm"])
abs_times = st.integers((2**28 + 1) * 1000, 4_102_444_800_000).map(lambda ms: ms / 1000)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
values = finite | st.integers(-(2**53), 2**53) | st.text(max_size=40) | st.booleans()
records = st.builds(Record, name=names, time_s=abs_times, value=values, unit=units)


def _plain(r: Record) -> dict[str, Any]:
    label = "vb" if isinstance(r.value, bool) else "vs" if isinstance(r.value, str) else "v"
    out: dict[str, Any] = {"n": r.name, "t": r.time_s, label: r.value}
    if r.unit is not None:
        out["u"] = r.unit
    return out


@FAST
@given(st.lists(records, min_size=1, max_size=20), st.sampled_from(["cbor", "json"]))
def test_senml_round_trip_without_base_fields(recs: list[Record], fmt: str) -> None:
    pack = [_plain(r) for r in recs]
    if fmt == "cbor":
        decoded = decode_cbor(encode_cbor(pack), now_s=NOW)
    else:
        decoded = decode_json(encode_json(pack), now_s=NOW)
    assert decoded == recs


@FAST
@given(
    st.lists(records, min_size=1, max_size=20),
    st.from_regex(r"[a-z]{1,8}:", fullmatch=True),
    st.integers(2**28 + 1, 4_000_000_000),
    st.sampled_from(["cbor", "json"]),
)
def test_senml_round_trip_with_base_name_and_time(
    recs: list[Record], base_name: str, base_time: int, fmt: str
) -> None:
    pack: list[dict[str, Any]] = []
    for i, r in enumerate(recs):
        record = _plain(r)
        record["t"] = r.time_s - base_time
        if i == 0:
            record |= {"bn": base_name, "bt": base_time}
        pack.append(record)
    raw = encode_cbor(pack) if fmt == "cbor" else encode_json(pack)
    decoded = (decode_cbor if fmt == "cbor" else decode_json)(raw, now_s=NOW)
    assert [d.name for d in decoded] == [base_name + r.name for r in recs]
    assert [d.value for d in decoded] == [r.value for r in recs]
    for d, r in zip(decoded, recs, strict=True):
        assert d.time_s == pytest.approx(r.time_s, abs=1e-6)


@FAST
@given(st.binary(max_size=300))
def test_senml_arbitrary_bytes_raise_only_bad_senml(data: bytes) -> None:
    for decoder in (decode_cbor, decode_json):
        try:
            recs = decoder(data, now_s=NOW)
        except BadSenml:
            continue
        with contextlib.suppress(BadSenml):
            translate(recs, device_id=DEV)


cbor_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.sampled_from(["p_in", "seq", "event", "fw", "cfg:x", "cmd:c-1", "leak_alarm", "kPa"])
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-8, 9) | st.text(max_size=3), inner, max_size=6)
    ),
    max_leaves=30,
)


@FAST
@given(st.lists(st.dictionaries(st.integers(-8, 9), cbor_values, max_size=7), max_size=6))
def test_senml_arbitrary_cbor_structures_raise_only_bad_senml(pack: list[Any]) -> None:
    raw = cbor2.dumps(pack)
    try:
        recs = decode_cbor(raw, now_s=NOW)
        translate(recs, device_id=DEV)
    except BadSenml:
        pass
    try:
        recs = decode_json(msgspec.json.encode(_jsonable(pack)), now_s=NOW)
        translate(recs, device_id=DEV)
    except BadSenml:
        pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        labels = {
            -2: "bn",
            -3: "bt",
            -4: "bu",
            -5: "bv",
            0: "n",
            1: "u",
            2: "v",
            3: "vs",
            4: "vb",
            6: "t",
        }
        return {labels.get(k, str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        return float(value)
    return value


def _field_value(field: str) -> st.SearchStrategy[float]:
    # the wire schema's range of each field, from its msgspec metadata
    schema = msgspec.json.schema(wire.Sample)
    prop = schema["$defs"]["Sample"]["properties"][field]["anyOf"][0]
    return st.floats(prop["minimum"], prop["maximum"], allow_nan=False, allow_infinity=False)


samples = st.fixed_dictionaries(
    {"t": st.integers(1_000_000_000_000, 4_000_000_000_000).map(lambda ms: ms / 1000)},
    optional={field: _field_value(field) for field in READING_UNITS},
).filter(lambda s: len(s) > 1)


@FAST
@given(
    st.lists(samples, min_size=1, max_size=8, unique_by=lambda s: s["t"]),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["cbor", "json"]),
    st.booleans(),
)
def test_translate_round_trip_samples_to_telemetry(
    generated: list[dict[str, float]], seq: int, fmt: str, use_stems: bool
) -> None:
    pack: list[dict[str, Any]] = [{"bn": f"urn:dev:sn:{DEV}:", "n": "seq", "v": seq}]
    for sample in generated:
        for field, value in sample.items():
            if field == "t":
                continue
            stem, field_units = READING_UNITS[field]
            name, unit = (stem, next(iter(field_units))) if use_stems else (field, None)
            record: dict[str, Any] = {"n": name, "t": sample["t"], "v": value}
            if unit is not None:
                record["u"] = unit
            pack.append(record)
    raw = encode_cbor(pack) if fmt == "cbor" else encode_json(pack)
    recs = (decode_cbor if fmt == "cbor" else decode_json)(raw, now_s=NOW)
    (message,) = translate(recs, device_id=DEV).messages
    telemetry = wire.decode_telemetry(message.payload)
    assert telemetry.seq == seq
    expected = sorted(generated, key=lambda s: s["t"])
    got = [
        {"t": s.t, **{f: getattr(s, f) for f in READING_UNITS if getattr(s, f) is not None}}
        for s in telemetry.samples
    ]
    assert got == expected
