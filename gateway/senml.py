"""SenML (RFC 8428) packs in CBOR and JSON, decoded into resolved records.

``decode(data, content_format=..., now_s=...)`` is the only way uplink bytes become
``Record``s. Base fields are applied as RFC 8428 section 4.6 says (base name prefixed,
base time and base value added, base unit as the default unit), and a resolved time of
2**28 or less is relative to ``now_s``, the moment the gateway received the pack
(section 4.5.3). Whatever the bytes, the only exception is ``BadSenml``: a
``MalformedMessage`` whose ``reason`` says which record and what was wrong.

What is refused rather than guessed: labels ending in ``_`` (must-understand extensions
this build does not know), sums (``s``), data values (``vd``), ``bver`` above 10, a
record with a name but no value, more than one value in a record, non-finite numbers,
and (before any parser runs, ``gateway.prescan``) a pack over ``MAX_PACK_BYTES``, nested
deeper than ``MAX_DEPTH``, with a duplicate label in a record, or (CBOR) with a tag.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import cbor2
import msgspec

from gateway.prescan import check_cbor, check_json
from sealscope.errors import BadSenml, MalformedMessage

__all__ = [
    "CBOR_LABELS",
    "CONTENT_FORMAT_SENML_CBOR",
    "CONTENT_FORMAT_SENML_JSON",
    "BadSenml",
    "Record",
    "Value",
    "decode",
    "decode_cbor",
    "decode_json",
    "encode_cbor",
    "encode_json",
]

CONTENT_FORMAT_SENML_JSON: Final = 110
CONTENT_FORMAT_SENML_CBOR: Final = 112

# RFC 8428 section 6, table 6
CBOR_LABELS: Final[Mapping[str, int]] = {
    "bver": -1,
    "bn": -2,
    "bt": -3,
    "bu": -4,
    "bv": -5,
    "bs": -6,
    "n": 0,
    "u": 1,
    "v": 2,
    "vs": 3,
    "vb": 4,
    "s": 5,
    "t": 6,
    "ut": 7,
    "vd": 8,
}
_LABEL_BY_INT: Final = {i: name for name, i in CBOR_LABELS.items()}
# RFC 8428 assigns bs the label -6; -16 (as some drafts and notes have it) is accepted too.
_LABEL_BY_INT[-16] = "bs"

SENML_VERSION: Final = 10
RELATIVE_TIME_LIMIT_S: Final = 2**28
MAX_RECORDS: Final = 10_000
MAX_STRING: Final = 1024
MAX_PACK_BYTES: Final = 64 * 1024
# a pack is an array of maps of scalars (depth 2); room for extension labels' values
MAX_DEPTH: Final = 8
_INT_LIMIT: Final = 10**300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9:./_-]*")
_NUMERIC_LABELS: Final = frozenset({"bt", "bv", "bs", "v", "s", "t", "ut"})
_STRING_LABELS: Final = frozenset({"bn", "bu", "n", "u", "vs"})

Value = int | float | str | bool


@dataclass(frozen=True, slots=True)
class Record:
    """One resolved SenML record: full name, absolute time (Unix s), unit and one value."""

    name: str
    time_s: float
    value: Value
    unit: str | None = None


def decode(data: bytes, *, content_format: int, now_s: float) -> list[Record]:
    if content_format == CONTENT_FORMAT_SENML_CBOR:
        return decode_cbor(data, now_s=now_s)
    if content_format == CONTENT_FORMAT_SENML_JSON:
        return decode_json(data, now_s=now_s)
    raise BadSenml(f"content-format {content_format} is not SenML CBOR (112) or JSON (110)")


def decode_cbor(data: bytes, *, now_s: float) -> list[Record]:
    try:
        check_cbor(data, max_bytes=MAX_PACK_BYTES, max_depth=MAX_DEPTH, what="the CBOR pack")
    except MalformedMessage as exc:
        raise BadSenml(exc.reason) from exc
    try:
        pack = cbor2.loads(data, max_depth=MAX_DEPTH, allow_duplicate_keys=False)
    except Exception as exc:  # cbor2 raises many kinds on hostile input; all mean "bad frame"
        raise BadSenml(f"not valid CBOR: {type(exc).__name__}: {exc}") from exc
    return _resolve(pack, now_s=now_s, labels=_cbor_labels)


def decode_json(data: bytes, *, now_s: float) -> list[Record]:
    try:
        check_json(data, max_bytes=MAX_PACK_BYTES, max_depth=MAX_DEPTH, what="the JSON pack")
    except MalformedMessage as exc:
        raise BadSenml(exc.reason) from exc
    try:
        pack = msgspec.json.decode(data)
    except msgspec.MsgspecError as exc:
        raise BadSenml(f"not valid JSON: {exc}") from exc
    return _resolve(pack, now_s=now_s, labels=_json_labels)


def encode_json(pack: Sequence[Mapping[str, Any]]) -> bytes:
    """A SenML JSON pack from records keyed by label name (for devices, tests and benches)."""
    return json.dumps(list(pack), separators=(",", ":"), allow_nan=False).encode()


def encode_cbor(pack: Sequence[Mapping[str, Any]]) -> bytes:
    """A SenML CBOR pack: label names become the integer labels of RFC 8428 section 6."""
    return cbor2.dumps([{CBOR_LABELS.get(k, k): v for k, v in r.items()} for r in pack])


# -- resolution -----------------------------------------------------------------------


def _cbor_labels(record: Mapping[Any, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(key, int) and not isinstance(key, bool):
            name = _LABEL_BY_INT.get(key)
            if name is None:
                continue  # an extension label this build does not know; RFC: ignore
            out[name] = value
        elif isinstance(key, str):
            if key.endswith("_"):
                raise BadSenml(f"{where}: must-understand label {key!r} is not supported")
            # string keys are extension labels in SenML CBOR; ignored like unknown ones
        else:
            raise BadSenml(f"{where}: label {key!r} is neither an integer nor a string")
    return out


def _json_labels(record: Mapping[Any, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in CBOR_LABELS:
            out[key] = value
        elif isinstance(key, str) and key.endswith("_"):
            raise BadSenml(f"{where}: must-understand label {key!r} is not supported")
    return out


def _number(value: Any, label: str, where: str) -> int | float:
    kind = type(value)
    if kind is float:
        if value - value == 0.0 and -1e300 <= value <= 1e300:  # NaN and inf fail this
            return value
    elif kind is int and -_INT_LIMIT <= value <= _INT_LIMIT:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadSenml(f"{where}: {label} must be a number, not {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite or abs(value) > 1e300:
        raise BadSenml(f"{where}: {label} is not a finite number")
    return value


def _string(value: Any, label: str, where: str) -> str:
    if not isinstance(value, str):
        raise BadSenml(f"{where}: {label} must be a text string, not {type(value).__name__}")
    if len(value) > MAX_STRING:
        raise BadSenml(f"{where}: {label} is longer than {MAX_STRING} characters")
    return value


def _check_types(fields: dict[str, Any], where: str) -> None:
    for label, value in fields.items():
        if label in _NUMERIC_LABELS:
            _number(value, label, where)
        elif label in _STRING_LABELS:
            _string(value, label, where)
        elif label == "vb":
            if not isinstance(value, bool):
                raise BadSenml(f"{where}: vb must be a boolean, not {type(value).__name__}")
        elif label == "bver":
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadSenml(f"{where}: bver must be an integer")
            if value > SENML_VERSION:
                raise BadSenml(f"{where}: SenML version {value} is newer than {SENML_VERSION}")
        elif label == "vd":
            raise BadSenml(f"{where}: data values (vd) are not a sealscope reading")


def _resolve(pack: Any, *, now_s: float, labels: Any) -> list[Record]:
    if not isinstance(pack, list):
        raise BadSenml(f"a SenML pack is an array of records, not {type(pack).__name__}")
    if not pack:
        raise BadSenml("the SenML pack holds no records")
    if len(pack) > MAX_RECORDS:
        raise BadSenml(f"the SenML pack holds {len(pack)} records, more than {MAX_RECORDS}")
    base_name = ""
    base_time: int | float = 0
    base_unit: str | None = None
    base_value: int | float = 0
    records: list[Record] = []
    for i, raw in enumerate(pack):
        where = f"records[{i}]"
        if not isinstance(raw, dict):
            raise BadSenml(f"{where}: a record is a map, not {type(raw).__name__}")
        fields = labels(raw, where)
        _check_types(fields, where)
        if "bn" in fields:
            base_name = fields["bn"]
        if "bt" in fields:
            base_time = fields["bt"]
        if "bu" in fields:
            base_unit = fields["bu"]
        if "bv" in fields:
            base_value = fields["bv"]
        if "s" in fields:
            raise BadSenml(f"{where}: sums (s) are not a sealscope reading")
        values = [label for label in ("v", "vs", "vb") if label in fields]
        if not values:
            if "n" in fields or not ({"bn", "bt", "bu", "bv", "bs", "bver"} & fields.keys()):
                raise BadSenml(f"{where}: the record has no value (v, vs or vb)")
            continue  # a record carrying base fields only
        if len(values) > 1:
            raise BadSenml(f"{where}: the record has more than one value ({', '.join(values)})")
        name = base_name + fields.get("n", "")
        if not name or not _NAME.fullmatch(name):
            raise BadSenml(f"{where}: name {name!r} is not a valid SenML name")
        label = values[0]
        value: Value = fields[label]
        if label == "v":
            # both checked to be numbers within +-1e300: stays finite
            value = fields["v"] + base_value
        t = base_time + fields.get("t", 0)
        if t <= RELATIVE_TIME_LIMIT_S:
            t = now_s + t
        time_s = t
        unit = fields.get("u", base_unit)
        records.append(Record(name=name, time_s=float(time_s), value=value, unit=unit))
    return records
