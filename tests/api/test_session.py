"""Sign-in, CSRF, throttling, keys over HTTP, what each scope lists, and no secret in logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sealscope.accounts import Authenticator, Remit, Site
from sealscope.accounts.passwords import hash_password
from sealscope.registry import Device, SqliteDeviceRegistry

PASSWORD = "a sufficiently long password"


@pytest.fixture
def tech(authenticator: Authenticator) -> str:
    store = authenticator.store
    org = store.create_org(name="North Water", kind="operator")
    store.put_site(Site("north", org.id, "R1"))
    store.create_user(org_id=org.id, username="tech", password_hash=hash_password(PASSWORD))
    return "tech"


def test_session_cookie_flags_csrf_and_sign_out(anon: TestClient, tech: str) -> None:
    signed = anon.post("/api/v1/session", json={"username": tech, "password": PASSWORD})
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http here; https requests get Secure
    csrf = signed.json()["csrf_token"]
    assert anon.get("/api/v1/session").json()["name"] == tech
    # an unsafe method with the cookie alone is refused, with the token it passes
    assert anon.post("/api/v1/keys", json={"name": "x"}).status_code == 403
    assert (
        anon.post("/api/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": "0"}).status_code
        == 403
    )
    assert (
        anon.post("/api/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": csrf}).status_code
        == 201
    )
    assert anon.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert anon.get("/api/v1/session").status_code == 401


def test_session_https_cookie_is_secure(app: Any, client: TestClient, tech: str) -> None:
    secure = TestClient(app, base_url="https://testserver")
    signed = secure.post("/api/v1/session", json={"username": tech, "password": PASSWORD})
    assert "secure" in signed.headers["set-cookie"].lower()


def test_session_failed_sign_ins_are_throttled_with_retry_after(
    anon: TestClient, tech: str
) -> None:
    for _ in range(3):  # the conftest throttle: 3 per username
        assert (
            anon.post("/api/v1/session", json={"username": tech, "password": "nope"}).status_code
            == 401
        )
    refused = anon.post("/api/v1/session", json={"username": tech, "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"] == "too_many_sign_ins"


def test_session_key_only_in_the_authorization_header(anon: TestClient, admin_key: str) -> None:
    assert anon.get("/api/v1/devices", params={"api_key": admin_key}).status_code == 401
    assert anon.get("/api/v1/devices", params={"key": admin_key}).status_code == 401
    assert anon.get("/api/v1/devices", headers={"Authorization": admin_key}).status_code == 401
    answer = anon.get("/api/v1/devices", headers={"Authorization": f"Bearer {admin_key}x"})
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("days", [True, "30", 1.5, None])
def test_session_key_lifetime_must_be_a_whole_number(client: TestClient, days: object) -> None:
    # schemathesis found `true` taken as one day: numbers in bodies are strict
    answer = client.post("/api/v1/keys", json={"name": "export", "expires_in_days": days})
    assert answer.status_code == 422
    assert "expires_in_days" in str(answer.json()["detail"])


def test_session_keys_listed_with_last_use_never_the_secret(
    client: TestClient, admin_key: str
) -> None:
    created = client.post("/api/v1/keys", json={"name": "export", "expires_in_days": 1}).json()
    assert created["key"].startswith(f"ssk_{created['key_id']}_")
    client.get("/api/v1/devices", headers={"Authorization": f"Bearer {created['key']}"})
    listed = client.get("/api/v1/keys")
    assert created["key"] not in listed.text and admin_key not in listed.text
    mine = next(k for k in listed.json()["data"] if k["key_id"] == created["key_id"])
    assert mine["last_used_at"] is not None and mine["expires_at"] is not None
    assert client.delete(f"/api/v1/keys/{created['key_id']}").json()["revoked_at"]
    again = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {created['key']}"})
    assert again.status_code == 401


def test_scope_lists_only_what_each_role_may_see(
    app: Any, client: TestClient, authenticator: Authenticator, registry: SqliteDeviceRegistry
) -> None:
    store = authenticator.store
    op = store.create_org(name="Op", kind="operator")
    store.put_site(Site("north", op.id, "R1"))
    maker = store.create_org(name="ACME", kind="manufacturer", manufacturer_code="ACME")
    mp = store.create_org(name="MP", kind="monitoring_point")
    store.set_remit(mp.id, Remit(frozenset({"R1"}), frozenset({"valve"})))
    for device in (
        Device("ACME-V-0001", "valve", "ACME", "BV", site="north", region="R1"),
        Device("ACME-P-0002", "pump", "ACME", "P", site="south", region="R1"),
        Device("OTHER-V-0003", "valve", "Other", "X", site="north", region="R1"),
        Device("OTHER-V-0004", "valve", "Other", "X", site="south", region="R2"),
    ):
        registry.add(device)

    def listed(org_id: int, **params: Any) -> dict[str, str]:
        key, _ = authenticator.create_key(org_id, name="t")
        caller = TestClient(app, headers={"Authorization": f"Bearer {key}"})
        data = caller.get("/api/v1/devices", params=params).json()["data"]
        return {d["device_id"]: d["site"] for d in data}

    assert listed(op.id) == {"ACME-V-0001": "north", "OTHER-V-0003": "north"}
    assert listed(maker.id) == {"ACME-V-0001": "", "ACME-P-0002": ""}  # no site names
    assert listed(maker.id, site="north") == {}  # nor a way to probe them
    assert listed(mp.id) == {"ACME-V-0001": "", "OTHER-V-0003": ""}
    assert listed(op.id, limit=1, offset=1) == {"OTHER-V-0003": "north"}
    # a monitoring point reads bucketed telemetry only
    key, _ = authenticator.create_key(mp.id, name="t")
    caller = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    url = "/api/v1/devices/ACME-V-0001/telemetry"
    assert caller.get(url, params={"field": "p_in_kpa"}).status_code == 403
    assert caller.get(url, params={"field": "p_in_kpa", "every": "1h"}).status_code == 200
    # outside the scope reads exactly like a missing id
    outside = caller.get("/api/v1/devices/OTHER-V-0004")
    missing = caller.get("/api/v1/devices/NOPE-V-0000")
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["message"].replace("OTHER-V-0004", "X") == missing.json()[
        "message"
    ].replace("NOPE-V-0000", "X")


def test_no_secret_in_logs_over_sign_in_and_key_use(
    anon: TestClient,
    client: TestClient,
    tech: str,
    admin_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    anon.post("/api/v1/session", json={"username": tech, "password": "wrong password"})
    signed = anon.post("/api/v1/session", json={"username": tech, "password": PASSWORD})
    session = signed.cookies["sealscope_session"]
    csrf = signed.json()["csrf_token"]
    created = anon.post("/api/v1/keys", json={"name": "s"}, headers={"X-CSRF-Token": csrf}).json()
    anon.get("/api/v1/devices", headers={"Authorization": f"Bearer {created['key']}"})
    client.get("/api/v1/devices")
    secret_part = created["key"].rsplit("_", 1)[1]
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "signed in" in text and "created" in text  # the events are logged...
    for secret in (
        PASSWORD,
        "wrong password",
        session,
        csrf,
        created["key"],
        secret_part,
        admin_key,
    ):
        assert secret not in text  # ...their secrets are not
