"""Device commands queued through the API, with the state the gateway reports.

Revision ID: 0007_device_commands
Revises: 0006_broker_queue
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_device_commands"
down_revision = "0006_broker_queue"
branch_labels = None
depends_on = None

_DEVICE_ID = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_STATES = ("requested", "pending", "sent", "delivered", "succeeded", "failed", "expired")


def upgrade() -> None:
    op.create_table(
        "device_commands",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("device_id", _DEVICE_ID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("state_t", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in _STATES) + ")",
            name=op.f("ck_device_commands_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_commands")),
    )
    op.create_index("device_commands_by_device", "device_commands", ["device_id", "created_at"])
    _grant_grafana_read()


# Grafana's alerts dashboard reads these too where a deployment made its role
# (deploy/postgres/10-grafana-role.sh): the alerts' audit trail and the device commands.
_GRAFANA_ROLE = "sealscope_grafana"


def _grant_grafana_read() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{_GRAFANA_ROLE}') THEN
                GRANT SELECT ON alert_events, device_commands TO {_GRAFANA_ROLE};
            END IF;
        END $$"""
    )


def downgrade() -> None:
    op.drop_table("device_commands")
