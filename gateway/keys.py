"""Per-device keys for the gateway's ingress: issue, rotate, revoke, verify.

A key is 32 random bytes (43 URL-safe characters), so a fast keyed hash is enough:
the store keeps ``HMAC-SHA256(pepper, device_id NUL key)`` and never the key. The pepper
is a server secret kept outside the database (``load_pepper``), so a copy of the state
database alone cannot even confirm a guessed key. Binding the device id into the hash
means one device's key never opens another device.

Rotation keeps the previous key valid for a grace period, because a sleeping NB-IoT
device only learns its new key from a downlink after its next uplink.

Port: ``DeviceKeys`` (what the ingresses need: ``verify``). Adapter: ``SqliteDeviceKeys``
on the state database, shared with the HTTP push ingress. ``verify`` runs on every uplink,
so it answers from a small in-memory cache of the hashes: changes made through this
object apply at once, changes made by another process within ``cache_ttl_s`` (an unknown
device is looked up again after ``miss_ttl_s``, so a device provisioned elsewhere gets in
quickly while a flood of unknown ids cannot hammer the database).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sealscope.errors import ConfigError, Conflict, NotFound
from sealscope.sqlitedb import Database, Migration
from sealscope.topics import check_device_id

__all__ = ["DeviceKeyInfo", "DeviceKeys", "SqliteDeviceKeys", "load_pepper"]

log = logging.getLogger(__name__)

KEY_BYTES = 32
PEPPER_BYTES = 32
DEFAULT_GRACE_S = 7 * 24 * 3600.0

_MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS gateway_device_keys (
            device_id           TEXT PRIMARY KEY,
            key_hash            BLOB NOT NULL,
            issued_at           REAL NOT NULL,
            previous_hash       BLOB,
            previous_valid_until REAL
        )""",
    ),
)

# current hash, previous hash, previous valid until
_Hashes = tuple[bytes, bytes | None, float | None]


@dataclass(frozen=True, slots=True)
class DeviceKeyInfo:
    """What may be shown about a device's key: never the key or its hash."""

    device_id: str
    issued_at: float
    previous_valid_until: float | None


class DeviceKeys(Protocol):
    def verify(self, device_id: str, key: str) -> bool:
        """True if ``key`` is the device's current key (or its previous one, in grace)."""
        ...


