"""Accounts: organisations, sites, users, API keys and sessions.

Before this revision ``sealscope.accounts.sqlite`` made the same tables in the SQLite
state file through sqlite3 (its ``schema_version`` component "accounts", version 1). This
revision creates only what is missing, so such a file keeps its rows and is stamped here;
its column types read back the same through SQLAlchemy (remit JSON text, disabled 0/1).

Revision ID: 0005_accounts
Revises: 0004_provisioning (chained after what main had when this landed: one head)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_accounts"
down_revision = "0004_provisioning"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_KINDS = "'operator', 'manufacturer', 'monitoring_point', 'admin'"


def _create_table(inspector: sa.Inspector, name: str, *items: Any, **kw: Any) -> None:
    if not inspector.has_table(name):
        op.create_table(name, *items, **kw)


def _create_index(inspector: sa.Inspector, table: str, name: str, columns: list[str]) -> None:
    if name not in {ix["name"] for ix in inspector.get_indexes(table)}:
        op.create_index(name, table, columns)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    _create_table(
        inspector,
        "orgs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("manufacturer_code", sa.Text),
        sa.Column("remit", _JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name=op.f("ck_orgs_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orgs")),
        sa.UniqueConstraint("name", name=op.f("uq_orgs_name")),
        sqlite_autoincrement=True,
    )
    _create_table(
        inspector,
        "sites",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("operator_id", _ID, nullable=False),
        sa.Column("region", sa.Text, nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["orgs.id"], name=op.f("fk_sites_operator_id_orgs")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sites")),
    )
    _create_index(inspector, "sites", "sites_by_operator", ["operator_id", "name"])
    _create_table(
        inspector,
        "users",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_users_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sqlite_autoincrement=True,
    )
    _create_table(
        inspector,
        "api_keys",
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_sha256", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double),
        sa.Column("revoked_at", sa.Double),
        sa.Column("last_used_at", sa.Double),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_api_keys_org_id_orgs")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    _create_index(inspector, "api_keys", "api_keys_by_org", ["org_id", "created_at"])
    _create_table(
        inspector,
        "sessions",
        sa.Column("token_sha256", sa.Text, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_sessions")),
    )


def downgrade() -> None:
    for table in ("sessions", "api_keys", "users", "sites", "orgs"):
        op.drop_table(table)
