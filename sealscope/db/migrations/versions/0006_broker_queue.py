"""Provisioning: MQTT logins issued by an upload, queued for the broker (sealed passwords).

Revision ID: 0006_broker_queue
Revises: 0005_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_broker_queue"
down_revision = "0005_accounts"
branch_labels = None
depends_on = None

_DEVICE_ID = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "provisioning_broker_queue",
        sa.Column("upload_id", _ID, nullable=False),
        sa.Column("device_id", _DEVICE_ID, nullable=False),
        sa.Column("sealed_password", sa.LargeBinary),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.CheckConstraint(
            "state IN ('pending', 'applied', 'failed')",
            name=op.f("ck_provisioning_broker_queue_state"),
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["provisioning_uploads.id"],
            name=op.f("fk_provisioning_broker_queue_upload_id_provisioning_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "upload_id", "device_id", name=op.f("pk_provisioning_broker_queue")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "provisioning_broker_queue_pending", "provisioning_broker_queue", ["state", "upload_id"]
    )


def downgrade() -> None:
    op.drop_table("provisioning_broker_queue")
