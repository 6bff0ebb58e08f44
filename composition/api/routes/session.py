"""Browser sign-in: ``POST /api/v1/session`` sets the session cookie, ``DELETE`` clears it,
``GET`` says who is calling (with either credential) and hands the page its CSRF token.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no cross-site request carries
it) and Secure when the request came over https. Failed sign-ins are throttled per
username and per source address (429 with Retry-After).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from composition.api.auth import SESSION_COOKIE, AuthenticatorDep, PrincipalDep
from composition.api.models import ErrorBody
from sealscope.accounts import Principal
from sealscope.accounts.models import OrgKind
from sealscope.accounts.tokens import csrf_token_for

__all__ = ["router"]

router = APIRouter(prefix="/session", tags=["session"])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class WhoAmI(BaseModel):
    name: str = Field(description="the username, or the API key's name")
    via: Literal["session", "key", "jwt"]
    org_id: int
    org_kind: OrgKind
    csrf_token: str | None = Field(
        None, description="session only: send it as X-CSRF-Token on POST, PUT, DELETE"
    )


def _who(principal: Principal, session_token: str | None) -> WhoAmI:
    return WhoAmI(
        name=principal.name,
        via=principal.via,
        org_id=principal.org_id,
        org_kind=principal.org_kind,
        csrf_token=csrf_token_for(session_token) if session_token else None,
    )


@router.post(
    "",
    response_model=WhoAmI,
    responses={
        401: {"model": ErrorBody, "description": "wrong username or password"},
        429: {"model": ErrorBody, "description": "too many failed sign-ins; see Retry-After"},
    },
)
def sign_in(
    body: SignIn, request: Request, response: Response, authenticator: AuthenticatorDep
) -> WhoAmI:
    source = request.client.host if request.client else "unknown"
    token, principal = authenticator.sign_in(body.username, body.password, source=source)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(authenticator.session_ttl_s),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return _who(principal, token)


@router.get("", response_model=WhoAmI, responses={401: {"model": ErrorBody}})
def who_am_i(principal: PrincipalDep, request: Request, response: Response) -> WhoAmI:
    response.headers["Cache-Control"] = "no-store"
    token = request.cookies.get(SESSION_COOKIE) if principal.via == "session" else None
    return _who(principal, token)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
def sign_out(
    principal: PrincipalDep, request: Request, authenticator: AuthenticatorDep
) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if principal.via == "session" and token:
        authenticator.sign_out(token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
