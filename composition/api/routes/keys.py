"""API keys of the caller's own organisation: list (with last use), create, revoke.

The key itself is in the answer to its creation and nowhere else, ever: the store keeps its
SHA-256. The admin manages any organisation's keys under ``/orgs/{org_id}/keys``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from composition.api.auth import AuthenticatorDep, PrincipalDep
from composition.api.models import ErrorBody
from sealscope.accounts import ApiKey, Authenticator
from sealscope.errors import NotFound

__all__ = [
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "KeysPublic",
    "create_key_for",
    "revoke_key_of",
    "router",
]

router = APIRouter(prefix="/keys", tags=["api keys"])

_DAY_S = 86_400
_NAME = r"^[^\x00-\x1f\x7f]+$"


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=_NAME, examples=["scada-export"])
    expires_in_days: int = Field(90, ge=1, le=3650, strict=True)  # true is not 1 day


def _utc(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class KeyPublic(BaseModel):
    key_id: str
    org_id: int
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="to the minute")

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        return cls(
            key_id=key.key_id,
            org_id=key.org_id,
            name=key.name,
            created_at=_utc(key.created_at),
            expires_at=_utc(key.expires_at),
            revoked_at=_utc(key.revoked_at),
            last_used_at=_utc(key.last_used_at),
        )


class KeyCreated(KeyPublic):
    key: str = Field(description="the key: shown this once, store it now")


class KeysPublic(BaseModel):
    data: list[KeyPublic]


def create_key_for(authenticator: Authenticator, org_id: int, body: KeyCreate) -> KeyCreated:
    authenticator.store.get_org(org_id)
    full, record = authenticator.create_key(
        org_id, name=body.name, expires_at=time.time() + body.expires_in_days * _DAY_S
    )
    return KeyCreated(key=full, **KeyPublic.of(record).model_dump())


def revoke_key_of(authenticator: Authenticator, org_id: int, key_id: str) -> KeyPublic:
    store = authenticator.store
    if store.get_key(key_id).org_id != org_id:
        raise NotFound("api key", key_id)
    return KeyPublic.of(store.revoke_key(key_id, t=time.time()))


@router.get("", response_model=KeysPublic)
def list_own_keys(principal: PrincipalDep, authenticator: AuthenticatorDep) -> KeysPublic:
    principal.require("keys:own")
    keys = authenticator.store.list_keys(principal.org_id)
    return KeysPublic(data=[KeyPublic.of(k) for k in keys])


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_own_key(
    body: KeyCreate, principal: PrincipalDep, authenticator: AuthenticatorDep, response: Response
) -> KeyCreated:
    principal.require("keys:own")
    response.headers["Cache-Control"] = "no-store"
    return create_key_for(authenticator, principal.org_id, body)


@router.delete("/{key_id}", response_model=KeyPublic, responses={404: {"model": ErrorBody}})
def revoke_own_key(
    key_id: str, principal: PrincipalDep, authenticator: AuthenticatorDep
) -> KeyPublic:
    principal.require("keys:own")
    return revoke_key_of(authenticator, principal.org_id, key_id)
