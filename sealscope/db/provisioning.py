"""Provisioning's tables (revision ``0004_provisioning``): each provisioned device's claim
state, and each fleet upload with its per-row results. No secret is stored in the clear: a
claim code only as its keyed hash; a device's MQTT password, until the broker has it
(revision ``0006_broker_queue``), sealed with a server key and erased once applied."""

from __future__ import annotations

import sqlalchemy as sa

from sealscope.db.metadata import metadata
from sealscope.db.tables import DeviceId, Id, UnixS

__all__ = [
    "provisioned_devices",
    "provisioning_broker_queue",
    "provisioning_upload_rows",
    "provisioning_uploads",
]

provisioned_devices = sa.Table(
    "provisioned_devices",
    metadata,
    sa.Column("device_id", DeviceId, primary_key=True),
    sa.Column("manufacturer", sa.Text, nullable=False),
    sa.Column("claim_hash", sa.LargeBinary, nullable=False),  # HMAC-SHA256, never the code
    sa.Column("issued_at", UnixS, nullable=False),
    sa.Column("claimed_at", UnixS),
    sa.Column("claimed_site", sa.Text, nullable=False, server_default=""),
    sa.Column("claimed_by", sa.Text, nullable=False, server_default=""),
    sqlite_with_rowid=False,
)

provisioning_uploads = sa.Table(
    "provisioning_uploads",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("manufacturer", sa.Text, nullable=False),
    sa.Column("created_at", UnixS, nullable=False),
    sa.Column("file_format", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("rotate", sa.Boolean, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("updated", sa.Integer, nullable=False),
    sa.Column("unchanged", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("credentials_issued", sa.Integer, nullable=False),
    sa.CheckConstraint("file_format IN ('csv', 'json')", name="file_format"),
    sa.CheckConstraint("mode IN ('all_or_nothing', 'good_rows_only')", name="mode"),
    sa.Index("provisioning_uploads_by_manufacturer", "manufacturer", "id"),
    sqlite_autoincrement=True,
)

provisioning_upload_rows = sa.Table(
    "provisioning_upload_rows",
    metadata,
    sa.Column(
        "upload_id",
        Id,
        sa.ForeignKey("provisioning_uploads.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("line", sa.Integer, primary_key=True),  # CSV line or JSON index
    sa.Column("device_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("credentials_issued", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint("status IN ('created', 'updated', 'unchanged', 'rejected')", name="status"),
    sqlite_with_rowid=False,
)

# MQTT logins issued by an upload, waiting for (or done with) the broker
provisioning_broker_queue = sa.Table(
    "provisioning_broker_queue",
    metadata,
    sa.Column(
        "upload_id",
        Id,
        sa.ForeignKey("provisioning_uploads.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("device_id", DeviceId, primary_key=True),
    sa.Column("sealed_password", sa.LargeBinary),  # AES-GCM; NULL once the broker has it
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.CheckConstraint("state IN ('pending', 'applied', 'failed')", name="state"),
    sa.Index("provisioning_broker_queue_pending", "state", "upload_id"),
    sqlite_with_rowid=False,
)
