"""Bounds checked before parsing: depth, size, duplicate keys, CBOR tags and trailing bytes."""

from __future__ import annotations

import cbor2
import pytest

from gateway.prescan import check_cbor, check_json
from sealscope.errors import MalformedMessage


def json_ok(data: bytes, depth: int = 4) -> None:
    check_json(data, max_bytes=1000, max_depth=depth)


def cbor_ok(data: bytes, depth: int = 4) -> None:
    check_cbor(data, max_bytes=1000, max_depth=depth)


@pytest.mark.parametrize(
    "data",
    [
        b'[{"n":"seq","v":1},{"n":"p","v":2}]',
        b'{"a":{"b":[1,2]}}',
        b'["[[[[[[[[", "\\"{{{{"]',  # brackets inside strings do not nest
        b'{"a":1,"b":{"a":2}}',  # the same key in another object
        b'["abc',  # unterminated: the parser's to report
        b"]]]]",
        b"",
    ],
)
def test_prescan_json_passes_what_the_parser_should_judge(data: bytes) -> None:
    json_ok(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 5 + b"]" * 5, "nested deeper than 4"),
        (b"[" * 999, "nested deeper than 4"),
        (b'{"v":1,"v":2}', "key 'v' twice"),
        (b'[{"n":"x","\\u006e":"y"}]', "key 'n' twice"),
        (b"[" + b" " * 1000 + b"]", "larger than 1000"),
    ],
)
def test_prescan_json_refuses_depth_size_and_duplicate_keys(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        json_ok(data)


@pytest.mark.parametrize(
    "data",
    [
        cbor2.dumps([{0: "seq", 2: 1}, {0: "p", 2: 1.5, 6: -3}]),
        b"\x9f\xbf\x00\x7f\x61s\x62eq\xff\x02\x01\xff\xff",  # indefinite lengths
        b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # a giant count: truncated, decoder's to say
        b"\x81\xa1",  # truncated
    ],
)
def test_prescan_cbor_passes_what_the_decoder_should_judge(data: bytes) -> None:
    cbor_ok(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x81" * 5 + b"\x80", "nested deeper than 4"),
        (b"\x9f" * 5 + b"\xff" * 5, "nested deeper than 4"),
        (b"\x81\xd8\x1c\x81\xd8\x1d\x00", "tag 28"),  # a shared reference: a cycle
        (b"\xc2\x41\x01", "tag 2"),
        (cbor2.dumps([1]) + b"\x00", "1 bytes after"),
        (b"\xff", "break outside"),
        (b"\x1c", "reserved"),
        (b"\x80" * 1001, "larger than 1000"),
    ],
)
def test_prescan_cbor_refuses_depth_tags_and_trailing_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        cbor_ok(data)
