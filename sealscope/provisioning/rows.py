"""A fleet file, row by row: parse CSV or JSON, and hold each row to the registry's rules.

A row is judged alone, so a file with one bad row among 10,000 can still report every
fault at once: each ``RowProblem`` names the row (``line``: the CSV line the record starts
on, or the JSON array index) and every field that is wrong, with the reason.

Faults of the file as a whole (not UTF-8, unknown CSV column, not a JSON array, too many
rows) raise ``FleetFileRejected``: no row of such a file is looked at.

Columns: ``device_id`` (alias ``serial``), ``kind``, ``model``, ``dn``, ``pn``,
``seat_material``, ``leakage_class``, ``batch`` (alias ``lot``), ``firmware``, optional
``region`` and ``manufacturer`` (which must then be the uploader's own code). A device's
site is never set by a fleet file: it comes from claiming.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_args

from sealscope.errors import FleetFileRejected, TopicRejected
from sealscope.labels import check_label
from sealscope.registry import AssetKind, Device, LeakageClass
from sealscope.topics import check_device_id

__all__ = [
    "COLUMNS",
    "MAX_ROWS",
    "FieldProblem",
    "FleetRow",
    "RowProblem",
    "parse_csv",
    "parse_json",
    "validate_rows",
]

MAX_ROWS: Final = 100_000
MAX_SIZE: Final = 10_000  # dn (mm) and pn (bar), as the single-device route bounds them
COLUMNS: Final = (
    "device_id",
    "kind",
    "model",
    "dn",
    "pn",
    "seat_material",
    "leakage_class",
    "batch",
    "firmware",
    "region",
    "manufacturer",
)
_ALIASES: Final = {"serial": "device_id", "lot": "batch"}
_KINDS: Final = frozenset(get_args(AssetKind))
_LEAKAGE_CLASSES: Final = frozenset(c for c in get_args(LeakageClass) if c)
# (field, max characters, required)
_LABELS: Final = (
    ("model", 128, True),
    ("batch", 128, False),
    ("region", 128, False),
    ("seat_material", 64, False),
    ("firmware", 64, False),
)
_SHOWN_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One record as sent: ``line`` is the CSV line it starts on, or the JSON index."""

    line: int
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    device_id: str | None  # as sent (clipped), when the row named one
    problems: tuple[FieldProblem, ...] = field(default=())


