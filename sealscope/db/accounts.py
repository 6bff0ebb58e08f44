"""Organisations, their sites, people, API keys and sign-in sessions (revision
``0005_accounts``; before it, ``sealscope.accounts.sqlite`` kept the same tables in the
SQLite state file through sqlite3, and the revision adopts them as they are)."""

from __future__ import annotations

import sqlalchemy as sa

from sealscope.db.metadata import metadata
from sealscope.db.tables import Id, Json, UnixS

__all__ = ["api_keys", "orgs", "sessions", "sites", "users"]

orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("manufacturer_code", sa.Text),  # manufacturers: Device.manufacturer
    # monitoring points: {"regions": [...], "kinds": [...], ..., "raw_data": bool}
    sa.Column("remit", Json, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("created_at", UnixS, nullable=False),
    sa.CheckConstraint(
        "kind IN ('operator', 'manufacturer', 'monitoring_point', 'admin')", name="kind"
    ),
    sqlite_autoincrement=True,
)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # as devices carry it (Device.site)
    sa.Column("operator_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("region", sa.Text, nullable=False, server_default=""),
    # an operator's scope is its sites: looked up on every scoped request
    sa.Index("sites_by_operator", "operator_id", "name"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("username", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2, never the password
    sa.Column("created_at", UnixS, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sqlite_autoincrement=True,
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.Text, primary_key=True),  # public: part of the key itself
    sa.Column("org_id", Id, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_sha256", sa.Text, nullable=False),  # hex digest of the secret part
    sa.Column("created_at", UnixS, nullable=False),
    sa.Column("expires_at", UnixS),
    sa.Column("revoked_at", UnixS),
    sa.Column("last_used_at", UnixS),
    sa.Index("api_keys_by_org", "org_id", "created_at"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_sha256", sa.Text, primary_key=True),  # the cookie holds the token
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UnixS, nullable=False),
    sa.Column("expires_at", UnixS, nullable=False),
)
