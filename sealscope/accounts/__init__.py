"""Accounts: organisations, their sites and remits, people, API keys, sessions, and the
scope policy every route goes through (``scope.py``)."""

from sealscope.accounts.auth import Authenticator
from sealscope.accounts.models import (
    ORG_KINDS,
    ApiKey,
    Organisation,
    OrgKind,
    Remit,
    Session,
    Site,
    User,
)
from sealscope.accounts.scope import ACTIONS, Action, Principal, Scope
from sealscope.accounts.sql import SqlAccountStore, SqliteAccountStore
from sealscope.accounts.store import AccountStore, MemoryAccountStore
from sealscope.accounts.throttle import SignInThrottle

__all__ = [
    "ACTIONS",
    "ORG_KINDS",
    "AccountStore",
    "Action",
    "ApiKey",
    "Authenticator",
    "MemoryAccountStore",
    "OrgKind",
    "Organisation",
    "Principal",
    "Remit",
    "Scope",
    "Session",
    "SignInThrottle",
    "Site",
    "SqlAccountStore",
    "SqliteAccountStore",
    "User",
]
