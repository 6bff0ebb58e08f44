"""``AccountStore`` on the state database (SQLite, the embedded default, or PostgreSQL),
sharing its engine with the registry and the alert stores; ``SqliteAccountStore`` opens
one on a file. Tables: ``sealscope.db.accounts`` (revision ``0005_accounts``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.accounts.models import ApiKey, Organisation, OrgKind, Remit, Session, Site, User
from sealscope.db import accounts as tbl
from sealscope.db import insert_for, open_migrated, read, sqlite_url, write
from sealscope.errors import NotFound

__all__ = ["SqlAccountStore", "SqliteAccountStore"]


def _remit_json(remit: Remit) -> dict[str, Any]:
    return {
        "regions": sorted(remit.regions),
        "kinds": sorted(remit.kinds),
        "manufacturers": sorted(remit.manufacturers),
        "models": sorted(remit.models),
        "raw_data": remit.raw_data,
    }


def _remit(data: Mapping[Any, Any]) -> Remit:
    return Remit(
        regions=frozenset(data.get("regions", ())),
        kinds=frozenset(data.get("kinds", ())),
        manufacturers=frozenset(data.get("manufacturers", ())),
        models=frozenset(data.get("models", ())),
        raw_data=bool(data.get("raw_data", False)),
    )


def _org(row: Mapping[Any, Any]) -> Organisation:
    return Organisation(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        manufacturer_code=row["manufacturer_code"],
        remit=_remit(row["remit"]),
        created_at=row["created_at"],
    )


def _user(row: Mapping[Any, Any]) -> User:
    return User(
        id=row["id"],
        org_id=row["org_id"],
        username=row["username"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


def _key(row: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(**row)


def _storable(text: str) -> bool:
    # PostgreSQL text cannot hold NUL; nothing stored contains one, so nothing matches it
    return "\x00" not in text


class SqlAccountStore:
    """``engine`` must be migrated (``sealscope.db.migrate``)."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], float] = time.time, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._owns_engine = owns_engine
        insert = insert_for(engine)(tbl.sites)
        self._put_site = insert.on_conflict_do_update(
            index_elements=[tbl.sites.c.name],
            set_={"operator_id": insert.excluded.operator_id, "region": insert.excluded.region},
        )

    def _one(self, query: sa.Select[Any]) -> Mapping[Any, Any] | None:
        with read(self._engine) as conn:
            return conn.execute(query).mappings().first()

    def _all(self, query: sa.Select[Any]) -> list[Mapping[Any, Any]]:
        with read(self._engine) as conn:
            return list(conn.execute(query).mappings().all())

    def create_org(
        self, *, name: str, kind: OrgKind, manufacturer_code: str | None = None
    ) -> Organisation:
        created_at = self._clock()
        insert = tbl.orgs.insert().returning(tbl.orgs.c.id)
        with write(self._engine, conflict=("organisation", name)) as conn:
            org_id = conn.execute(
                insert,
                {
                    "name": name,
                    "kind": kind,
                    "manufacturer_code": manufacturer_code,
                    "remit": _remit_json(Remit()),
                    "created_at": created_at,
                },
            ).scalar_one()
        return Organisation(org_id, name, kind, manufacturer_code, Remit(), created_at)

    def get_org(self, org_id: int) -> Organisation:
        row = self._one(sa.select(tbl.orgs).where(tbl.orgs.c.id == org_id))
        if row is None:
            raise NotFound("organisation", str(org_id))
        return _org(row)

    def list_orgs(self, *, kind: OrgKind | None = None) -> list[Organisation]:
        query = sa.select(tbl.orgs).order_by(tbl.orgs.c.id)
        if kind is not None:
            query = query.where(tbl.orgs.c.kind == kind)
        return [_org(r) for r in self._all(query)]

    def set_remit(self, org_id: int, remit: Remit) -> Organisation:
        with write(self._engine) as conn:
            done = conn.execute(
                tbl.orgs.update().where(tbl.orgs.c.id == org_id).values(remit=_remit_json(remit))
            ).rowcount
        if done == 0:
            raise NotFound("organisation", str(org_id))
        return self.get_org(org_id)

    def put_site(self, site: Site) -> Site:
        self.get_org(site.operator_id)
        with write(self._engine) as conn:
            conn.execute(
                self._put_site,
                {"name": site.name, "operator_id": site.operator_id, "region": site.region},
            )
        return site

    def list_sites(self, *, operator_id: int | None = None) -> list[Site]:
        query = sa.select(tbl.sites).order_by(tbl.sites.c.name)
        if operator_id is not None:
            query = query.where(tbl.sites.c.operator_id == operator_id)
        return [Site(r["name"], r["operator_id"], r["region"]) for r in self._all(query)]

    def create_user(self, *, org_id: int, username: str, password_hash: str) -> User:
        self.get_org(org_id)
        created_at = self._clock()
        insert = tbl.users.insert().returning(tbl.users.c.id)
        with write(self._engine, conflict=("user", username)) as conn:
            user_id = conn.execute(
                insert,
                {
                    "org_id": org_id,
                    "username": username,
                    "password_hash": password_hash,
                    "created_at": created_at,
                },
            ).scalar_one()
        return User(user_id, org_id, username, password_hash, created_at)

    def find_user(self, username: str) -> User | None:
        if not _storable(username):
            return None
        row = self._one(sa.select(tbl.users).where(tbl.users.c.username == username))
        return None if row is None else _user(row)

    def get_user(self, user_id: int) -> User:
        row = self._one(sa.select(tbl.users).where(tbl.users.c.id == user_id))
        if row is None:
            raise NotFound("user", str(user_id))
        return _user(row)

    def list_users(self, org_id: int) -> list[User]:
        query = sa.select(tbl.users).where(tbl.users.c.org_id == org_id).order_by(tbl.users.c.id)
        return [_user(r) for r in self._all(query)]

    def add_key(self, key: ApiKey) -> ApiKey:
        self.get_org(key.org_id)
        values = {c.name: getattr(key, c.name) for c in tbl.api_keys.columns}
        with write(self._engine, conflict=("api key", key.key_id)) as conn:
            conn.execute(tbl.api_keys.insert(), values)
        return key

    def get_key(self, key_id: str) -> ApiKey:
        row = None
        if _storable(key_id):
            row = self._one(sa.select(tbl.api_keys).where(tbl.api_keys.c.key_id == key_id))
        if row is None:
            raise NotFound("api key", key_id)
        return _key(row)

    def list_keys(self, org_id: int) -> list[ApiKey]:
        query = (
            sa.select(tbl.api_keys)
            .where(tbl.api_keys.c.org_id == org_id)
            .order_by(tbl.api_keys.c.created_at, tbl.api_keys.c.key_id)
        )
        return [_key(r) for r in self._all(query)]

    def revoke_key(self, key_id: str, *, t: float) -> ApiKey:
        if _storable(key_id):
            with write(self._engine) as conn:
                conn.execute(
                    tbl.api_keys.update()
                    .where(tbl.api_keys.c.key_id == key_id, tbl.api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=t)
                )
        return self.get_key(key_id)

    def touch_key(self, key_id: str, *, t: float) -> None:
        if not _storable(key_id):
            return
        with write(self._engine) as conn:
            conn.execute(
                tbl.api_keys.update().where(tbl.api_keys.c.key_id == key_id).values(last_used_at=t)
            )

    def add_session(self, session: Session) -> None:
        with write(self._engine) as conn:
            conn.execute(
                tbl.sessions.insert(),
                {c.name: getattr(session, c.name) for c in tbl.sessions.columns},
            )

    def get_session(self, token_sha256: str) -> Session | None:
        row = None
        if _storable(token_sha256):
            row = self._one(
                sa.select(tbl.sessions).where(tbl.sessions.c.token_sha256 == token_sha256)
            )
        return None if row is None else Session(**row)

    def delete_session(self, token_sha256: str) -> None:
        if not _storable(token_sha256):
            return
        with write(self._engine) as conn:
            conn.execute(tbl.sessions.delete().where(tbl.sessions.c.token_sha256 == token_sha256))

    def delete_expired_sessions(self, *, now: float) -> int:
        with write(self._engine) as conn:
            return conn.execute(
                tbl.sessions.delete().where(tbl.sessions.c.expires_at <= now)
            ).rowcount

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()


class SqliteAccountStore(SqlAccountStore):
    """``SqlAccountStore`` on a SQLite file of its own engine, migrated on opening."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(open_migrated(sqlite_url(path)), clock=clock, owns_engine=True)
