"""The audit trail of every alert (revision ``0005_alert_lifecycle``): one row per change,
appended in the transaction that made the change and never updated or deleted."""

from __future__ import annotations

import sqlalchemy as sa

from sealscope.db.metadata import metadata
from sealscope.db.tables import Id, UnixS

__all__ = ["ALERT_ACTIONS", "alert_events"]

ALERT_ACTIONS = (
    "raised",
    "updated",
    "cleared",
    "acknowledged",
    "assigned",
    "resolved",
    "renotify",
)
_STATUSES = "('open', 'acknowledged', 'resolved')"

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("alert_id", Id, sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("at", UnixS, nullable=False),  # wall clock when the change was made
    sa.Column("actor", sa.Text, nullable=False),  # user or key name, "detector", "system"
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),  # or the resolve note
    sa.Column("from_status", sa.Text),  # NULL when raised
    sa.Column("to_status", sa.Text, nullable=False),
    sa.Column("assignee", sa.Text),  # who it was assigned to ("assigned" only)
    sa.CheckConstraint(
        "action IN (" + ", ".join(f"'{a}'" for a in ALERT_ACTIONS) + ")", name="action"
    ),
    sa.CheckConstraint(f"from_status IN {_STATUSES}", name="from_status"),
    sa.CheckConstraint(f"to_status IN {_STATUSES}", name="to_status"),
    sa.Index("alert_events_by_alert", "alert_id", "id"),
    sqlite_autoincrement=True,
)
