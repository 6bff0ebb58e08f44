"""The alert delivery tables (revision ``0003_delivery``): subscriptions, the outbox (one
row per delivery of one change to one subscription) and the delivery log of attempts."""

from __future__ import annotations

import sqlalchemy as sa

from sealscope.db.metadata import metadata
from sealscope.db.tables import Id, Json, UnixS

__all__ = ["attempts", "deliveries", "subscriptions"]

subscriptions = sa.Table(
    "delivery_subscriptions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(256)),
    sa.Column("causes", Json, nullable=False),
    sa.Column("categories", Json, nullable=False),
    sa.Column("min_severity", sa.Integer, nullable=False),
    sa.Column("kinds", Json, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.CheckConstraint("channel IN ('webhook', 'mqtt', 'email')", name="channel"),
    sa.CheckConstraint("min_severity BETWEEN 1 AND 5", name="min_severity"),
)

deliveries = sa.Table(
    "delivery_outbox",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "subscription_id",
        sa.String(64),
        sa.ForeignKey("delivery_subscriptions.id"),
        nullable=False,
    ),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UnixS, nullable=False),
    sa.Column("created_at", UnixS, nullable=False),
    sa.Column("delivered_at", UnixS),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_until", UnixS),
    sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
    # what claimers scan: pending rows by due time
    sa.Index("ix_delivery_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_delivery_outbox_subscription", "subscription_id", "created_at"),
)

attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(64), sa.ForeignKey("delivery_outbox.id"), nullable=False),
    sa.Column("subscription_id", sa.String(64), nullable=False),
    sa.Column("started_at", UnixS, nullable=False),
    sa.Column("duration_s", UnixS, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("dispatcher", sa.String(128), nullable=False),
    sa.Index("ix_delivery_attempts_subscription", "subscription_id", "id"),
)
