"""Device commands queued through the API (revision ``0007_device_commands``): one row per
command, its state following what the gateway reports on ``.../cmd/status``."""

from __future__ import annotations

import sqlalchemy as sa

from sealscope.db.metadata import metadata
from sealscope.db.tables import DeviceId, Json, UnixS

__all__ = ["COMMAND_STATES", "device_commands"]

# "requested": published to the broker, no report from the gateway yet; the rest are
# the gateway's (gateway/downlink.py)
COMMAND_STATES = ("requested", "pending", "sent", "delivered", "succeeded", "failed", "expired")

device_commands = sa.Table(
    "device_commands",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # the id in the cmd payload
    sa.Column("device_id", DeviceId, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("created_at", UnixS, nullable=False),  # wall clock
    sa.Column("expires_at", UnixS, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("state_t", UnixS, nullable=False),  # the reporter's time of the state
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text),
    sa.Column("updated_at", UnixS, nullable=False),  # wall clock of the last change here
    sa.CheckConstraint(
        "state IN (" + ", ".join(f"'{s}'" for s in COMMAND_STATES) + ")", name="state"
    ),
    sa.Index("device_commands_by_device", "device_id", "created_at"),
)
