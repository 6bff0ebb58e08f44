"""``AccountStore`` on sealscope's SQLite state file (the embedded default).

Interim adapter: when the SQLAlchemy foundation (``sealscope/db``) lands, these tables move
to its Alembic revision ``0002_accounts`` and this module goes. The schema is the same.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sealscope.accounts.models import ApiKey, Organisation, OrgKind, Remit, Session, Site, User
from sealscope.errors import Conflict, NotFound
from sealscope.sqlitedb import Database, Migration

__all__ = ["SqliteAccountStore"]

_MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS orgs (
            id                INTEGER PRIMARY KEY AUTOINCREMENT,
            name              TEXT NOT NULL UNIQUE,
            kind              TEXT NOT NULL CHECK (kind IN
                                  ('operator', 'manufacturer', 'monitoring_point', 'admin')),
            manufacturer_code TEXT,
            remit             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(remit)),
            created_at        REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS sites (
            name        TEXT PRIMARY KEY,
            operator_id INTEGER NOT NULL REFERENCES orgs (id),
            region      TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX IF NOT EXISTS sites_by_operator ON sites (operator_id, name)",
        """CREATE TABLE IF NOT EXISTS users (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            org_id        INTEGER NOT NULL REFERENCES orgs (id),
            username      TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at    REAL NOT NULL,
            disabled      INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE IF NOT EXISTS api_keys (
            key_id        TEXT PRIMARY KEY,
            org_id        INTEGER NOT NULL REFERENCES orgs (id),
            name          TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL,
            created_at    REAL NOT NULL,
            expires_at    REAL,
            revoked_at    REAL,
            last_used_at  REAL
        )""",
        "CREATE INDEX IF NOT EXISTS api_keys_by_org ON api_keys (org_id, created_at)",
        """CREATE TABLE IF NOT EXISTS sessions (
            token_sha256 TEXT PRIMARY KEY,
            user_id      INTEGER NOT NULL REFERENCES users (id),
            created_at   REAL NOT NULL,
            expires_at   REAL NOT NULL
        )""",
    ),
)


def _remit_json(remit: Remit) -> str:
    return json.dumps(
        {
            "regions": sorted(remit.regions),
            "kinds": sorted(remit.kinds),
            "manufacturers": sorted(remit.manufacturers),
            "models": sorted(remit.models),
            "raw_data": remit.raw_data,
        }
    )


def _remit(raw: str) -> Remit:
    data: dict[str, Any] = json.loads(raw)
    return Remit(
        regions=frozenset(data.get("regions", ())),
        kinds=frozenset(data.get("kinds", ())),
        manufacturers=frozenset(data.get("manufacturers", ())),
        models=frozenset(data.get("models", ())),
        raw_data=bool(data.get("raw_data", False)),
    )


def _org(row: sqlite3.Row) -> Organisation:
    return Organisation(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        manufacturer_code=row["manufacturer_code"],
        remit=_remit(row["remit"]),
        created_at=row["created_at"],
    )


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        org_id=row["org_id"],
        username=row["username"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - sqlite3.Row


class SqliteAccountStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(path)
        self._clock = clock
        self._db.migrate("accounts", _MIGRATIONS)

    def create_org(
        self, *, name: str, kind: OrgKind, manufacturer_code: str | None = None
    ) -> Organisation:
        try:
            with self._db.write() as conn:
                cur = conn.execute(
                    "INSERT INTO orgs (name, kind, manufacturer_code, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (name, kind, manufacturer_code, self._clock()),
                )
                org_id = cur.lastrowid
        except sqlite3.IntegrityError as exc:
            raise Conflict("organisation", name) from exc
        assert org_id is not None
        return self.get_org(org_id)

    def get_org(self, org_id: int) -> Organisation:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM orgs WHERE id = ?", (org_id,)).fetchone()
        if row is None:
            raise NotFound("organisation", str(org_id))
        return _org(row)

    def list_orgs(self, *, kind: OrgKind | None = None) -> list[Organisation]:
        with self._db.read() as conn:
            if kind is None:
                rows = conn.execute("SELECT * FROM orgs ORDER BY id").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM orgs WHERE kind = ? ORDER BY id", (kind,)
                ).fetchall()
        return [_org(r) for r in rows]

    def set_remit(self, org_id: int, remit: Remit) -> Organisation:
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE orgs SET remit = ? WHERE id = ?", (_remit_json(remit), org_id)
            )
        if cur.rowcount == 0:
            raise NotFound("organisation", str(org_id))
        return self.get_org(org_id)

    def put_site(self, site: Site) -> Site:
        self.get_org(site.operator_id)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO sites (name, operator_id, region) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET"
                " operator_id = excluded.operator_id, region = excluded.region",
                (site.name, site.operator_id, site.region),
            )
        return site

    def list_sites(self, *, operator_id: int | None = None) -> list[Site]:
        with self._db.read() as conn:
            if operator_id is None:
                rows = conn.execute("SELECT * FROM sites ORDER BY name").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM sites WHERE operator_id = ? ORDER BY name", (operator_id,)
                ).fetchall()
        return [Site(r["name"], r["operator_id"], r["region"]) for r in rows]

    def create_user(self, *, org_id: int, username: str, password_hash: str) -> User:
        self.get_org(org_id)
        try:
            with self._db.write() as conn:
                cur = conn.execute(
                    "INSERT INTO users (org_id, username, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (org_id, username, password_hash, self._clock()),
                )
                user_id = cur.lastrowid
        except sqlite3.IntegrityError as exc:
            raise Conflict("user", username) from exc
        assert user_id is not None
        return self.get_user(user_id)

    def find_user(self, username: str) -> User | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return None if row is None else _user(row)

    def get_user(self, user_id: int) -> User:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise NotFound("user", str(user_id))
        return _user(row)

    def list_users(self, org_id: int) -> list[User]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM users WHERE org_id = ? ORDER BY id", (org_id,)
            ).fetchall()
        return [_user(r) for r in rows]

    def add_key(self, key: ApiKey) -> ApiKey:
        self.get_org(key.org_id)
        try:
            with self._db.write() as conn:
                conn.execute(
                    "INSERT INTO api_keys (key_id, org_id, name, secret_sha256, created_at,"
                    " expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.key_id,
                        key.org_id,
                        key.name,
                        key.secret_sha256,
                        key.created_at,
                        key.expires_at,
                        key.revoked_at,
                        key.last_used_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict("api key", key.key_id) from exc
        return key

    def get_key(self, key_id: str) -> ApiKey:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound("api key", key_id)
        return _key(row)

    def list_keys(self, org_id: int) -> list[ApiKey]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM api_keys WHERE org_id = ? ORDER BY created_at, key_id", (org_id,)
            ).fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str, *, t: float) -> ApiKey:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (t, key_id),
            )
        return self.get_key(key_id)

    def touch_key(self, key_id: str, *, t: float) -> None:
        with self._db.write() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (t, key_id))

    def add_session(self, session: Session) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO sessions (token_sha256, user_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (session.token_sha256, session.user_id, session.created_at, session.expires_at),
            )

    def get_session(self, token_sha256: str) -> Session | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT * FROM sessions WHERE token_sha256 = ?", (token_sha256,)
            ).fetchone()
        return None if row is None else Session(**{k: row[k] for k in row.keys()})  # noqa: SIM118

    def delete_session(self, token_sha256: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (token_sha256,))

    def delete_expired_sessions(self, *, now: float) -> int:
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        return cur.rowcount

    def close(self) -> None:
        self._db.close()
