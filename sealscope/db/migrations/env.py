"""Alembic's entry point. ``sealscope.db.migrate`` hands it an open connection inside a
locked transaction; run by hand (``alembic -c ... revision --autogenerate``), it opens
``SEALSCOPE_DATABASE_URL`` itself."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

import sealscope.db  # noqa: F401  (declares every table on the shared metadata)
from sealscope.db.engine import open_engine
from sealscope.db.metadata import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: copy-and-move batches do it there
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = open_engine(os.environ.get("SEALSCOPE_DATABASE_URL", "sqlite:///sealscope.db"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
