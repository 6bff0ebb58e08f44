"""Administration: organisations, their people, keys, sites and remits (admin only).

Sites map a device's ``site`` to the operator that owns it; a remit sets what a monitoring
point watches. Passwords are hashed with argon2 before they reach the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Self

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from composition.api.auth import AuthenticatorDep, PrincipalDep
from composition.api.handlers import ApiError
from composition.api.models import ErrorBody
from composition.api.routes.keys import (
    KeyCreate,
    KeyCreated,
    KeyPublic,
    KeysPublic,
    create_key_for,
    revoke_key_of,
)
from sealscope.accounts import Organisation, Remit, Site, User
from sealscope.accounts.models import OrgKind
from sealscope.accounts.passwords import MIN_PASSWORD_CHARS, hash_password
from sealscope.registry import AssetKind

__all__ = ["router"]

router = APIRouter(tags=["accounts (admin)"])

_TEXT = r"^[^\x00-\x1f\x7f]+$"  # printable: these names reach logs, tags and the page
OrgId = Annotated[int, Path(ge=1, le=2**53)]
_404: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class RemitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regions: list[Annotated[str, Field(min_length=1, max_length=128, pattern=_TEXT)]] = Field(
        max_length=1000
    )
    kinds: list[AssetKind] = Field(max_length=2)
    manufacturers: list[Annotated[str, Field(min_length=1, max_length=128, pattern=_TEXT)]] = Field(
        default_factory=list, max_length=1000
    )
    models: list[Annotated[str, Field(min_length=1, max_length=128, pattern=_TEXT)]] = Field(
        default_factory=list, max_length=1000
    )
    raw_data: bool = Field(False, strict=True, description="grant raw samples and site names")

    def to_remit(self) -> Remit:
        return Remit(
            regions=frozenset(self.regions),
            kinds=frozenset(self.kinds),
            manufacturers=frozenset(self.manufacturers),
            models=frozenset(self.models),
            raw_data=self.raw_data,
        )


class RemitPublic(BaseModel):
    regions: list[str]
    kinds: list[AssetKind]
    manufacturers: list[str]
    models: list[str]
    raw_data: bool

    @classmethod
    def of(cls, remit: Remit) -> RemitPublic:
        return cls(
            regions=sorted(remit.regions),
            kinds=sorted(remit.kinds),
            manufacturers=sorted(remit.manufacturers),
            models=sorted(remit.models),
            raw_data=remit.raw_data,
        )


class OrgCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=_TEXT)
    kind: OrgKind
    manufacturer_code: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=_TEXT,
        description="manufacturers only: the `manufacturer` their devices carry",
    )

    @model_validator(mode="after")
    def _code_for_manufacturers_only(self) -> Self:
        if (self.kind == "manufacturer") != (self.manufacturer_code is not None):
            raise ValueError("manufacturer_code is required for a manufacturer and only for one")
        return self


class OrgPublic(BaseModel):
    id: int
    name: str
    kind: OrgKind
    manufacturer_code: str | None
    remit: RemitPublic | None
    created_at: datetime

    @classmethod
    def of(cls, org: Organisation) -> OrgPublic:
        return cls(
            id=org.id,
            name=org.name,
            kind=org.kind,
            manufacturer_code=org.manufacturer_code,
            remit=RemitPublic.of(org.remit) if org.kind == "monitoring_point" else None,
            created_at=_utc(org.created_at),
        )


class OrgsPublic(BaseModel):
    data: list[OrgPublic]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=r"^[A-Za-z0-9._@-]{3,64}$")
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=1024)


class UserPublic(BaseModel):
    id: int
    org_id: int
    username: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id, org_id=user.org_id, username=user.username, created_at=_utc(user.created_at)
        )


class UsersPublic(BaseModel):
    data: list[UserPublic]


class SitePut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_id: int = Field(ge=1, le=2**53, strict=True)
    region: str = Field("", max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")


class SitePublic(BaseModel):
    name: str
    operator_id: int
    region: str

    @classmethod
    def of(cls, site: Site) -> SitePublic:
        return cls(name=site.name, operator_id=site.operator_id, region=site.region)


class SitesPublic(BaseModel):
    data: list[SitePublic]


@router.post(
    "/orgs",
    response_model=OrgPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorBody, "description": "the name is taken"}},
)
def create_org(body: OrgCreate, principal: PrincipalDep, auth: AuthenticatorDep) -> OrgPublic:
    principal.require("accounts:admin")
    org = auth.store.create_org(
        name=body.name, kind=body.kind, manufacturer_code=body.manufacturer_code
    )
    return OrgPublic.of(org)


@router.get("/orgs", response_model=OrgsPublic)
def list_orgs(principal: PrincipalDep, auth: AuthenticatorDep) -> OrgsPublic:
    principal.require("accounts:admin")
    return OrgsPublic(data=[OrgPublic.of(o) for o in auth.store.list_orgs()])


@router.get("/orgs/{org_id}", response_model=OrgPublic, responses=_404)
def get_org(org_id: OrgId, principal: PrincipalDep, auth: AuthenticatorDep) -> OrgPublic:
    principal.require("accounts:admin")
    return OrgPublic.of(auth.store.get_org(org_id))


@router.put(
    "/orgs/{org_id}/remit",
    response_model=OrgPublic,
    responses={**_404, 409: {"model": ErrorBody, "description": "not a monitoring point"}},
)
def set_remit(
    org_id: OrgId, body: RemitBody, principal: PrincipalDep, auth: AuthenticatorDep
) -> OrgPublic:
    principal.require("accounts:admin")
    if auth.store.get_org(org_id).kind != "monitoring_point":
        raise ApiError(409, "not_a_monitoring_point", f"Organisation {org_id} has no remit.")
    return OrgPublic.of(auth.store.set_remit(org_id, body.to_remit()))


@router.post(
    "/orgs/{org_id}/users",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_404, 409: {"model": ErrorBody, "description": "the username is taken"}},
)
def create_user(
    org_id: OrgId, body: UserCreate, principal: PrincipalDep, auth: AuthenticatorDep
) -> UserPublic:
    principal.require("accounts:admin")
    user = auth.store.create_user(
        org_id=org_id, username=body.username, password_hash=hash_password(body.password)
    )
    return UserPublic.of(user)


@router.get("/orgs/{org_id}/users", response_model=UsersPublic, responses=_404)
def list_users(org_id: OrgId, principal: PrincipalDep, auth: AuthenticatorDep) -> UsersPublic:
    principal.require("accounts:admin")
    auth.store.get_org(org_id)
    return UsersPublic(data=[UserPublic.of(u) for u in auth.store.list_users(org_id)])


@router.post(
    "/orgs/{org_id}/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=_404,
)
def create_org_key(
    org_id: OrgId,
    body: KeyCreate,
    principal: PrincipalDep,
    auth: AuthenticatorDep,
    response: Response,
) -> KeyCreated:
    principal.require("accounts:admin")
    response.headers["Cache-Control"] = "no-store"
    return create_key_for(auth, org_id, body)


@router.get("/orgs/{org_id}/keys", response_model=KeysPublic, responses=_404)
def list_org_keys(org_id: OrgId, principal: PrincipalDep, auth: AuthenticatorDep) -> KeysPublic:
    principal.require("accounts:admin")
    auth.store.get_org(org_id)
    return KeysPublic(data=[KeyPublic.of(k) for k in auth.store.list_keys(org_id)])


@router.delete("/orgs/{org_id}/keys/{key_id}", response_model=KeyPublic, responses=_404)
def revoke_org_key(
    org_id: OrgId, key_id: str, principal: PrincipalDep, auth: AuthenticatorDep
) -> KeyPublic:
    principal.require("accounts:admin")
    return revoke_key_of(auth, org_id, key_id)


@router.put(
    "/sites/{name}",
    response_model=SitePublic,
    responses={**_404, 409: {"model": ErrorBody, "description": "not an operator"}},
)
def put_site(
    name: Annotated[str, Path(min_length=1, max_length=128, pattern=_TEXT)],
    body: SitePut,
    principal: PrincipalDep,
    auth: AuthenticatorDep,
) -> SitePublic:
    principal.require("accounts:admin")
    if auth.store.get_org(body.operator_id).kind != "operator":
        raise ApiError(409, "not_an_operator", f"Organisation {body.operator_id} owns no sites.")
    site = auth.store.put_site(Site(name=name, operator_id=body.operator_id, region=body.region))
    return SitePublic.of(site)


@router.get("/sites", response_model=SitesPublic)
def list_sites(principal: PrincipalDep, auth: AuthenticatorDep) -> SitesPublic:
    principal.require("sites:read")
    operator_id = None if principal.scope.is_admin else principal.org_id
    return SitesPublic(
        data=[SitePublic.of(s) for s in auth.store.list_sites(operator_id=operator_id)]
    )