def load_pepper(path: Path) -> bytes:
    """The server pepper in ``path``, created (0600) with random bytes on first use."""
    try:
        pepper = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        pepper = secrets.token_bytes(PEPPER_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_pepper(path)
        with os.fdopen(fd, "wb") as f:
            f.write(pepper)
            f.flush()
            os.fsync(f.fileno())
        log.info("keys: created a new pepper in %s", path)
        return pepper
    if len(pepper) < 16:
        raise ConfigError("gateway pepper", f"{path} holds {len(pepper)} bytes; need >= 16")
    return pepper


class SqliteDeviceKeys:
    """``DeviceKeys`` on the state database (``Settings.state_db``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        pepper: bytes,
        clock: Callable[[], float] = time.time,
        cache_ttl_s: float = 30.0,
        miss_ttl_s: float = 2.0,
        cache_max: int = 200_000,
    ) -> None:
        if len(pepper) < 16:
            raise ConfigError("pepper", "a pepper needs at least 16 bytes")
        self._pepper = pepper
        self._clock = clock
        self._cache_ttl_s = cache_ttl_s
        self._miss_ttl_s = miss_ttl_s
        self._cache_max = cache_max
        # device_id -> (monotonic time of the lookup, hashes or None for "no such device")
        self._cache: dict[str, tuple[float, _Hashes | None]] = {}
        self._db = Database(path)
        self._db.migrate("gateway_keys", _MIGRATIONS)

    def _hash(self, device_id: str, key: str) -> bytes:
        msg = device_id.encode() + b"\0" + key.encode("utf-8", "surrogateescape")
        return hmac.new(self._pepper, msg, hashlib.sha256).digest()

    def issue(self, device_id: str, *, replace: bool = False) -> str:
        """A new key for a device; ``Conflict`` if it has one and ``replace`` is False.

        ``replace`` drops the old key at once (a compromised key); ``rotate`` keeps it
        valid for a grace period."""
        check_device_id(device_id)
        key = secrets.token_urlsafe(KEY_BYTES)
        self._cache.pop(device_id, None)
        with self._db.write() as conn:
            if replace:
                conn.execute("DELETE FROM gateway_device_keys WHERE device_id = ?", (device_id,))
            exists = conn.execute(
                "SELECT 1 FROM gateway_device_keys WHERE device_id = ?", (device_id,)
            ).fetchone()
            if exists:
                raise Conflict("device key", device_id)
            conn.execute(
                "INSERT INTO gateway_device_keys (device_id, key_hash, issued_at) VALUES (?, ?, ?)",
                (device_id, self._hash(device_id, key), self._clock()),
            )
        return key

    def issue_many(self, device_ids: Iterable[str]) -> dict[str, str]:
        """Keys for a fleet in one transaction (bulk provisioning); existing keys are kept
        and not returned, so re-running a provisioning file does not lock devices out."""
        ids = [check_device_id(d) for d in device_ids]
        for device_id in ids:
            self._cache.pop(device_id, None)
        issued: dict[str, str] = {}
        now = self._clock()
        with self._db.write() as conn:
            for device_id in ids:
                key = secrets.token_urlsafe(KEY_BYTES)
                cur = conn.execute(
                    "INSERT INTO gateway_device_keys (device_id, key_hash, issued_at)"
                    " VALUES (?, ?, ?) ON CONFLICT (device_id) DO NOTHING",
                    (device_id, self._hash(device_id, key), now),
                )
                if cur.rowcount:
                    issued[device_id] = key
        return issued

    def rotate(self, device_id: str, *, grace_s: float = DEFAULT_GRACE_S) -> str:
        """A new key; the current one stays valid for ``grace_s``. ``NotFound`` if none."""
        key = secrets.token_urlsafe(KEY_BYTES)
        now = self._clock()
        self._cache.pop(device_id, None)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT key_hash FROM gateway_device_keys WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is None:
                raise NotFound("device key", device_id)
            conn.execute(
                "UPDATE gateway_device_keys SET key_hash = ?, issued_at = ?,"
                " previous_hash = ?, previous_valid_until = ? WHERE device_id = ?",
                (self._hash(device_id, key), now, row["key_hash"], now + grace_s, device_id),
            )
        return key

    def revoke(self, device_id: str) -> None:
        self._cache.pop(device_id, None)
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM gateway_device_keys WHERE device_id = ?", (device_id,))
            if not cur.rowcount:
                raise NotFound("device key", device_id)

    def info(self, device_id: str) -> DeviceKeyInfo:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT issued_at, previous_valid_until FROM gateway_device_keys"
                " WHERE device_id = ?",
                (device_id,),
            ).fetchone()
        if row is None:
            raise NotFound("device key", device_id)
        return DeviceKeyInfo(device_id, row["issued_at"], row["previous_valid_until"])

    def verify(self, device_id: str, key: str) -> bool:
        hashes = self._hashes(device_id)
        if hashes is None:
            return False
        current, previous, until = hashes
        presented = self._hash(device_id, key)
        if hmac.compare_digest(presented, current):
            return True
        return (
            previous is not None
            and until is not None
            and self._clock() < until
            and hmac.compare_digest(presented, previous)
        )

    def _hashes(self, device_id: str) -> _Hashes | None:
        now = time.monotonic()
        cached = self._cache.get(device_id)
        if cached is not None:
            looked_up, hashes = cached
            if now - looked_up < (self._cache_ttl_s if hashes else self._miss_ttl_s):
                return hashes
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT key_hash, previous_hash, previous_valid_until FROM gateway_device_keys"
                " WHERE device_id = ?",
                (device_id,),
            ).fetchone()
        hashes = None
        if row is not None:
            previous = bytes(row[1]) if row[1] is not None else None
            hashes = (bytes(row[0]), previous, row[2])
        if len(self._cache) >= self._cache_max:
            self._cache.clear()  # crude and rare: the next lookups refill it
        self._cache[device_id] = (now, hashes)
        return hashes

    def close(self) -> None:
        self._db.close()
