"""Hyper-parameter tables: one ``Param`` row per keyword of a detector's ``__init__``.

A detector lists its hyper-parameters in ``PARAMS`` (name, default, range, unit,
meaning). The same rows check the constructor's arguments (``check_params``), the
``[detectors.<cause>]`` tables of the TOML settings (``Param.problem``), and make the
settings table of ``analytics/README.md`` (``settings_markdown``; a test keeps the two
equal). Checks that tie two parameters together (``clear_ratio < alarm_ratio``) stay in
the constructor.

A range is written as an interval, ``(0, 2]`` or ``[3, inf)``; for a list parameter it is
the items allowed; a boolean has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "Value", "check_params", "settings_markdown"]

Value = bool | int | float | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Value
    range: str | tuple[str, ...]  # interval for numbers, allowed items for lists, "" for bool
    unit: str
    meaning: str

    def __post_init__(self) -> None:
        # a table whose own default is out of range is a bug, found at import
        if self.problem(self.default) is not None:
            raise ValueError(f"{self.name}: default {self.default!r} outside {self.range_text}")

    def problem(self, value: object) -> str | None:
        """Why ``value`` cannot be this parameter, or None when it can."""
        d = self.default
        if isinstance(d, bool):
            return None if isinstance(value, bool) else "expected true or false"
        if isinstance(d, tuple):
            if not isinstance(value, list | tuple | set | frozenset) or not all(
                isinstance(v, str) for v in value
            ):
                return "expected a list of names"
            bad = [v for v in value if v not in self.range]
            return f"{bad} not among {', '.join(self.range)}" if bad else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "expected an integer" if isinstance(d, int) else "expected a number"
        if isinstance(d, int) and not isinstance(value, int):
            return f"expected an integer, got {value!r}"
        lo, lo_closed, hi, hi_closed = _interval(str(self.range))
        above = value >= lo if lo_closed else value > lo
        below = value <= hi if hi_closed else value < hi
        # NaN fails both comparisons, so it is refused as out of range
        return None if above and below else f"{value!r} is outside {self.range}"

    def coerce(self, value: Any) -> Value:
        """A checked TOML value as the constructor takes it (lists as tuples, floats)."""
        if isinstance(self.default, tuple):
            return tuple(value)
        if isinstance(self.default, float):
            return float(value)
        return value

    @property
    def range_text(self) -> str:
        if isinstance(self.range, tuple):
            return "any of " + ", ".join(f"`{v}`" for v in self.range)
        return self.range or "true, false"


def _interval(text: str) -> tuple[float, bool, float, bool]:
    """``"(0, 2]"`` -> (0.0, False, 2.0, True)."""
    lo, hi = text[1:-1].split(",")
    return float(lo), text[0] == "[", float(hi), text[-1] == "]"


def check_params(owner: str, params: Iterable[Param], values: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first of ``params`` whose value in ``values`` is out of
    its range (a constructor passes ``locals()``; names not in the table are ignored)."""
    for p in params:
        if p.name in values:
            problem = p.problem(values[p.name])
            if problem is not None:
                raise ValueError(f"{owner}: {p.name}: {problem}")


def _fmt(value: Value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return repr(value)


def settings_markdown(tables: Mapping[str, Iterable[Param]]) -> str:
    """The README's settings tables, one per ``[detectors.<cause>]`` section."""
    out: list[str] = []
    for cause, params in tables.items():
        out += [
            f"`[detectors.{cause}]`",
            "",
            "| name | default | range | unit | meaning |",
            "|---|---|---|---|---|",
        ]
        for p in params:
            out.append(
                f"| `{p.name}` | `{_fmt(p.default)}` | {p.range_text} | {p.unit} | {p.meaning} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
