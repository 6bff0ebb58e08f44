"""Hostile MQTT payloads for the decoder and ingest fuzz tests (hypothesis strategies).

Each strategy draws bytes a device with broken or malicious firmware could publish: arbitrary
bytes, deep nesting, numbers JSON cannot hold, duplicate keys, giant arrays, invalid UTF-8,
truncated messages and CBOR where JSON belongs.
"""

from __future__ import annotations

import json

import cbor2
from hypothesis import strategies as st

from sealscope.wire import SAMPLE_FIELDS

T0 = 1_763_800_000

_good_sample = st.fixed_dictionaries(
    {"t": st.integers(T0, T0 + 10**6)},
    optional={f: st.floats(0, 100, allow_nan=False) for f in SAMPLE_FIELDS[:6]},
)
_good_doc = st.builds(
    lambda seq, samples: {"v": 1, "seq": seq, "samples": samples},
    st.integers(0, 2**32 - 1),
    st.lists(_good_sample, min_size=1, max_size=4),
)


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _nested(depth: int, opener: bytes, closer: bytes, inner: bytes = b"1") -> bytes:
    return opener * depth + inner + closer * depth


# deep nesting in the positions a decoder might skip or recurse into
deep_nesting = st.builds(
    lambda depth, brackets, where: where.replace(b"X", _nested(depth, *brackets)),
    st.integers(9, 20_000),
    st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]),
    st.sampled_from(
        [
            b"X",
            b'{"v":1,"seq":1,"samples":X}',
            b'{"v":1,"seq":1,"samples":[X]}',
            b'{"v":1,"seq":1,"samples":[{"t":1763800000,"p_in_kpa":X}]}',
            b'{"v":1,"unknown":X}',
            b'{"v":1,"t":1763800000,"fw":"1","config":{"k":X}}',
        ]
    ),
)

_bad_number = st.sampled_from(
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"1" + b"0" * 400, b"9" * 5000]
)
bad_numbers = st.builds(
    lambda number, field: (
        b'{"v":1,"seq":1,"samples":[{"t":1763800000,"' + field.encode() + b'":' + number + b"}]}"
    ),
    _bad_number,
    st.sampled_from(["t", *SAMPLE_FIELDS]),
)

duplicate_keys = st.builds(
    lambda field, a, b: (
        f'{{"v":1,"seq":1,"samples":[{{"t":{T0},"{field}":{a},"{field}":{b}}}]}}'.encode()
    ),
    st.sampled_from(SAMPLE_FIELDS),
    st.integers(0, 50),
    st.integers(0, 50),
)

giant_arrays = st.sampled_from(
    [
        # 10,001 samples: inside the byte bound, over the schema's 10,000
        b'{"v":1,"seq":1,"samples":[' + b'{"t":1763800000},' * 10_000 + b'{"t":1763800000}]}',
        # over the byte bound: refused unparsed
        b'{"v":1,"seq":1,"samples":[' + b"0," * 150_000 + b"0]}",
    ]
)

invalid_utf8 = st.builds(
    lambda junk: b'{"v":1,"seq":1,"t":1763800000,"kind":"tamper","detail":"' + junk + b'"}',
    st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]),
)

truncated = st.builds(
    lambda doc, cut: _json(doc)[: max(1, int(len(_json(doc)) * cut))],
    _good_doc,
    st.floats(0.0, 0.99),
)

cbor = st.builds(cbor2.dumps, _good_doc)

arbitrary_bytes = st.binary(max_size=512)

hostile_payloads = st.one_of(
    arbitrary_bytes,
    deep_nesting,
    bad_numbers,
    duplicate_keys,
    giant_arrays,
    invalid_utf8,
    truncated,
    cbor,
)
