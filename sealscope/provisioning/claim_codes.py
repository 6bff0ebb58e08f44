"""Claim codes: the short secret printed on a device's nameplate, proof of holding the device.

Ten characters from Crockford's base-32 alphabet (no I, L, O, U: nothing to misread on a
nameplate), shown as ``XXXXX-XXXXX``: 50 bits, so guessing is hopeless behind the per-caller
rate limit of the claim route. Reading a code forgives what people do when typing one:
lower case, spaces and hyphens, O for 0, I and L for 1.

Only ``HMAC-SHA256(pepper, "claim" NUL device_id NUL code)`` is stored. The pepper is a
server secret outside the database, so a copy of the database alone cannot be searched for
codes, and binding the device id in means one device's code never claims another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

__all__ = ["CLAIM_CODE_CHARS", "ClaimCodes", "new_claim_code", "normalise_claim_code"]

_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CLAIM_CODE_CHARS: Final = 10
_GROUP: Final = 5
_READ_AS: Final = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


def new_claim_code() -> str:
    # 50 random bits, five per character (32 = 2**5: uniform, no modulo bias)
    bits = secrets.randbits(5 * CLAIM_CODE_CHARS)
    code = "".join(_ALPHABET[(bits >> (5 * i)) & 31] for i in range(CLAIM_CODE_CHARS))
    return f"{code[:_GROUP]}-{code[_GROUP:]}"


def normalise_claim_code(text: str) -> str | None:
    """The code's ten characters, or None if ``text`` cannot be a claim code."""
    if len(text) > 4 * CLAIM_CODE_CHARS:
        return None
    code = text.upper().translate(_READ_AS)
    if len(code) != CLAIM_CODE_CHARS or any(c not in _ALPHABET for c in code):
        return None
    return code


class ClaimCodes:
    """Hashes and checks claim codes under one server pepper."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("a pepper needs at least 16 bytes")
        self._pepper = pepper

    def hash(self, device_id: str, code: str) -> bytes:
        normalised = normalise_claim_code(code)
        if normalised is None:
            raise ValueError("not a claim code")
        msg = b"claim\0" + device_id.encode() + b"\0" + normalised.encode()
        return hmac.new(self._pepper, msg, hashlib.sha256).digest()

    def matches(self, device_id: str, code: str, stored_hash: bytes) -> bool:
        if normalise_claim_code(code) is None:
            return False
        return hmac.compare_digest(self.hash(device_id, code), stored_hash)
