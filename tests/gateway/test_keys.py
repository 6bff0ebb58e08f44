"""The device key store: only hashes on disk, rotation with grace, revocation."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from gateway.keys import SqliteDeviceKeys, load_pepper
from sealscope.errors import Conflict, NotFound


class Clock:
    def __init__(self) -> None:
        self.now = 1_718_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(tmp_path: Path, clock: Clock) -> SqliteDeviceKeys:
    store = SqliteDeviceKeys(
        tmp_path / "state.db", pepper=load_pepper(tmp_path / "pepper"), clock=clock
    )
    yield store
    store.close()


def test_keys_issue_and_verify(keys: SqliteDeviceKeys, tmp_path: Path) -> None:
    key = keys.issue("ACME-V-1")
    assert len(key) == 43
    assert keys.verify("ACME-V-1", key)
    assert not keys.verify("ACME-V-1", key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert not keys.verify("ACME-V-2", key)  # a key opens its own device only
    with pytest.raises(Conflict):
        keys.issue("ACME-V-1")
    raw = (tmp_path / "state.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("state.db-*")
    )
    assert key.encode() not in raw


def test_keys_rotation_keeps_the_old_key_for_the_grace_period(
    keys: SqliteDeviceKeys, clock: Clock
) -> None:
    old = keys.issue("ACME-V-1")
    new = keys.rotate("ACME-V-1", grace_s=3600)
    assert keys.verify("ACME-V-1", new) and keys.verify("ACME-V-1", old)
    clock.now += 3601
    assert keys.verify("ACME-V-1", new) and not keys.verify("ACME-V-1", old)
    assert keys.info("ACME-V-1").previous_valid_until == pytest.approx(clock.now - 1)
    with pytest.raises(NotFound):
        keys.rotate("ACME-V-9")


def test_keys_replace_and_revoke_end_the_old_key_at_once(keys: SqliteDeviceKeys) -> None:
    old = keys.issue("ACME-V-1")
    new = keys.issue("ACME-V-1", replace=True)
    assert keys.verify("ACME-V-1", new) and not keys.verify("ACME-V-1", old)
    keys.revoke("ACME-V-1")
    assert not keys.verify("ACME-V-1", new)
    with pytest.raises(NotFound):
        keys.revoke("ACME-V-1")


def test_keys_issue_many_keeps_existing_keys(keys: SqliteDeviceKeys) -> None:
    first = keys.issue("ACME-V-1")
    issued = keys.issue_many(["ACME-V-1", "ACME-V-2", "ACME-V-3"])
    assert sorted(issued) == ["ACME-V-2", "ACME-V-3"]
    assert keys.verify("ACME-V-1", first)
    assert all(keys.verify(d, k) for d, k in issued.items())


def test_keys_pepper_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "gw" / "pepper"
    pepper = load_pepper(path)
    assert load_pepper(path) == pepper
    assert os.stat(path).st_mode & 0o777 == 0o600
    other = SqliteDeviceKeys(tmp_path / "s.db", pepper=pepper)
    key = other.issue("ACME-V-1")
    other.close()
    # the same database under another pepper verifies nothing
    wrong = SqliteDeviceKeys(tmp_path / "s.db", pepper=b"x" * 32)
    assert not wrong.verify("ACME-V-1", key)
    wrong.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        (hashed,) = conn.execute("SELECT key_hash FROM gateway_device_keys").fetchone()
    assert len(hashed) == 32
