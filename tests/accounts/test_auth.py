"""Keys, passwords, sessions and the sign-in throttle, on the in-memory store."""

from __future__ import annotations

import pytest

from sealscope.accounts import Authenticator, MemoryAccountStore, SignInThrottle, tokens
from sealscope.accounts.passwords import hash_password
from sealscope.errors import SignInThrottled, Unauthenticated


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def test_tokens_api_key_shape_and_digest() -> None:
    key, key_id, secret_sha256 = tokens.new_api_key()
    parsed = tokens.parse_api_key(key)
    assert parsed is not None and parsed[0] == key_id
    assert tokens.same_digest(parsed[1], secret_sha256)
    assert secret_sha256 not in key and parsed[1] not in secret_sha256
    for bad in ("", "ssk_", key + "x", key.replace("ssk_", "sk_"), key.upper()):
        assert tokens.parse_api_key(bad) is None


def test_authenticator_key_expiry_revocation_and_last_use() -> None:
    clock = Clock()
    store = MemoryAccountStore(clock=clock)
    auth = Authenticator(store, clock=clock)
    org = store.create_org(name="ACME", kind="manufacturer", manufacturer_code="ACME")
    key, record = auth.create_key(org.id, name="export", expires_at=clock.t + 100)
    principal = auth.principal_for_key(key)
    assert (principal.org_id, principal.via, principal.name) == (org.id, "key", "export")
    assert store.get_key(record.key_id).last_used_at == clock.t
    # a wrong secret under a real key id, and a key id that does not exist
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for token in (wrong, "ssk_aaaaaaaaaaaa_" + "A" * 43, "nonsense"):
        with pytest.raises(Unauthenticated):
            auth.principal_for_key(token)
    clock.t += 100
    with pytest.raises(Unauthenticated):
        auth.principal_for_key(key)  # expired
    key2, record2 = auth.create_key(org.id, name="other")
    store.revoke_key(record2.key_id, t=clock.t)
    with pytest.raises(Unauthenticated):
        auth.principal_for_key(key2)


def test_authenticator_sessions_expire_and_sign_out() -> None:
    clock = Clock()
    store = MemoryAccountStore(clock=clock)
    auth = Authenticator(store, clock=clock, session_ttl_s=60)
    org = store.create_org(name="Op", kind="operator")
    store.create_user(org_id=org.id, username="ann", password_hash=hash_password("p" * 12))
    token, principal = auth.sign_in("ann", "p" * 12, source="10.0.0.1")
    assert (
        principal.name == "ann" and auth.principal_for_session(token).user_id == principal.user_id
    )
    assert store.get_session(token) is None  # stored as a digest only
    auth.sign_out(token)
    with pytest.raises(Unauthenticated):
        auth.principal_for_session(token)
    token, _ = auth.sign_in("ann", "p" * 12, source="10.0.0.1")
    clock.t += 60
    with pytest.raises(Unauthenticated):
        auth.principal_for_session(token)


def test_throttle_per_username_and_per_source_with_retry_after() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_username=2, per_source=3, window_s=100, clock=clock)
    for _ in range(2):
        throttle.check(username="ann", source="a")
        throttle.failed(username="ann", source="a")
    with pytest.raises(SignInThrottled) as caught:
        throttle.check(username="ann", source="b")
    assert caught.value.retry_after_s == 100
    throttle.failed(username="bob", source="a")  # the third failure from source a
    with pytest.raises(SignInThrottled):
        throttle.check(username="carol", source="a")
    clock.t += 100
    throttle.check(username="ann", source="a")  # the window slid past them


def test_authenticator_locked_username_refuses_even_the_right_password() -> None:
    store = MemoryAccountStore()
    auth = Authenticator(store, throttle=SignInThrottle(per_username=2))
    org = store.create_org(name="Op", kind="operator")
    store.create_user(org_id=org.id, username="ann", password_hash=hash_password("p" * 12))
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            auth.sign_in("ann", "wrong password", source="x")
    with pytest.raises(SignInThrottled):
        auth.sign_in("ann", "p" * 12, source="y")
