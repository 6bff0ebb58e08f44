"""The accounts port and its in-memory adapter (unit tests; the SQL one is ``sql.py``).

Both adapters pass the same contract tests (tests/accounts/test_store.py).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sealscope.accounts.models import ApiKey, Organisation, OrgKind, Remit, Session, Site, User
from sealscope.errors import Conflict, NotFound

__all__ = ["AccountStore", "MemoryAccountStore"]


class AccountStore(Protocol):
    def create_org(
        self, *, name: str, kind: OrgKind, manufacturer_code: str | None = None
    ) -> Organisation:
        """Raises Conflict when the name is taken."""
        ...

    def get_org(self, org_id: int) -> Organisation:
        """Raises NotFound."""
        ...

    def list_orgs(self, *, kind: OrgKind | None = None) -> list[Organisation]: ...

    def set_remit(self, org_id: int, remit: Remit) -> Organisation: ...

    def put_site(self, site: Site) -> Site:
        """Create or move a site to ``site.operator_id``."""
        ...

    def list_sites(self, *, operator_id: int | None = None) -> list[Site]: ...

    def create_user(self, *, org_id: int, username: str, password_hash: str) -> User:
        """Raises Conflict when the username is taken, NotFound for an unknown org."""
        ...

    def find_user(self, username: str) -> User | None: ...

    def get_user(self, user_id: int) -> User:
        """Raises NotFound."""
        ...

    def list_users(self, org_id: int) -> list[User]: ...

    def add_key(self, key: ApiKey) -> ApiKey: ...

    def get_key(self, key_id: str) -> ApiKey:
        """Raises NotFound."""
        ...

    def list_keys(self, org_id: int) -> list[ApiKey]: ...

    def revoke_key(self, key_id: str, *, t: float) -> ApiKey:
        """Idempotent: the first revocation time stays. Raises NotFound."""
        ...

    def touch_key(self, key_id: str, *, t: float) -> None:
        """Record a use (``last_used_at``)."""
        ...

    def add_session(self, session: Session) -> None: ...

    def get_session(self, token_sha256: str) -> Session | None: ...

    def delete_session(self, token_sha256: str) -> None: ...

    def delete_expired_sessions(self, *, now: float) -> int: ...

    def close(self) -> None: ...


class MemoryAccountStore:
    """``AccountStore`` in dicts, for tests; thread-safe like the SQL one."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._orgs: dict[int, Organisation] = {}
        self._sites: dict[str, Site] = {}
        self._users: dict[int, User] = {}
        self._keys: dict[str, ApiKey] = {}
        self._sessions: dict[str, Session] = {}

    def create_org(
        self, *, name: str, kind: OrgKind, manufacturer_code: str | None = None
    ) -> Organisation:
        with self._lock:
            if any(o.name == name for o in self._orgs.values()):
                raise Conflict("organisation", name)
            org = Organisation(
                id=len(self._orgs) + 1,
                name=name,
                kind=kind,
                manufacturer_code=manufacturer_code,
                created_at=self._clock(),
            )
            self._orgs[org.id] = org
            return org

    def get_org(self, org_id: int) -> Organisation:
        with self._lock:
            if org_id not in self._orgs:
                raise NotFound("organisation", str(org_id))
            return self._orgs[org_id]

    def list_orgs(self, *, kind: OrgKind | None = None) -> list[Organisation]:
        with self._lock:
            return [o for o in self._orgs.values() if kind is None or o.kind == kind]

    def set_remit(self, org_id: int, remit: Remit) -> Organisation:
        org = self.get_org(org_id)
        with self._lock:
            org = dataclasses.replace(org, remit=remit)
            self._orgs[org_id] = org
            return org

    def put_site(self, site: Site) -> Site:
        self.get_org(site.operator_id)
        with self._lock:
            self._sites[site.name] = site
            return site

    def list_sites(self, *, operator_id: int | None = None) -> list[Site]:
        with self._lock:
            sites = [
                s
                for s in self._sites.values()
                if operator_id is None or s.operator_id == operator_id
            ]
        return sorted(sites, key=lambda s: s.name)

    def create_user(self, *, org_id: int, username: str, password_hash: str) -> User:
        self.get_org(org_id)
        with self._lock:
            if any(u.username == username for u in self._users.values()):
                raise Conflict("user", username)
            user = User(
                id=len(self._users) + 1,
                org_id=org_id,
                username=username,
                password_hash=password_hash,
                created_at=self._clock(),
            )
            self._users[user.id] = user
            return user

    def find_user(self, username: str) -> User | None:
        with self._lock:
            return next((u for u in self._users.values() if u.username == username), None)

    def get_user(self, user_id: int) -> User:
        with self._lock:
            if user_id not in self._users:
                raise NotFound("user", str(user_id))
            return self._users[user_id]

    def list_users(self, org_id: int) -> list[User]:
        with self._lock:
            return [u for u in self._users.values() if u.org_id == org_id]

    def add_key(self, key: ApiKey) -> ApiKey:
        self.get_org(key.org_id)
        with self._lock:
            if key.key_id in self._keys:
                raise Conflict("api key", key.key_id)
            self._keys[key.key_id] = key
            return key

    def get_key(self, key_id: str) -> ApiKey:
        with self._lock:
            if key_id not in self._keys:
                raise NotFound("api key", key_id)
            return self._keys[key_id]

    def list_keys(self, org_id: int) -> list[ApiKey]:
        with self._lock:
            keys = [k for k in self._keys.values() if k.org_id == org_id]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, *, t: float) -> ApiKey:
        key = self.get_key(key_id)
        with self._lock:
            if key.revoked_at is None:
                key = dataclasses.replace(key, revoked_at=t)
                self._keys[key_id] = key
            return key

    def touch_key(self, key_id: str, *, t: float) -> None:
        with self._lock:
            if key_id in self._keys:
                self._keys[key_id] = dataclasses.replace(self._keys[key_id], last_used_at=t)

    def add_session(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.token_sha256] = session

    def get_session(self, token_sha256: str) -> Session | None:
        with self._lock:
            return self._sessions.get(token_sha256)

    def delete_session(self, token_sha256: str) -> None:
        with self._lock:
            self._sessions.pop(token_sha256, None)

    def delete_expired_sessions(self, *, now: float) -> int:
        with self._lock:
            gone = [d for d, s in self._sessions.items() if s.expires_at <= now]
            for d in gone:
                del self._sessions[d]
            return len(gone)

    def close(self) -> None:
        pass
