"""A strict reader of InfluxDB line protocol, for checking what the encoder writes.

It reads the way InfluxDB 1.x scans a line (a backslash makes the next character part of
the token; ``\\,``, ``\\ `` and, outside measurements, ``\\=`` unescape to the character) and
refuses everything a version could read differently or not at all: control characters, a
backslash before a backslash or at the end, comment lines, empty names or tag values,
non-finite or malformed numbers, times outside int64, anything left over.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TIME = re.compile(r"-?\d+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LineError(ValueError):
    pass


@dataclass(frozen=True)
class ParsedPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]
    t_ns: int


def _token(line: str, i: int, stops: str, escapable: str, what: str) -> tuple[str, int]:
    """(unescaped token, index of the stop character or len(line))."""
    out: list[str] = []
    while i < len(line) and line[i] not in stops:
        char = line[i]
        if char == "\\":
            if i + 1 >= len(line):
                raise LineError(f"{what}: backslash at the end of the line")
            nxt = line[i + 1]
            if nxt == "\\":
                raise LineError(f"{what}: double backslash reads differently across versions")
            if nxt in escapable:
                out.append(nxt)
            else:
                out.append(char + nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    token = "".join(out)
    if not token:
        raise LineError(f"{what}: empty at column {i}")
    return token, i


def _expect(line: str, i: int, char: str) -> int:
    if i >= len(line) or line[i] != char:
        raise LineError(f"expected {char!r} at column {i} of {line!r}")
    return i + 1


def parse_line(line: str) -> ParsedPoint:
    if _CONTROL.search(line):
        raise LineError(f"control character in {line!r}")
    if not line or line.startswith("#"):
        raise LineError(f"empty or comment line {line!r}")
    measurement, i = _token(line, 0, ", ", ", ", "measurement")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        key, i = _token(line, i + 1, ",= ", ",= ", "tag key")
        i = _expect(line, i, "=")
        value, i = _token(line, i, ", =", ",= ", "tag value")
        if key in tags:
            raise LineError(f"tag {key!r} twice")
        tags[key] = value
    i = _expect(line, i, " ")
    fields: dict[str, float] = {}
    while True:
        key, i = _token(line, i, ",= ", ",= ", "field key")
        i = _expect(line, i, "=")
        match = _NUMBER.match(line, i)
        if match is None:
            raise LineError(f"field {key!r}: no float at column {i}")
        value = float(match.group())
        if not math.isfinite(value):
            raise LineError(f"field {key!r}: {match.group()} is not finite")
        fields[key] = value
        i = match.end()
        if i < len(line) and line[i] == ",":
            i += 1
            continue
        break
    i = _expect(line, i, " ")
    match = _TIME.fullmatch(line, i)
    if match is None:
        raise LineError(f"bad timestamp in {line!r}")
    t_ns = int(match.group())
    if not -(2**63) < t_ns < 2**63 - 1:
        raise LineError(f"timestamp {t_ns} outside int64")
    return ParsedPoint(measurement, tags, fields, t_ns)


def parse_lines(text: str) -> list[ParsedPoint]:
    return [parse_line(line) for line in text.split("\n")]
