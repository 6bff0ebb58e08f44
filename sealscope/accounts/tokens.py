"""The bearer secrets sealscope issues: API keys and session tokens, and their digests.

An API key reads ``ssk_<key id>_<secret>``: the key id (12 lowercase base32 characters) is
public and indexes the stored record, so checking a key is one primary-key lookup, never a
scan; the secret is 32 random bytes (256 bits, base64url). Stores keep only SHA-256 of the
secret. A slow password hash (argon2) protects low-entropy human passwords against offline
guessing; a 256-bit random secret cannot be guessed, offline or not, so one fast SHA-256 is
enough and keeps every authenticated request cheap. Comparisons are constant-time.

Session tokens are 32 random bytes too, stored as SHA-256. The CSRF token is derived from
the session token (SHA-256 over a domain prefix and the token), so the server
never stores it and a cross-site page, which cannot read the HttpOnly cookie, cannot
compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

__all__ = [
    "KEY_PREFIX",
    "csrf_token_for",
    "digest",
    "new_api_key",
    "new_session_token",
    "parse_api_key",
    "same_digest",
]

KEY_PREFIX: Final = "ssk_"
_KEY_ID_CHARS: Final = 12
_SECRET_BYTES: Final = 32
_API_KEY = re.compile(r"ssk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_sha256)


def _key_id() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return raw[:_KEY_ID_CHARS]


def new_api_key() -> tuple[str, str, str]:
    """-> (the full key to show once, its key id, the secret's digest to store)."""
    key_id = _key_id()
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id, digest(secret)


def parse_api_key(token: str) -> tuple[str, str] | None:
    """-> (key id, secret), or None when ``token`` is not shaped like a sealscope key."""
    match = _API_KEY.fullmatch(token)
    return (match[1], match[2]) if match else None


def new_session_token() -> tuple[str, str]:
    """-> (the cookie value, its digest to store)."""
    token = secrets.token_urlsafe(_SECRET_BYTES)
    return token, digest(token)


def csrf_token_for(session_token: str) -> str:
    return hashlib.sha256(b"sealscope-csrf\x00" + session_token.encode()).hexdigest()