def _column(name: str) -> str:
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def parse_csv(body: bytes) -> list[FleetRow]:
    """Rows of a CSV file with a header line; blank lines are skipped."""
    try:
        text = body.decode("utf-8-sig")  # spreadsheets like to write a BOM
    except UnicodeDecodeError as exc:
        raise FleetFileRejected(f"the file is not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise FleetFileRejected("the file is empty; the first line must name the columns")
        columns = [_column(c) for c in header]
        _check_header(columns)
        rows: list[FleetRow] = []
        while True:
            line = reader.line_num + 1
            record = next(reader, None)
            if record is None:
                return rows
            if not record or record == [""]:
                continue
            if len(rows) >= MAX_ROWS:
                raise FleetFileRejected(f"more than {MAX_ROWS} rows; split the file")
            if len(record) != len(columns):
                values: dict[str, Any] = {"__width__": len(record)}
                if columns[0] == "device_id" and record:
                    values["device_id"] = record[0]
                rows.append(FleetRow(line, values))
                continue
            rows.append(FleetRow(line, dict(zip(columns, record, strict=True))))
    except csv.Error as exc:
        raise FleetFileRejected(f"malformed CSV at line {reader.line_num}: {exc}") from None


def _check_header(columns: list[str]) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        shown = ", ".join(repr(c[:_SHOWN_CHARS]) for c in unknown[:5])
        raise FleetFileRejected(
            f"unknown column(s) {shown}; the columns are {', '.join(COLUMNS)}"
            " (serial and lot are accepted for device_id and batch)"
        )
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise FleetFileRejected(f"column {c!r} appears twice in the header")
        seen.add(c)
    for required in ("device_id", "kind", "model"):
        if required not in seen:
            raise FleetFileRejected(f"the header has no {required!r} column")


def parse_json(doc: Any) -> list[FleetRow]:
    """Rows of a JSON array of objects (already parsed); keys are checked per row."""
    if not isinstance(doc, list):
        raise FleetFileRejected("the body must be a JSON array of device objects")
    if len(doc) > MAX_ROWS:
        raise FleetFileRejected(f"more than {MAX_ROWS} rows; split the file")
    rows = []
    for index, item in enumerate(doc):
        if isinstance(item, dict):
            values = {_ALIASES.get(str(k), str(k)): v for k, v in item.items()}
            if len(values) != len(item):  # both "serial" and "device_id", say
                values["__alias_clash__"] = True
        else:
            values = {"__not_object__": type(item).__name__}
        rows.append(FleetRow(index, values))
    return rows


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _text(values: Mapping[str, Any], name: str, problems: list[FieldProblem]) -> str:
    value = values.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(FieldProblem(name, f"must be text, not {type(value).__name__}"))
        return ""
    return unicodedata.normalize("NFC", value)


def _size(values: Mapping[str, Any], name: str, problems: list[FieldProblem]) -> int | None:
    value = values.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(FieldProblem(name, f"must be a whole number, not {_clip(value)}"))
        return None
    if not 0 < value <= MAX_SIZE:
        problems.append(FieldProblem(name, f"{value} is out of range 1..{MAX_SIZE}"))
        return None
    return value


def _validate(row: FleetRow, manufacturer: str) -> Device | RowProblem:
    values = row.values
    raw_id = values.get("device_id")
    shown_id = _clip(raw_id) if isinstance(raw_id, str) and raw_id else None
    if "__not_object__" in values:
        reason = f"must be an object, not {values['__not_object__']}"
        return RowProblem(row.line, None, (FieldProblem("row", reason),))
    if "__width__" in values:
        reason = f"has {values['__width__']} cells; the header names a different number"
        return RowProblem(row.line, shown_id, (FieldProblem("row", reason),))
    problems: list[FieldProblem] = []
    if "__alias_clash__" in values:
        problems.append(FieldProblem("row", "names a field twice (serial/device_id, lot/batch)"))
    for key in values:
        if key not in COLUMNS and not key.startswith("__"):
            problems.append(FieldProblem(_clip(key), "unknown field"))

    device_id = _text(values, "device_id", problems)
    if not device_id:
        problems.append(FieldProblem("device_id", "must not be empty"))
    else:
        try:
            check_device_id(device_id)
        except TopicRejected:
            problems.append(
                FieldProblem(
                    "device_id",
                    "must be 3-64 letters, digits, '.', '_' or '-', starting with a letter"
                    " or digit",
                )
            )
    kind = _text(values, "kind", problems).strip().lower()
    if kind not in _KINDS:
        problems.append(FieldProblem("kind", f"must be valve or pump, not {_clip(kind)!r}"))
    leakage = _text(values, "leakage_class", problems).strip().upper()
    if leakage and leakage not in _LEAKAGE_CLASSES:
        allowed = ", ".join(sorted(_LEAKAGE_CLASSES))
        problems.append(FieldProblem("leakage_class", f"must be an ISO 5208 class ({allowed})"))
    given = _text(values, "manufacturer", problems)
    if given and given != manufacturer:
        problems.append(FieldProblem("manufacturer", "is not the uploader's manufacturer code"))

    labels: dict[str, str] = {}
    for name, max_chars, required in _LABELS:
        value = _text(values, name, problems)
        try:
            labels[name] = check_label(name, value, max_chars=max_chars, required=required)
        except ValueError as exc:
            problems.append(FieldProblem(name, str(exc).removeprefix(f"{name}: ")))
    dn = _size(values, "dn", problems)
    pn = _size(values, "pn", problems)
    if problems:
        return RowProblem(row.line, shown_id, tuple(problems))
    return Device(
        device_id=device_id,
        kind=kind,  # type: ignore[arg-type]
        manufacturer=manufacturer,
        dn=dn,
        pn=pn,
        leakage_class=leakage,  # type: ignore[arg-type]
        **labels,  # type: ignore[arg-type]  # text fields only: the label names checked above
    )


def validate_rows(
    rows: list[FleetRow], manufacturer: str
) -> Iterator[tuple[FleetRow, Device | RowProblem]]:
    """Each row with its ``Device`` or its ``RowProblem``; a repeated id is a problem."""
    first_line: dict[str, int] = {}
    for row in rows:
        verdict = _validate(row, manufacturer)
        if isinstance(verdict, Device):
            earlier = first_line.setdefault(verdict.device_id, row.line)
            if earlier != row.line:
                reason = f"repeats the device id given earlier (at {earlier})"
                verdict = RowProblem(
                    row.line, verdict.device_id, (FieldProblem("device_id", reason),)
                )
        yield row, verdict
