"""The registry, alerts and dead letters, as sealscope.sqlitedb made them before Alembic.

Creates only what is missing, so a SQLite file from the ``schema_version`` era (some or
all of these tables already there, dead letters at its version 1 or 2) is upgraded in
place and stamped here.

Revision ID: 0001_base
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None

_DEVICE_ID = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_NOT_RESOLVED = sa.text("status != 'resolved'")
_ONCE = sa.text("once_key IS NOT NULL")


def _create_table(inspector: sa.Inspector, name: str, *items: Any, **kw: Any) -> None:
    if not inspector.has_table(name):
        op.create_table(name, *items, **kw)


def _create_index(
    inspector: sa.Inspector, table: str, name: str, columns: list[str], **kw: Any
) -> None:
    if name not in {ix["name"] for ix in inspector.get_indexes(table)}:
        op.create_index(name, table, columns, **kw)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    _create_table(
        inspector,
        "devices",
        sa.Column("device_id", _DEVICE_ID, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("manufacturer", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("batch", sa.Text, nullable=False, server_default=""),
        sa.Column("site", sa.Text, nullable=False, server_default=""),
        sa.Column("region", sa.Text, nullable=False, server_default=""),
        sa.Column("dn", sa.Integer),
        sa.Column("pn", sa.Integer),
        sa.Column("seat_material", sa.Text, nullable=False, server_default=""),
        sa.Column("leakage_class", sa.Text, nullable=False, server_default=""),
        sa.Column("firmware", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.CheckConstraint("kind IN ('valve', 'pump')", name=op.f("ck_devices_kind")),
        sa.CheckConstraint("dn > 0", name=op.f("ck_devices_dn")),
        sa.CheckConstraint("pn > 0", name=op.f("ck_devices_pn")),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
        sqlite_with_rowid=False,
    )
    _create_index(inspector, "devices", "devices_by_manufacturer", ["manufacturer", "device_id"])
    _create_index(inspector, "devices", "devices_by_site", ["site", "device_id"])

    _create_table(
        inspector,
        "alerts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("evidence", _JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("resolved_at", sa.Double),
        sa.CheckConstraint(
            "category IN ('failure', 'function_check', 'out_of_specification',"
            " 'maintenance_required')",
            name=op.f("ck_alerts_category"),
        ),
        sa.CheckConstraint("severity BETWEEN 1 AND 5", name=op.f("ck_alerts_severity")),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_status")
        ),
        sa.CheckConstraint(
            "(status = 'resolved') = (resolved_at IS NOT NULL)", name=op.f("ck_alerts_resolved_at")
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sqlite_autoincrement=True,
    )
    _create_index(
        inspector,
        "alerts",
        "alerts_one_active",
        ["device_id", "cause"],
        unique=True,
        sqlite_where=_NOT_RESOLVED,
        postgresql_where=_NOT_RESOLVED,
    )
    _create_index(inspector, "alerts", "alerts_by_status", ["status", "id"])
    _create_index(inspector, "alerts", "alerts_by_device", ["device_id", "id"])

    _create_table(
        inspector,
        "dead_letters",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("device_id", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sqlite_autoincrement=True,
    )
    # the dead-letter bounds (schema_version 2 of the old scheme): a version-1 file lacks them
    inspector = sa.inspect(op.get_bind())
    have = {c["name"] for c in inspector.get_columns("dead_letters")}
    for column in (
        sa.Column("payload_bytes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("payload_sha256", sa.Text, nullable=False, server_default=""),
        sa.Column("once_key", sa.Text),
    ):
        if column.name not in have:
            op.add_column("dead_letters", column)
    _create_index(inspector, "dead_letters", "dead_letters_by_device", ["device_id", "id"])
    _create_index(
        inspector,
        "dead_letters",
        "dead_letters_once",
        ["topic", "once_key"],
        unique=True,
        sqlite_where=_ONCE,
        postgresql_where=_ONCE,
    )
    _create_index(inspector, "dead_letters", "dead_letters_by_time", ["received_at"])

    _grant_grafana_read()


# Grafana's alerts panel reads as this role where a deployment made it
# (deploy/postgres/10-grafana-role.sh): the alerts and devices, nothing else.
_GRAFANA_ROLE = "sealscope_grafana"


def _grant_grafana_read() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{_GRAFANA_ROLE}') THEN
                GRANT SELECT ON alerts, devices TO {_GRAFANA_ROLE};
            END IF;
        END $$"""
    )


def downgrade() -> None:
    for table in ("dead_letters", "alerts", "devices"):
        op.drop_table(table)
