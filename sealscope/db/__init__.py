"""The state database: registry, alerts, dead letters, accounts, delivery.

SQLAlchemy 2.0 Core on one shared ``metadata``; SQLite by default, PostgreSQL in
production (``SEALSCOPE_DATABASE_URL``). Alembic migrations ship in ``migrations/`` and are
applied by ``migrate(engine)`` at start-up, never by hand.

Adding a concept: declare its tables in a new module here on ``metadata`` (import it
below so Alembic's autogenerate sees it) and add one revision under
``migrations/versions``.
"""

from sealscope.db import accounts, alert_events, commands, delivery, provisioning, tables
from sealscope.db.engine import (
    insert_for,
    is_unique_violation,
    open_engine,
    read,
    sqlite_url,
    write,
)
from sealscope.db.metadata import metadata
from sealscope.db.migrate import head_revisions, migrate, open_migrated

__all__ = [
    "accounts",
    "alert_events",
    "commands",
    "delivery",
    "head_revisions",
    "insert_for",
    "is_unique_violation",
    "metadata",
    "migrate",
    "open_engine",
    "open_migrated",
    "provisioning",
    "read",
    "sqlite_url",
    "tables",
    "write",
]
