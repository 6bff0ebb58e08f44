"""Bounds checked on a body before any parser sees it: size, nesting depth, duplicate keys.

msgspec and the stdlib recurse once per nesting level and raise ``RecursionError`` (or
worse) a few thousand levels down; cbor2 decodes tags into live objects (shared
references that make cycles, regexes, bignums). A SenML pack or a platform push is a few
levels deep, so these scans refuse anything deeper, and the duplicate keys a parser would
silently collapse, with ``MalformedMessage`` naming the fault. Both scans are iterative:
no input makes them recurse.
"""

from __future__ import annotations

import json
import re
from typing import Final

from sealscope.errors import MalformedMessage

__all__ = ["check_cbor", "check_json"]

# a complete string token (and the colon that makes it a key), a lone quote (an
# unterminated string: the parser names that fault), or a bracket
_JSON_TOKEN: Final = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"(\s*:)?|"|[\[\]{}]', re.DOTALL)
_SHOWN_CHARS: Final = 40


def _size(data: bytes, max_bytes: int | None, what: str) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        raise MalformedMessage(f"{what} of {len(data)} bytes is larger than {max_bytes}")


def _deep(what: str, max_depth: int) -> MalformedMessage:
    return MalformedMessage(f"{what} is nested deeper than {max_depth} levels")


def check_json(data: bytes, *, max_bytes: int | None, max_depth: int, what: str = "JSON") -> None:
    """Refuse ``data`` if it is too large (``None``: the caller bounded it), nested too
    deep or has a duplicate key in one object. Other faults (truncation, bad UTF-8, NaN)
    are left to the parser to name."""
    _size(data, max_bytes, what)
    # per open container: the keys seen so far (an object) or None (an array)
    open_: list[set[bytes] | None] = []
    for match in _JSON_TOKEN.finditer(data):
        token = match.group()
        head = token[:1]
        if head == b'"':
            if len(token) == 1:
                return  # unterminated string
            if match.group(2) and open_ and open_[-1] is not None:
                _remember_key(open_[-1], match.group(1), what)
        elif head in b"[{":
            if len(open_) >= max_depth:
                raise _deep(what, max_depth)
            open_.append(set() if head == b"{" else None)
        elif open_:
            open_.pop()
        else:
            return  # an unbalanced close: the parser says where


def _remember_key(seen: set[bytes], raw: bytes, what: str) -> None:
    key = raw
    if b"\\" in raw:  # "a" and "\u0061" are the same key
        try:
            key = json.loads(b'"' + raw + b'"').encode("utf-8", "surrogatepass")
        except ValueError:
            return  # a bad escape: the parser's to report
    if key in seen:
        shown = key.decode("utf-8", "replace")[:_SHOWN_CHARS]
        raise MalformedMessage(f"{what} has the key {shown!r} twice in one object")
    seen.add(key)


def check_cbor(data: bytes, *, max_bytes: int, max_depth: int, what: str = "CBOR") -> None:
    """Refuse ``data`` if it is too large, nested too deep, uses a tag (SenML has none),
    or has bytes after its one item. Walks the item heads without building anything and
    stops at the first length longer than the bytes left: truncation is the decoder's to
    name (cbor2 reads such lengths lazily, so a giant one costs nothing)."""
    _size(data, max_bytes, what)
    # per open container: items still expected (None: indefinite length, up to a break)
    open_: list[int | None] = []
    pos, end = 0, len(data)
    while pos < end:
        initial = data[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        if initial == 0xFF:  # break: closes the innermost indefinite container
            if not open_ or open_[-1] is not None:
                raise MalformedMessage(f"{what} has a break outside an indefinite item")
            open_.pop()
            _item_done(open_)
            _trailing(open_, end - pos, what)
            continue
        if info < 24:
            arg = info
        elif info <= 27:
            width = 1 << (info - 24)
            if pos + width > end:
                return  # truncated head
            arg = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        elif info == 31 and major in (2, 3, 4, 5):
            arg = -1  # indefinite length
        else:
            raise MalformedMessage(f"{what} has a reserved or invalid head 0x{initial:02x}")
        if major == 6:
            raise MalformedMessage(f"{what} uses tag {arg}; SenML CBOR has no tags")
        if major in (2, 3):
            if arg < 0:
                if len(open_) >= max_depth:
                    raise _deep(what, max_depth)
                open_.append(None)  # chunks follow, then a break
                continue
            if arg > end - pos:
                return  # truncated: the decoder says so
            pos += arg
        elif major in (4, 5):
            count = None if arg < 0 else arg * (2 if major == 5 else 1)
            if count is not None and count > end - pos:  # every item takes a byte at least
                return  # truncated (or a giant count): the decoder reads lazily and says so
            if count != 0:
                if len(open_) >= max_depth:
                    raise _deep(what, max_depth)
                open_.append(count)
                continue
        _item_done(open_)
        _trailing(open_, end - pos, what)


def _trailing(open_: list[int | None], left: int, what: str) -> None:
    if not open_ and left:
        raise MalformedMessage(f"{what} has {left} bytes after its one data item")


def _item_done(open_: list[int | None]) -> None:
    """One item finished: count it against its container, closing those it completes."""
    while open_ and open_[-1] is not None:
        left = open_[-1] - 1
        if left:
            open_[-1] = left
            return
        open_.pop()
