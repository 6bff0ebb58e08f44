"""Password hashing for people: argon2id (argon2-cffi) with its default, OWASP-level cost.

``verify`` also answers for an unknown user by checking against a fixed dummy hash, so the
time a sign-in takes does not tell whether the username exists.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MIN_PASSWORD_CHARS", "hash_password", "verify_nobody", "verify_password"]

MIN_PASSWORD_CHARS: Final = 12
_HASHER: Final = PasswordHasher()
_DUMMY_HASH: Final = _HASHER.hash("sealscope dummy password, never matches a sign-in")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_nobody(password: str) -> bool:
    """Spend the time of one verification and fail (the username does not exist)."""
    verify_password(_DUMMY_HASH, password)
    return False
