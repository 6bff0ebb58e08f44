"""SenML decoding: base fields, relative times, CBOR labels, and what is refused."""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest

from gateway.senml import (
    BadSenml,
    Record,
    decode,
    decode_cbor,
    decode_json,
    encode_cbor,
    encode_json,
)

NOW = 1_718_000_000.0


def both(pack: list[dict[str, Any]]) -> list[Record]:
    """Decode a pack as JSON and as CBOR; they must agree."""
    from_json = decode_json(encode_json(pack), now_s=NOW)
    from_cbor = decode_cbor(encode_cbor(pack), now_s=NOW)
    assert from_json == from_cbor
    return from_json


def test_senml_base_fields_resolve_as_rfc8428_says() -> None:
    records = both(
        [
            {
                "bn": "urn:dev:sn:X-1:",
                "bt": 1_717_999_000,
                "bu": "kPa",
                "bv": 100,
                "n": "p_in",
                "v": 1,
            },
            {"n": "p_out", "t": 60, "v": 2.5},
            {"n": "leak", "u": "mm3/s", "t": 120, "v": 3},
            {"bn": "other:", "n": "x", "vs": "hi"},
            {"n": "y", "vb": True},
        ]
    )
    assert records == [
        Record("urn:dev:sn:X-1:p_in", 1_717_999_000.0, 101, "kPa"),
        Record("urn:dev:sn:X-1:p_out", 1_717_999_060.0, 102.5, "kPa"),
        Record("urn:dev:sn:X-1:leak", 1_717_999_120.0, 103, "mm3/s"),
        # base value applies to numeric values only; base unit stays the default
        Record("other:x", 1_717_999_000.0, "hi", "kPa"),
        Record("other:y", 1_717_999_000.0, True, "kPa"),
    ]


def test_senml_small_times_are_relative_to_receipt() -> None:
    records = both(
        [{"n": "a", "v": 1}, {"n": "b", "t": -120, "v": 1}, {"n": "c", "t": 2**28, "v": 1}]
    )
    assert [r.time_s for r in records] == [NOW, NOW - 120, NOW + 2**28]
    absolute = both([{"n": "a", "t": 2**28 + 1, "v": 1}])
    assert absolute[0].time_s == 2**28 + 1


def test_senml_cbor_uses_integer_labels() -> None:
    raw = cbor2.dumps([{-2: "urn:dev:sn:X-1:", -3: 1_717_999_000, 0: "temp", 1: "Cel", 2: 21.5}])
    assert decode_cbor(raw, now_s=NOW) == [
        Record("urn:dev:sn:X-1:temp", 1_717_999_000.0, 21.5, "Cel")
    ]
    # unknown integer and string labels are ignored, as the RFC says
    raw = cbor2.dumps([{0: "a", 2: 1, 99: "x", "ext": 1}])
    assert decode_cbor(raw, now_s=NOW) == [Record("a", NOW, 1)]


def test_senml_base_only_record_is_skipped() -> None:
    assert both([{"bn": "d:", "bt": 1_717_999_000}, {"n": "a", "v": 1}]) == [
        Record("d:a", 1_717_999_000.0, 1)
    ]


@pytest.mark.parametrize(
    ("pack", "reason"),
    [
        ({"n": "a", "v": 1}, "array of records"),
        ([], "no records"),
        ([1], "is a map"),
        ([{"n": "a"}], "no value"),
        ([{"n": "a", "v": 1, "vs": "x"}], "more than one value"),
        ([{"n": "a", "v": "1"}], "v must be a number"),
        ([{"n": "a", "v": True}], "v must be a number"),
        ([{"n": "a", "vb": 1}], "vb must be a boolean"),
        ([{"n": 5, "v": 1}], "n must be a text string"),
        ([{"n": "a", "t": "now", "v": 1}], "t must be a number"),
        ([{"n": "a", "s": 1}], "sums"),
        ([{"n": "a", "vd": "AAE"}], "data values"),
        ([{"bver": 11, "n": "a", "v": 1}], "newer than 10"),
        ([{"n": "a", "v": 1, "bad_": 1}], "must-understand"),
        ([{"n": "a b", "v": 1}], "not a valid SenML name"),
        ([{"n": "", "v": 1}], "not a valid SenML name"),
        ([{"n": "a", "v": 1e308, "bv": 1e308}], "not a finite number"),
    ],
)
def test_senml_json_refuses_bad_packs(pack: Any, reason: str) -> None:
    import json

    with pytest.raises(BadSenml, match=reason):
        decode_json(json.dumps(pack).encode(), now_s=NOW)


@pytest.mark.parametrize(
    "raw",
    [
        cbor2.dumps([{0: "a", 2: 1}])[:-1],  # truncated
        b"\x9f",  # indefinite array, never ended
        cbor2.dumps([{0: "a", 2: float("nan")}]),
        cbor2.dumps([{0: "a", 2: float("inf")}]),
        cbor2.dumps([{0: "a", 2: 10**400}]),  # a bignum
        cbor2.dumps([{1.5: "a", 2: 1}]),
        cbor2.dumps([{0: "a", 2: 1, "x_": 1}]),
        cbor2.dumps("not a pack"),
        b"",
    ],
)
def test_senml_cbor_refuses_bad_frames(raw: bytes) -> None:
    with pytest.raises(BadSenml):
        decode_cbor(raw, now_s=NOW)


def test_senml_decode_dispatches_on_content_format() -> None:
    pack = [{"n": "a", "v": 1}]
    assert decode(encode_json(pack), content_format=110, now_s=NOW) == decode(
        encode_cbor(pack), content_format=112, now_s=NOW
    )
    with pytest.raises(BadSenml, match="content-format 50"):
        decode(b"[]", content_format=50, now_s=NOW)


def test_senml_values_stay_finite() -> None:
    (record,) = both([{"n": "a", "v": -0.0}])
    assert math.isfinite(record.value)  # type: ignore[arg-type]
