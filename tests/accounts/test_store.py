"""One contract, every adapter: in memory, and SQL on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sealscope.accounts import ApiKey, MemoryAccountStore, Remit, Session, Site, SqlAccountStore
from sealscope.accounts.store import AccountStore
from sealscope.db import open_migrated, sqlite_url
from sealscope.errors import Conflict, NotFound


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountStore]:
    if request.param == "memory":
        yield MemoryAccountStore()
        return
    # a fresh database each, so no test sees another's organisations
    url = (
        sqlite_url(tmp_path / "state.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_databases").create()
    )
    s = SqlAccountStore(open_migrated(url), owns_engine=True)
    yield s
    s.close()


def _key(org_id: int, key_id: str = "aaaaaaaaaaaa") -> ApiKey:
    return ApiKey(key_id, org_id, "k", "0" * 64, created_at=1.0)


def test_store_orgs_names_are_unique_and_remits_round_trip(store: AccountStore) -> None:
    mp = store.create_org(name="Wenzhou MP", kind="monitoring_point")
    with pytest.raises(Conflict):
        store.create_org(name="Wenzhou MP", kind="operator")
    remit = Remit(frozenset({"R1", "R2"}), frozenset({"valve"}), frozenset({"ACME"}), raw_data=True)
    assert store.set_remit(mp.id, remit).remit == remit
    assert store.get_org(mp.id).remit == remit
    assert [o.id for o in store.list_orgs(kind="monitoring_point")] == [mp.id]
    with pytest.raises(NotFound):
        store.get_org(999)


def test_store_sites_move_between_operators(store: AccountStore) -> None:
    a = store.create_org(name="A", kind="operator")
    b = store.create_org(name="B", kind="operator")
    store.put_site(Site("north", a.id, "R1"))
    store.put_site(Site("north", b.id, "R1"))
    assert store.list_sites(operator_id=a.id) == []
    assert store.list_sites(operator_id=b.id) == [Site("north", b.id, "R1")]


def test_store_users_keys_and_sessions(store: AccountStore) -> None:
    org = store.create_org(name="ACME", kind="manufacturer", manufacturer_code="ACME")
    user = store.create_user(org_id=org.id, username="ann", password_hash="h")
    with pytest.raises(Conflict):
        store.create_user(org_id=org.id, username="ann", password_hash="h")
    assert store.find_user("ann") == user and store.find_user("bob") is None
    store.add_key(_key(org.id))
    with pytest.raises(Conflict):
        store.add_key(_key(org.id))
    store.touch_key("aaaaaaaaaaaa", t=5.0)
    first = store.revoke_key("aaaaaaaaaaaa", t=7.0)
    again = store.revoke_key("aaaaaaaaaaaa", t=9.0)
    assert first.revoked_at == again.revoked_at == 7.0 and again.last_used_at == 5.0
    assert [k.key_id for k in store.list_keys(org.id)] == ["aaaaaaaaaaaa"]
    store.add_session(Session("d1", user.id, 1.0, 10.0))
    store.add_session(Session("d2", user.id, 1.0, 100.0))
    assert store.delete_expired_sessions(now=50.0) == 1
    assert store.get_session("d1") is None and store.get_session("d2") is not None
    store.delete_session("d2")
    assert store.get_session("d2") is None


def test_store_hostile_lookups_find_nothing(store: AccountStore) -> None:
    # NUL cannot be stored in PostgreSQL text: a lookup by it is a miss, not a 500
    assert store.find_user("ann\x00") is None
    with pytest.raises(NotFound):
        store.get_key("aaaa\x00")
    store.touch_key("aaaa\x00", t=1.0)
    assert store.get_session("\x00") is None
    store.delete_session("\x00")


def test_store_users_and_keys_list_per_org(store: AccountStore) -> None:
    a = store.create_org(name="A", kind="operator")
    b = store.create_org(name="B", kind="manufacturer", manufacturer_code="ACME")
    assert b.manufacturer_code == "ACME" and store.get_org(b.id) == b
    ann = store.create_user(org_id=a.id, username="ann", password_hash="h1")
    bob = store.create_user(org_id=b.id, username="bob", password_hash="h2")
    assert store.get_user(ann.id) == ann and not ann.disabled
    assert store.list_users(a.id) == [ann] and store.list_users(b.id) == [bob]
    with pytest.raises(NotFound):
        store.create_user(org_id=999, username="eve", password_hash="h")
    with pytest.raises(NotFound):
        store.get_user(999)
    store.add_key(ApiKey("k2", a.id, "later", "1" * 64, created_at=2.0, expires_at=9.0))
    store.add_key(ApiKey("k1", a.id, "first", "2" * 64, created_at=1.0))
    assert [k.key_id for k in store.list_keys(a.id)] == ["k1", "k2"]
    assert store.get_key("k2").expires_at == 9.0 and store.list_keys(b.id) == []
    with pytest.raises(NotFound):
        store.revoke_key("nope", t=1.0)
    assert [o.name for o in store.list_orgs()] == ["A", "B"]
    with pytest.raises(NotFound):
        store.set_remit(999, Remit())
