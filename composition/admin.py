"""The platform admin: its organisation, its keys, and the first sign-in `up` prints."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sealscope.config import Settings
from sealscope.db import open_migrated

if TYPE_CHECKING:
    from sealscope.accounts import SqlAccountStore

__all__ = ["ADMIN_ORG", "create_admin_key", "first_admin", "open_accounts"]

ADMIN_ORG = "platform admin"


def open_accounts(settings: Settings) -> SqlAccountStore:
    """The accounts store on the state database (``database_url``), migrated; closing it
    releases its engine."""
    from sealscope.accounts import SqlAccountStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlAccountStore(open_migrated(settings.database_url), owns_engine=True)


def create_admin_key(settings: Settings, *, name: str = "admin key") -> str:
    """A new key of the platform admin organisation (created if missing); no expiry, so
    revoke it (``DELETE /api/v1/keys/{key_id}``) once people have their own accounts."""
    store = open_accounts(settings)
    try:
        return _admin_key(store, name)
    finally:
        store.close()


def _admin_key(store: SqlAccountStore, name: str) -> str:
    from sealscope.accounts import Authenticator

    admins = [o for o in store.list_orgs(kind="admin") if o.name == ADMIN_ORG]
    org = admins[0] if admins else store.create_org(name=ADMIN_ORG, kind="admin")
    key, _ = Authenticator(store).create_key(org.id, name=name)
    return key


def first_admin(settings: Settings) -> tuple[str, str] | None:
    """On a fresh data directory: the first admin key and the password of the ``admin``
    user for the web page, both random and stored hashed. None when an admin exists."""
    from sealscope.accounts.passwords import hash_password

    store = open_accounts(settings)
    try:
        if store.list_orgs(kind="admin"):
            return None
        org = store.create_org(name=ADMIN_ORG, kind="admin")
        password = secrets.token_urlsafe(12)
        store.create_user(org_id=org.id, username="admin", password_hash=hash_password(password))
        return _admin_key(store, "first admin key"), password
    finally:
        store.close()
