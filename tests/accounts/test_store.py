"""One contract, both adapters: the in-memory store and SQLite on a real file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sealscope.accounts import ApiKey, MemoryAccountStore, Remit, Session, Site, SqliteAccountStore
from sealscope.accounts.store import AccountStore
from sealscope.errors import Conflict, NotFound


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountStore]:
    s: AccountStore = (
        MemoryAccountStore() if request.param == "memory" else SqliteAccountStore(tmp_path / "s.db")
    )
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
