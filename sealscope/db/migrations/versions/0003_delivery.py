"""Alert delivery: subscriptions, the transactional outbox and the delivery log.

Revision ID: 0003_delivery
Revises: 0002_alert_lifecycle (chained after what main had when this landed: one head)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_delivery"
down_revision = "0002_alert_lifecycle"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "delivery_subscriptions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(256)),
        sa.Column("causes", _JSON, nullable=False),
        sa.Column("categories", _JSON, nullable=False),
        sa.Column("min_severity", sa.Integer, nullable=False),
        sa.Column("kinds", _JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.CheckConstraint(
            "channel IN ('webhook', 'mqtt', 'email')",
            name=op.f("ck_delivery_subscriptions_channel"),
        ),
        sa.CheckConstraint(
            "min_severity BETWEEN 1 AND 5", name=op.f("ck_delivery_subscriptions_min_severity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_subscriptions")),
    )
    op.create_index(op.f("ix_delivery_subscriptions_org_id"), "delivery_subscriptions", ["org_id"])
    op.create_table(
        "delivery_outbox",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", sa.Double),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name=op.f("ck_delivery_outbox_status")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["delivery_subscriptions.id"],
            name=op.f("fk_delivery_outbox_subscription_id_delivery_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_outbox")),
    )
    op.create_index("ix_delivery_outbox_due", "delivery_outbox", ["status", "next_attempt_at"])
    op.create_index(
        "ix_delivery_outbox_subscription", "delivery_outbox", ["subscription_id", "created_at"]
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("duration_s", sa.Double, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("dispatcher", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["delivery_outbox.id"],
            name=op.f("fk_delivery_attempts_delivery_id_delivery_outbox"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(
        "ix_delivery_attempts_subscription", "delivery_attempts", ["subscription_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("delivery_outbox")
    op.drop_table("delivery_subscriptions")
