"""Who is calling: the authentication dependencies every non-public route takes.

Two ways in, both declared as OpenAPI security schemes:

- ``Authorization: Bearer ssk_<key id>_<secret>``: API keys, for machines and scripts.
  Keys are accepted in that header only, never in a URL (URLs end up in logs and history).
- the ``sealscope_session`` cookie set by ``POST /api/v1/session`` (HttpOnly,
  SameSite=Strict, Secure over https), for people on the web page. An unsafe method
  (POST, PUT, PATCH, DELETE) with the cookie must also carry ``X-CSRF-Token``, the token the
  sign-in answered with; SameSite=Strict already keeps the cookie off cross-site requests,
  the token is the second lock.

Anonymous callers get 401 on every route but ``/healthz``, the sign-in route and the page.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)

from sealscope.accounts import Authenticator, Principal
from sealscope.accounts.tokens import csrf_token_for
from sealscope.errors import Forbidden, Unauthenticated

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AuthenticatorDep",
    "PrincipalDep",
    "get_principal",
]

SESSION_COOKIE: Final = "sealscope_session"
CSRF_HEADER: Final = "X-CSRF-Token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    scheme_name="apiKey",
    bearerFormat="ssk_<key id>_<secret>",
    description="An API key: `Authorization: Bearer ssk_...` (never in a URL).",
    auto_error=False,
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="session",
    description="Browser session from `POST /api/v1/session`; unsafe methods also need "
    f"the `{CSRF_HEADER}` header.",
    auto_error=False,
)
_csrf = APIKeyHeader(
    name=CSRF_HEADER,
    scheme_name="csrf",
    description="The CSRF token the sign-in answered with (session cookie only).",
    auto_error=False,
)


def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]


def get_principal(
    request: Request,
    authenticator: AuthenticatorDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: Annotated[str | None, Depends(_cookie)],
    csrf: Annotated[str | None, Depends(_csrf)],
) -> Principal:
    if bearer is not None:
        return authenticator.principal_for_key(bearer.credentials)
    if request.headers.get("authorization"):
        raise Unauthenticated("the Authorization header must read: Bearer ssk_...")
    if session:
        principal = authenticator.principal_for_session(session)
        if request.method not in _SAFE_METHODS and not (
            csrf and hmac.compare_digest(csrf, csrf_token_for(session))
        ):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header for this session")
        return principal
    raise Unauthenticated("authentication required: an API key or a signed-in session")


PrincipalDep = Annotated[Principal, Depends(get_principal)]
