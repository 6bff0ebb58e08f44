"""Provisioning: claim state per provisioned device, uploads and their per-row results.

Revision ID: 0004_provisioning
Revises: 0003_delivery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_provisioning"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None

_DEVICE_ID = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "provisioned_devices",
        sa.Column("device_id", _DEVICE_ID, nullable=False),
        sa.Column("manufacturer", sa.Text, nullable=False),
        sa.Column("claim_hash", sa.LargeBinary, nullable=False),
        sa.Column("issued_at", sa.Double, nullable=False),
        sa.Column("claimed_at", sa.Double),
        sa.Column("claimed_site", sa.Text, nullable=False, server_default=""),
        sa.Column("claimed_by", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_provisioned_devices")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "provisioning_uploads",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("manufacturer", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("file_format", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("rotate", sa.Boolean, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("credentials_issued", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "file_format IN ('csv', 'json')", name=op.f("ck_provisioning_uploads_file_format")
        ),
        sa.CheckConstraint(
            "mode IN ('all_or_nothing', 'good_rows_only')",
            name=op.f("ck_provisioning_uploads_mode"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_uploads")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "provisioning_uploads_by_manufacturer", "provisioning_uploads", ["manufacturer", "id"]
    )
    op.create_table(
        "provisioning_upload_rows",
        sa.Column("upload_id", _ID, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("device_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("credentials_issued", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.CheckConstraint(
            "status IN ('created', 'updated', 'unchanged', 'rejected')",
            name=op.f("ck_provisioning_upload_rows_status"),
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["provisioning_uploads.id"],
            name=op.f("fk_provisioning_upload_rows_upload_id_provisioning_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "line", name=op.f("pk_provisioning_upload_rows")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for table in ("provisioning_upload_rows", "provisioning_uploads", "provisioned_devices"):
        op.drop_table(table)
