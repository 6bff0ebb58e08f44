"""The registry, alert and dead-letter tables (revision ``0001_base``; the alerts' lifecycle
columns came with ``0002_alert_lifecycle``).

The declarations here describe the newest schema and feed Alembic's autogenerate; the
migrations under ``migrations/versions`` carry their own frozen copies, so editing this
module never rewrites history.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from sealscope.db.metadata import metadata

__all__ = ["alerts", "dead_letters", "devices"]

# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets 64 bits.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Ids sort bytewise on both (PostgreSQL's default collation would put "ACME-2" among
# "ACME1x" by locale rules, and pages through a registry must not depend on the locale).
DeviceId = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
# Unix seconds as a double: device event times are fractional and never time-zone aware.
UnixS: sa.Double[float] = sa.Double()
# JSONB on PostgreSQL so Grafana and ad-hoc SQL can query into evidence.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", DeviceId, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("manufacturer", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("batch", sa.Text, nullable=False, server_default=""),
    sa.Column("site", sa.Text, nullable=False, server_default=""),
    sa.Column("region", sa.Text, nullable=False, server_default=""),
    sa.Column("dn", sa.Integer),  # nominal size, mm
    sa.Column("pn", sa.Integer),  # pressure class, bar
    sa.Column("seat_material", sa.Text, nullable=False, server_default=""),
    sa.Column("leakage_class", sa.Text, nullable=False, server_default=""),
    sa.Column("firmware", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UnixS, nullable=False),
    sa.CheckConstraint("kind IN ('valve', 'pump')", name="kind"),
    sa.CheckConstraint("dn > 0", name="dn"),
    sa.CheckConstraint("pn > 0", name="pn"),
    # the two filters the API and fleet views page through, in device_id order
    sa.Index("devices_by_manufacturer", "manufacturer", "device_id"),
    sa.Index("devices_by_site", "site", "device_id"),
    sqlite_with_rowid=False,
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="open"),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", Json, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("opened_at", UnixS, nullable=False),
    sa.Column("updated_at", UnixS, nullable=False),
    sa.Column("resolved_at", UnixS),
    # the lifecycle (0002_alert_lifecycle); the whole story is in alert_events
    sa.Column("acknowledged_at", UnixS),  # wall clock, like every act of a person
    sa.Column("acknowledged_by", sa.Text),
    sa.Column("assignee", sa.Text),
    # wall clock of the last announcement (raised, or re-notified): re-notify counts from it
    sa.Column("notified_at", UnixS),
    # +1 on every change of the row: (id, version) names one state of an alert
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.CheckConstraint(
        "category IN ('failure', 'function_check', 'out_of_specification', 'maintenance_required')",
        name="category",
    ),
    sa.CheckConstraint("severity BETWEEN 1 AND 5", name="severity"),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="status"),
    sa.CheckConstraint("(status = 'resolved') = (resolved_at IS NOT NULL)", name="resolved_at"),
    # The invariant itself: at most one unresolved alert per device and cause, whoever
    # writes the table (two ingest workers, a script, a future migration).
    sa.Index(
        "alerts_one_active",
        "device_id",
        "cause",
        unique=True,
        sqlite_where=sa.text("status != 'resolved'"),
        postgresql_where=sa.text("status != 'resolved'"),
    ),
    sa.Index("alerts_by_status", "status", "id"),
    sa.Index("alerts_by_device", "device_id", "id"),
    # what the re-notify sweep scans: open alerts by their last announcement
    sa.Index(
        "alerts_open_by_notified_at",
        "notified_at",
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    ),
    sqlite_autoincrement=True,
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("received_at", UnixS, nullable=False),  # arrival time at ingest
    sa.Column("topic", sa.Text, nullable=False),
    # the message exactly as it arrived, whatever its encoding
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text),
    # size as it arrived and sha256 of the whole payload: ``payload`` may be only a prefix
    sa.Column("payload_bytes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("payload_sha256", sa.Text, nullable=False, server_default=""),
    # "{scope}:{digest}": a letter kept once per topic and scope (crash replays, retained)
    sa.Column("once_key", sa.Text),
    sa.Index("dead_letters_by_device", "device_id", "id"),
    sa.Index(
        "dead_letters_once",
        "topic",
        "once_key",
        unique=True,
        sqlite_where=sa.text("once_key IS NOT NULL"),
        postgresql_where=sa.text("once_key IS NOT NULL"),
    ),
    sa.Index("dead_letters_by_time", "received_at"),
    sqlite_autoincrement=True,
)
