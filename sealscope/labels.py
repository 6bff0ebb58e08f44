"""Labels: the free-text registry fields (site, model, batch, ...) that become telemetry tags.

A label travels into InfluxDB tags, SQL filters, MQTT-facing alert text, CSV exports and
web pages, so it is held to one rule here, checked wherever a ``Device`` is made:

- printable text only: Unicode letters, marks, digits, punctuation, symbols and the plain
  space U+0020 (so Chinese site names are fine);
- no control characters (newline, tab, NUL, ...), no invisible format characters (zero-width
  space, bidi overrides), no other separators (no-break space, line separator), no private
  use or unassigned code points;
- no backslash (an escape character in line protocol and InfluxQL);
- no leading or trailing space, Unicode NFC (so one site name has one spelling);
- at most ``max_chars`` characters (128 for names, 64 for the device id, firmware and seat
  material).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["LABEL_MAX_CHARS", "LABEL_RULE", "check_label"]

LABEL_MAX_CHARS: Final = 128
LABEL_RULE: Final = (
    "printable single-line text without control characters, backslashes or edge spaces"
)

# the common case, checked in one regex call: printable ASCII except the backslash
_PLAIN_ASCII = re.compile(r"[\x21-\x5b\x5d-\x7e](?:[\x20-\x5b\x5d-\x7e]*[\x21-\x5b\x5d-\x7e])?")
_ALLOWED_CATEGORIES = frozenset({"L", "M", "N", "P", "S"})


def _refusal(value: str) -> str | None:
    if value != value.strip(" "):
        return "has a leading or trailing space"
    for i, char in enumerate(value):
        if char == "\\":
            return f"has a backslash at position {i}"
        if char != " " and unicodedata.category(char)[0] not in _ALLOWED_CATEGORIES:
            name = unicodedata.name(char, "") or f"category {unicodedata.category(char)}"
            return f"has the non-printable character U+{ord(char):04X} ({name}) at position {i}"
    if not unicodedata.is_normalized("NFC", value):
        return "is not in Unicode NFC form"
    return None


def check_label(
    field: str, value: str, *, max_chars: int = LABEL_MAX_CHARS, required: bool = False
) -> str:
    """``value`` if it keeps the label rule; else ``ValueError`` naming the field and why."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: must be text, not {type(value).__name__}")
    if not value:
        if required:
            raise ValueError(f"{field}: must not be empty")
        return value
    if len(value) > max_chars:
        raise ValueError(f"{field}: {len(value)} characters, at most {max_chars} allowed")
    if _PLAIN_ASCII.fullmatch(value):
        return value
    reason = _refusal(value)
    if reason is not None:
        raise ValueError(f"{field}: {reason}; a label is {LABEL_RULE}")
    return value
