"""Accounts written by the sqlite3 adapter (before revision ``0005_accounts``) survive the
upgrade: the revision adopts their tables, and the SQL store reads and extends them."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from sealscope.accounts import ApiKey, Remit, Session, Site, SqlAccountStore
from sealscope.db import head_revisions, migrate, open_engine, read, sqlite_url
from sealscope.db.migrate import _config
from sealscope.errors import Conflict
from sealscope.sqlitedb import Database

# The accounts tables exactly as sealscope.accounts.sqlite made them (frozen copy).
_OLD_ACCOUNTS = [
    """CREATE TABLE IF NOT EXISTS orgs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN
            ('operator', 'manufacturer', 'monitoring_point', 'admin')),
        manufacturer_code TEXT,
        remit TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(remit)),
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sites (
        name TEXT PRIMARY KEY, operator_id INTEGER NOT NULL REFERENCES orgs (id),
        region TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS sites_by_operator ON sites (operator_id, name)",
    """CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY AUTOINCREMENT, org_id INTEGER NOT NULL REFERENCES orgs (id),
        username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
        created_at REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs (id),
        name TEXT NOT NULL, secret_sha256 TEXT NOT NULL, created_at REAL NOT NULL,
        expires_at REAL, revoked_at REAL, last_used_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS api_keys_by_org ON api_keys (org_id, created_at)",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_sha256 TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id),
        created_at REAL NOT NULL, expires_at REAL NOT NULL
    )""",
]


def _write_old_accounts(path: Path) -> None:
    old = Database(path)
    old.migrate("accounts", [_OLD_ACCOUNTS])
    with old.write() as conn:
        conn.execute(
            "INSERT INTO orgs (name, kind, remit, created_at) VALUES"
            " ('Water Works', 'operator', '{}', 1.0),"
            """ ('Wenzhou MP', 'monitoring_point', '{"regions": ["R1"], "kinds": ["valve"],"""
            """ "manufacturers": [], "models": [], "raw_data": true}', 2.0)"""
        )
        conn.execute("INSERT INTO sites VALUES ('north', 1, 'R1')")
        conn.execute(
            "INSERT INTO users (org_id, username, password_hash, created_at, disabled)"
            " VALUES (1, 'ann', '$argon2id$x', 3.0, 1)"
        )
        conn.execute("INSERT INTO api_keys VALUES ('k1', 1, 'ops', 'ab', 4.0, NULL, 5.0, 6.0)")
        conn.execute("INSERT INTO sessions VALUES ('d1', 1, 7.0, 8.0)")
    old.close()


# None: a file from before Alembic; "0004_provisioning": what main wrote while accounts still
# went through sqlite3 beside the SQLAlchemy tables
@pytest.mark.parametrize("alembic_at", [None, "0004_provisioning"])
def test_migrate_adopts_accounts_the_sqlite3_adapter_wrote(
    tmp_path: Path, alembic_at: str | None
) -> None:
    path = tmp_path / "sealscope.db"
    engine = open_engine(sqlite_url(path))
    if alembic_at is not None:
        with engine.begin() as conn:
            command.upgrade(_config(conn), alembic_at)
    _write_old_accounts(path)

    migrate(engine)

    with read(engine) as conn:
        versions = set(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))
    assert versions == head_revisions() and len(versions) == 1  # at the one head
    store = SqlAccountStore(engine)
    ops, mp = store.list_orgs()
    assert (ops.name, mp.remit) == (
        "Water Works",
        Remit(frozenset({"R1"}), frozenset({"valve"}), raw_data=True),
    )
    assert store.list_sites(operator_id=ops.id) == [Site("north", ops.id, "R1")]
    ann = store.find_user("ann")
    assert ann is not None and ann.disabled and ann.password_hash == "$argon2id$x"
    assert store.get_key("k1") == ApiKey("k1", 1, "ops", "ab", 4.0, None, 5.0, 6.0)
    assert store.get_session("d1") == Session("d1", ann.id, 7.0, 8.0)
    # the adopted tables keep their constraints and carry on counting
    with pytest.raises(Conflict):
        store.create_org(name="Water Works", kind="operator")
    assert store.create_org(name="ACME", kind="manufacturer", manufacturer_code="ACME").id == 3
    assert store.create_user(org_id=ops.id, username="bob", password_hash="h").id == 2
    engine.dispose()
