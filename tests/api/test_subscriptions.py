"""Subscriptions API: creation per channel, URL validation, the secret shown once, the
caller's organisation only, filters, the delivery log and redelivery (real SQLite state)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from sealscope.accounts import Authenticator, Site
from sealscope.alerts import SqliteAlertStore
from sealscope.registry import Device, SqliteDeviceRegistry

AssertError = Callable[[httpx.Response, int, str], dict[str, Any]]
HOOK = "https://ops.example/hook"
VALVE = Device("ACME-V-000001", "valve", "ACME", "BV-50", site="north", region="R1")


def _caller(app: Any, authenticator: Authenticator, kind: str, name: str) -> TestClient:
    org = authenticator.store.create_org(name=name, kind=kind)  # type: ignore[arg-type]
    key, _ = authenticator.create_key(org.id, name="k")
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def test_subscriptions_webhook_secret_shown_once(client: TestClient) -> None:
    created = client.post("/api/v1/subscriptions", json={"channel": "webhook", "url": HOOK})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["target"] == HOOK
    got = client.get(f"/api/v1/subscriptions/{body['id']}").json()
    listed = client.get("/api/v1/subscriptions").json()["data"]
    assert "secret" not in got and all("secret" not in s for s in listed)
    assert body["secret"] not in client.get("/api/v1/subscriptions").text


def test_subscriptions_mqtt_topic_is_the_callers_org_and_email_kept(client: TestClient) -> None:
    mqtt = client.post("/api/v1/subscriptions", json={"channel": "mqtt"}).json()
    assert mqtt["target"] == f"sealscope/v1/alerts/org-{mqtt['org_id']}"
    assert mqtt["secret"] is None
    email = client.post(
        "/api/v1/subscriptions", json={"channel": "email", "email": "oncall@op.example"}
    ).json()
    assert email["target"] == "oncall@op.example"


def test_subscriptions_filters_are_kept(client: TestClient) -> None:
    body = {
        "channel": "mqtt",
        "causes": ["seat_leak"],
        "categories": ["failure"],
        "min_severity": 4,
        "kinds": ["fleet_risk"],
    }
    created = client.post("/api/v1/subscriptions", json=body).json()
    got = client.get(f"/api/v1/subscriptions/{created['id']}").json()
    for name in ("causes", "categories", "min_severity", "kinds"):
        assert got[name] == body[name]


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "webhook", "url": "ftp://ops.example/hook"},
        {"channel": "webhook", "url": "https://user:pw@ops.example/hook"},
        {"channel": "webhook", "url": "https://token@ops.example/hook"},
        {"channel": "webhook", "url": "https://ops.example/hook#frag"},
        {"channel": "webhook", "url": "https://ops.example/h ook"},
        {"channel": "webhook", "url": "https://ops.example:99999/hook"},
        {"channel": "webhook", "url": "https:///nohost/x"},
        {"channel": "webhook", "url": "http://a"},
        {"channel": "webhook", "url": "https://ops.example/" + "a" * 2000},
        {"channel": "webhook", "url": "https://ops.example/\x00\xff"},
        {"channel": "webhook"},
        {"channel": "webhook", "url": HOOK, "email": "a@b.example"},
        {"channel": "mqtt", "url": HOOK},
        {"channel": "email", "email": "not an address"},
        {"channel": "sms", "url": HOOK},
        {"channel": "mqtt", "min_severity": 6},
        {"channel": "mqtt", "categories": ["whatever"]},
        {"channel": "mqtt", "kinds": ["device", "sensor"]},
        {"channel": "mqtt", "causes": ["Seat Leak!"]},
        {"channel": "mqtt", "org_id": 1},
    ],
)
def test_subscriptions_create_refuses_bad_input(
    client: TestClient, assert_error: AssertError, body: dict[str, Any]
) -> None:
    assert_error(client.post("/api/v1/subscriptions", json=body), 422, "validation_error")
    assert client.get("/api/v1/subscriptions").json()["data"] == []


def test_subscriptions_create_survives_arbitrary_bytes(client: TestClient) -> None:
    for raw in (b"\xff\xfe\x00", b"{", b"[]", b'{"channel": null}'):
        response = client.post(
            "/api/v1/subscriptions", content=raw, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.text


def test_subscriptions_of_another_org_answer_404(
    app: Any, client: TestClient, authenticator: Authenticator, assert_error: AssertError
) -> None:
    theirs = client.post("/api/v1/subscriptions", json={"channel": "mqtt"}).json()["id"]
    other = _caller(app, authenticator, "operator", "other operator")
    assert other.get("/api/v1/subscriptions").json()["data"] == []
    assert_error(other.get(f"/api/v1/subscriptions/{theirs}"), 404, "not_found")
    assert_error(other.get(f"/api/v1/subscriptions/{theirs}/deliveries"), 404, "not_found")
    assert_error(other.delete(f"/api/v1/subscriptions/{theirs}"), 404, "not_found")
    assert client.get(f"/api/v1/subscriptions/{theirs}").status_code == 200


def test_subscriptions_delete_stops_listing_and_answers_404(
    client: TestClient, assert_error: AssertError
) -> None:
    sub = client.post("/api/v1/subscriptions", json={"channel": "mqtt"}).json()["id"]
    assert client.delete(f"/api/v1/subscriptions/{sub}").status_code == 204
    assert client.get("/api/v1/subscriptions").json()["data"] == []
    assert_error(client.get(f"/api/v1/subscriptions/{sub}"), 404, "not_found")
    assert_error(client.delete(f"/api/v1/subscriptions/{sub}"), 404, "not_found")


def test_subscriptions_delivery_log_and_redeliver_in_scope_only(
    app: Any,
    client: TestClient,
    authenticator: Authenticator,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    assert_error: AssertError,
) -> None:
    registry.add(VALVE)
    alerts.on_change(app.state.outbox.enqueue)  # the owner of an injected store wires it
    operator = _caller(app, authenticator, "operator", "water works")
    stranger = _caller(app, authenticator, "operator", "elsewhere")
    me = operator.get("/api/v1/session").json()
    authenticator.store.put_site(Site("north", me["org_id"], "R1"))
    mine = operator.post("/api/v1/subscriptions", json={"channel": "webhook", "url": HOOK})
    theirs = stranger.post("/api/v1/subscriptions", json={"channel": "webhook", "url": HOOK})
    sub, other_sub = mine.json()["id"], theirs.json()["id"]
    alert = alerts.raise_alert(
        device_id=VALVE.device_id,
        cause="seat_leak",
        category="maintenance_required",
        severity=3,
        summary="s",
        evidence={},
        t=1.0,
    )
    log = operator.get(f"/api/v1/subscriptions/{sub}/deliveries").json()["data"]
    assert [(d["status"], d["attempts"], d["log"]) for d in log] == [("pending", 0, [])]
    # the stranger's site list does not hold the valve: nothing was enqueued for it
    assert stranger.get(f"/api/v1/subscriptions/{other_sub}/deliveries").json()["data"] == []
    assert operator.post(f"/api/v1/alerts/{alert.id}/acknowledge").status_code == 200
    log = operator.get(f"/api/v1/subscriptions/{sub}/deliveries").json()["data"]
    assert len(log) == 2
    pending = operator.get(f"/api/v1/subscriptions/{sub}/deliveries", params={"state": "dead"})
    assert pending.json()["data"] == []
    delivery = log[0]["id"]
    again = operator.post(f"/api/v1/deliveries/{delivery}/redeliver")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == delivery and again.json()["status"] == "pending"
    assert_error(stranger.post(f"/api/v1/deliveries/{delivery}/redeliver"), 404, "not_found")
    assert_error(operator.post("/api/v1/deliveries/msg_missing/redeliver"), 404, "not_found")
