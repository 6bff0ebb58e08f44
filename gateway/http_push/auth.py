"""Who may push: the platforms' shared secrets, and the checks that refuse everyone else.

Every comparison of a secret or a signature is ``hmac.compare_digest``. Refusals carry an
HTTP status (401: nothing to check, 403: checked and wrong) and a reason that never holds
the secret or the signature, so both can be logged as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from sealscope.errors import PushRefused

from .notification import Platform

__all__ = [
    "PlatformCredentials",
    "PushRefused",
    "check_url_token",
    "onenet_signature",
    "onenet_signature_matches",
]

_MIN_URL_TOKEN_CHARS: Final = 16


@dataclass(frozen=True, slots=True, repr=False)
class PlatformCredentials:
    """The secret each platform proves itself with; ``None`` disables that platform's route.

    * ``huawei_token`` / ``ctwing_token``: neither platform signs its HTTP push, so the
      callback URL registered with it carries this secret (``?token=...``); at least 16
      characters, and serve the route over HTTPS only.
    * ``onenet_token``: the token configured on the OneNET push instance; it keys the
      URL-verification and message signatures, base64(md5(token + nonce + msg)).
    """

    huawei_token: str | None = None
    ctwing_token: str | None = None
    onenet_token: str | None = None

    def __post_init__(self) -> None:
        for name in ("huawei_token", "ctwing_token"):
            token = getattr(self, name)
            if token is not None and len(token) < _MIN_URL_TOKEN_CHARS:
                raise ValueError(f"{name} must be at least {_MIN_URL_TOKEN_CHARS} characters")
        if self.onenet_token is not None and not self.onenet_token:
            raise ValueError("onenet_token may not be empty")

    def __repr__(self) -> str:
        enabled = [p for p in ("huawei", "ctwing", "onenet") if self.token(p) is not None]
        return f"PlatformCredentials(enabled={enabled})"

    def token(self, platform: Platform) -> str | None:
        token: str | None = getattr(self, f"{platform}_token")
        return token


def check_url_token(request: web.Request, expected: str) -> None:
    """The callback-URL secret of a platform that does not sign (query ``token``, or an
    ``Authorization: Bearer`` header added by a proxy in front)."""
    given = request.query.get("token")
    if given is None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else None
    if not given:
        raise PushRefused(401, "no token in the callback URL")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise PushRefused(403, "wrong token in the callback URL")


def onenet_signature(token: str, nonce: str, msg: bytes) -> str:
    """OneNET's signature: base64 of the MD5 of token, nonce and message, concatenated."""
    digest = hashlib.md5(token.encode() + nonce.encode() + msg, usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode()


def onenet_signature_matches(given: str, token: str, nonce: str, msgs: list[bytes]) -> bool:
    """True if ``given`` signs any of ``msgs`` (the same message as the platform may have
    serialised it). A '+' turned into ' ' by URL decoding and dropped '=' padding (OneNET's
    own PHP receiver strips it) still match."""
    normalised = given.replace(" ", "+").rstrip("=").encode()
    matched = False
    for msg in msgs:
        expected = onenet_signature(token, nonce, msg).rstrip("=").encode()
        matched |= hmac.compare_digest(normalised, expected)
    return matched
