"""The alert lifecycle: who acknowledged and when, the assignee, the re-notify clock, a
version per alert row, and the append-only audit trail ``alert_events``.

Alerts open at upgrade time count their re-notify period from the upgrade, so an upgrade
does not re-announce every old open alert at once.

Revision ID: 0005_alert_lifecycle
Revises: 0001_base
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005_alert_lifecycle"
down_revision = "0001_base"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPEN = sa.text("status = 'open'")
_ACTIONS = "'raised', 'updated', 'cleared', 'acknowledged', 'assigned', 'resolved', 'renotify'"
_STATUSES = "'open', 'acknowledged', 'resolved'"
_GRAFANA_ROLE = "sealscope_grafana"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("acknowledged_at", sa.Double))
    op.add_column("alerts", sa.Column("acknowledged_by", sa.Text))
    op.add_column("alerts", sa.Column("assignee", sa.Text))
    op.add_column("alerts", sa.Column("notified_at", sa.Double))
    op.add_column("alerts", sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    op.execute(
        sa.text("UPDATE alerts SET notified_at = :now").bindparams(
            sa.bindparam("now", time.time(), type_=sa.Double)
        )
    )
    op.create_index(
        "alerts_open_by_notified_at",
        "alerts",
        ["notified_at"],
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_table(
        "alert_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", _ID, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("from_status", sa.Text),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("assignee", sa.Text),
        sa.CheckConstraint(f"action IN ({_ACTIONS})", name=op.f("ck_alert_events_action")),
        sa.CheckConstraint(
            f"from_status IN ({_STATUSES})", name=op.f("ck_alert_events_from_status")
        ),
        sa.CheckConstraint(f"to_status IN ({_STATUSES})", name=op.f("ck_alert_events_to_status")),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_events_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("alert_events_by_alert", "alert_events", ["alert_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # the alerts panel may show the trail too, where the deployment made the role
        op.execute(
            f"""DO $$ BEGIN
                IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{_GRAFANA_ROLE}') THEN
                    GRANT SELECT ON alert_events TO {_GRAFANA_ROLE};
                END IF;
            END $$"""
        )


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_index("alerts_open_by_notified_at", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        for column in ("version", "notified_at", "assignee", "acknowledged_by", "acknowledged_at"):
            batch.drop_column(column)
