"""Standard Webhooks signatures: sign what we send, verify what a receiver gets.

``webhook-signature: v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))>`` where the
key is the base64 part of the ``whsec_...`` secret. The header may hold several
space-separated signatures (during a secret rotation); one valid ``v1`` is enough. The
timestamp bounds replays: a message outside the tolerance is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from sealscope.errors import WebhookVerificationError

__all__ = ["SECRET_PREFIX", "headers", "new_secret", "sign", "verify"]

SECRET_PREFIX = "whsec_"
_TOLERANCE_S = 300
_MAX_HEADER_CHARS = 4096


def new_secret(n_bytes: int = 32) -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(n_bytes)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ and base64") from exc
    if len(key) < 16:
        raise ValueError("a webhook secret holds at least 16 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, body: bytes, *, now_s: float | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers, signed now."""
    timestamp_s = int(time.time() if now_s is None else now_s)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": sign(secret, msg_id, timestamp_s, body),
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = _TOLERANCE_S,
    now_s: float | None = None,
) -> str:
    """Check a received message; returns its ``webhook-id`` (to de-duplicate on).

    ``received`` maps lower-case header names to values. Raises WebhookVerificationError.
    """
    msg_id = received.get("webhook-id")
    stamp = received.get("webhook-timestamp")
    signatures = received.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, -timestamp or -signature")
    if max(len(msg_id), len(stamp), len(signatures)) > _MAX_HEADER_CHARS:
        raise WebhookVerificationError("webhook header too long")
    if not stamp.isascii() or not stamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not integer seconds")
    timestamp_s = int(stamp)
    now = time.time() if now_s is None else now_s
    if abs(now - timestamp_s) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp outside the tolerance")
    expected = sign(secret, msg_id, timestamp_s, body).encode()
    for candidate in signatures.split(" "):
        if hmac.compare_digest(candidate.encode("utf-8", "replace"), expected):
            return msg_id
    raise WebhookVerificationError("no valid v1 signature")
