"""InfluxDB line protocol encoding (``measurement,tag=value,... field=1.5,... t_ns``).

Every value that reaches a line is either escaped so the line reads back exactly as it was
meant, or refused with ``PointsRejected`` naming the part and why; a line never splits or
changes meaning. Escaped: ``,`` and space in measurements; ``,``, space and ``=`` in tag
keys, tag values and field keys. Refused:

- control characters (a newline ends the line and has no escape in any InfluxDB version)
  and lone surrogates (not UTF-8);
- a backslash before a backslash, an escaped character or the end of the text: 1.x keeps
  ``\\\\`` as two characters where later versions read one, so no spelling means the same to
  both (a backslash anywhere else is an ordinary character to all of them);
- a measurement starting with ``#`` (the line would be a comment), empty measurements or
  keys, the key ``time``, a tag key given twice;
- field values that are not finite numbers (``nan`` and ``inf`` are not numbers in line
  protocol), points without fields, and times outside InfluxDB's signed 64-bit range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from sealscope.errors import PointsRejected

if TYPE_CHECKING:
    from sealscope.storage import Point

__all__ = ["encode_points", "escape_field_key", "series_key"]

# InfluxDB's valid timestamps: int64 minus the two values it reserves
T_MIN_NS: Final = -(2**63) + 2
T_MAX_NS: Final = 2**63 - 2

_MEASUREMENT_ESCAPES: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES: Final = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_REFUSED: Final = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]|\\(?=[\\, =]|$)")
_SHOWN_CHARS: Final = 60


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


def _checked(text: str, what: str) -> str:
    if not text:
        raise PointsRejected(f"line protocol: {what} is empty")
    bad = _REFUSED.search(text)
    if bad is not None:
        found = bad.group()
        reason = (
            f"a backslash at position {bad.start()} would read as an escape"
            if found == "\\"
            else f"the character U+{ord(found):04X} at position {bad.start()} has no escape"
        )
        raise PointsRejected(f"line protocol: {what} {_shown(text)}: {reason}")
    return text


def series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """``measurement,tag=value,...``, tags sorted by key, empty values left out (InfluxDB
    has no empty tag values). Raises ``PointsRejected`` for what cannot be encoded."""
    if measurement.startswith("#"):
        raise PointsRejected(f"line protocol: measurement {_shown(measurement)} starts with '#'")
    parts = [_checked(measurement, "measurement").translate(_MEASUREMENT_ESCAPES)]
    seen: set[str] = set()
    for key, value in sorted(tags):
        if key in seen or key == "time":
            raise PointsRejected(f"line protocol: tag key {_shown(key)} is repeated or reserved")
        seen.add(key)
        if value:
            k = _checked(key, "tag key").translate(_KEY_ESCAPES)
            parts.append(f"{k}={_checked(value, f'tag {key!r}').translate(_KEY_ESCAPES)}")
    return ",".join(parts)


# field names repeat on every point: escape each once (bounded, names are few)
_field_keys: dict[str, str] = {}


def escape_field_key(key: str) -> str:
    escaped = _field_keys.get(key)
    if escaped is None:
        if key == "time":
            raise PointsRejected("line protocol: the field key 'time' is reserved")
        escaped = _checked(key, "field key").translate(_KEY_ESCAPES)
        if len(_field_keys) > 10_000:
            _field_keys.clear()
        _field_keys[key] = escaped
    return escaped


def _field_value(series: str, key: str, value: object) -> str:
    # bool is an int (True is 1.0); numpy scalars have __float__; text is never a number
    if isinstance(value, (int, float)) or (
        hasattr(value, "__float__") and not isinstance(value, (str, bytes))
    ):
        try:
            number = float(value)
        except (TypeError, ValueError, ArithmeticError):
            number = float("nan")
        # x - x is 0.0 exactly for finite x, nan for nan and inf
        if number - number == 0.0:
            return repr(number)
    raise PointsRejected(
        f"line protocol: field {key!r} of {series} is {value!r}, not a finite number"
    )


def _line(point: Point) -> str:
    series = point.series
    if series.problem:
        raise PointsRejected(series.problem)
    t_ns = point.t_ns
    if not isinstance(t_ns, int) or not T_MIN_NS <= t_ns <= T_MAX_NS:
        raise PointsRejected(f"line protocol: time {t_ns!r} of {series.key} is out of range")
    fields = point.fields
    try:
        # the hot path: known keys, and a finite sum proves every value finite (a sum that
        # overflows, a new key or a value that is not a number takes the checked path)
        total = sum(fields.values())
        if fields and total - total == 0.0:
            text = ",".join([f"{_field_keys[k]}={float(v)!r}" for k, v in fields.items()])
            return f"{series.key} {text} {t_ns}"
    except (KeyError, TypeError, ValueError, ArithmeticError):
        pass
    if not fields:
        raise PointsRejected(f"line protocol: a point of {series.key} has no fields")
    text = ",".join(
        [f"{escape_field_key(k)}={_field_value(series.key, k, v)}" for k, v in fields.items()]
    )
    return f"{series.key} {text} {t_ns}"


def encode_points(points: Iterable[Point]) -> str:
    """One line per point; field values are always floats so a field never changes type."""
    return "\n".join([_line(p) for p in points])
