"""/api/v1/alerts: list, look up, acknowledge, assign and resolve, and the audit trail."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sealscope.alerts import Alert, SqliteAlertStore

T = 1_700_000_000.0


def _raise(alerts: SqliteAlertStore, device_id: str, cause: str, t: float = T) -> Alert:
    return alerts.raise_alert(
        device_id=device_id,
        cause=cause,
        category="out_of_specification",
        severity=4,
        summary=f"{cause} on {device_id}",
        evidence={"signal": "leak_coeff", "baseline": 0.8, "value": 2.4, "ratio": 3.0},
        t=t,
    )


def test_alert_get_has_public_fields(client: TestClient, alerts: SqliteAlertStore) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    response = client.get(f"/api/v1/alerts/{alert.id}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": alert.id,
        "device_id": "ACME-0001",
        "cause": "seat_leak",
        "category": "out_of_specification",
        "severity": 4,
        "status": "open",
        "summary": "seat_leak on ACME-0001",
        "evidence": {"signal": "leak_coeff", "baseline": 0.8, "value": 2.4, "ratio": 3.0},
        "opened_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:13:20Z",
        "resolved_at": None,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "assignee": None,
    }


def test_alert_list_newest_first_with_filters(client: TestClient, alerts: SqliteAlertStore) -> None:
    a1 = _raise(alerts, "ACME-0001", "seat_leak")
    a2 = _raise(alerts, "ACME-0002", "seat_leak")
    a3 = _raise(alerts, "ACME-0001", "actuation_wear")
    alerts.acknowledge(a2.id, actor="ana")

    def ids(**params: object) -> list[int]:
        response = client.get("/api/v1/alerts", params=params)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["data"]]

    assert ids() == [a3.id, a2.id, a1.id]
    assert ids(status="open") == [a3.id, a1.id]
    assert ids(status="acknowledged") == [a2.id]
    assert ids(device_id="ACME-0001") == [a3.id, a1.id]
    assert ids(limit=1, offset=2) == [a1.id]


def test_alert_list_bad_status_is_422(client: TestClient, assert_error: Any) -> None:
    body = assert_error(
        client.get("/api/v1/alerts", params={"status": "closed"}), 422, "validation_error"
    )
    assert body["detail"][0]["loc"] == ["query", "status"]


def test_alert_acknowledge_then_resolve(client: TestClient, alerts: SqliteAlertStore) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    acked = client.post(f"/api/v1/alerts/{alert.id}/acknowledge")
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert alerts.get(alert.id).status == "acknowledged"
    # acknowledging twice is harmless
    assert client.post(f"/api/v1/alerts/{alert.id}/acknowledge").json()["status"] == (
        "acknowledged"
    )

    resolved = client.post(f"/api/v1/alerts/{alert.id}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None
    assert alerts.get(alert.id).status == "resolved"
    assert client.post(f"/api/v1/alerts/{alert.id}/resolve").status_code == 200
    assert client.get("/api/v1/alerts", params={"status": "open"}).json()["data"] == []


def test_alert_acknowledging_a_resolved_alert_is_409(
    client: TestClient, alerts: SqliteAlertStore, assert_error: Any
) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    alerts.clear(device_id="ACME-0001", cause="seat_leak", t=T + 60)
    body = assert_error(
        client.post(f"/api/v1/alerts/{alert.id}/acknowledge"), 409, "alert_resolved"
    )
    assert str(alert.id) in body["message"]
    assert alerts.get(alert.id).status == "resolved"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/alerts/999"),
        ("POST", "/api/v1/alerts/999/acknowledge"),
        ("POST", "/api/v1/alerts/999/resolve"),
        ("POST", "/api/v1/alerts/999/assign"),
        ("GET", "/api/v1/alerts/999/events"),
    ],
)
def test_alert_unknown_id_is_404(
    client: TestClient, assert_error: Any, method: str, path: str
) -> None:
    payload = {"assignee": "bo"} if path.endswith("/assign") else None
    body = assert_error(client.request(method, path, json=payload), 404, "not_found")
    assert body["message"] == "Alert '999' was not found."


def test_alert_non_numeric_id_is_422(client: TestClient, assert_error: Any) -> None:
    body = assert_error(client.get("/api/v1/alerts/abc"), 422, "validation_error")
    assert body["detail"][0]["loc"] == ["path", "alert_id"]


def test_alert_reraise_while_acknowledged_keeps_one_alert(
    client: TestClient, alerts: SqliteAlertStore
) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    client.post(f"/api/v1/alerts/{alert.id}/acknowledge")
    again = _raise(alerts, "ACME-0001", "seat_leak", t=T + 600)
    assert again.id == alert.id
    data = client.get("/api/v1/alerts", params={"device_id": "ACME-0001"}).json()["data"]
    assert [(a["id"], a["status"]) for a in data] == [(alert.id, "acknowledged")]


def test_alert_resolve_by_hand_races_detector_raise(
    client: TestClient, alerts: SqliteAlertStore
) -> None:
    # a technician resolves while the detector keeps raising: whatever the interleaving,
    # there is never more than one unresolved alert for the cause
    first = _raise(alerts, "ACME-0001", "seat_leak")
    stop = threading.Event()

    def detector() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            _raise(alerts, "ACME-0001", "seat_leak", t=T + i)

    thread = threading.Thread(target=detector)
    thread.start()
    try:
        alert_id = first.id
        for _ in range(20):
            assert client.post(f"/api/v1/alerts/{alert_id}/resolve").status_code == 200
            opened = client.get("/api/v1/alerts", params={"status": "open"}).json()["data"]
            assert len(opened) <= 1
            if opened:
                alert_id = opened[0]["id"]
    finally:
        stop.set()
        thread.join(timeout=10)
    unresolved = [a for a in alerts.list(limit=1000) if a.status != "resolved"]
    assert len(unresolved) == 1


def _trail(client: TestClient, alert_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/alerts/{alert_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_alert_lifecycle_over_the_api_lists_events_in_order(
    client: TestClient, alerts: SqliteAlertStore
) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    url = f"/api/v1/alerts/{alert.id}"
    acked = client.post(f"{url}/acknowledge", json={"comment": "Looking at it — 现场"})
    assert acked.status_code == 200, acked.text
    assert (acked.json()["status"], acked.json()["acknowledged_by"]) == (
        "acknowledged",
        "anonymous",
    )
    assert acked.json()["acknowledged_at"] is not None
    assigned = client.post(f"{url}/assign", json={"assignee": "li.wei"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "li.wei"
    resolved = client.post(f"{url}/resolve", json={"note": "Seat replaced."})
    assert resolved.json()["status"] == "resolved"
    trail = _trail(client, alert.id)
    assert [
        (e["action"], e["actor"], e["from_status"], e["to_status"], e["comment"], e["assignee"])
        for e in trail
    ] == [
        ("raised", "detector", None, "open", "", None),
        ("acknowledged", "anonymous", "open", "acknowledged", "Looking at it — 现场", None),
        ("assigned", "anonymous", "acknowledged", "acknowledged", "", "li.wei"),
        ("resolved", "anonymous", "acknowledged", "resolved", "Seat replaced.", None),
    ]
    assert [e["id"] for e in trail] == sorted(e["id"] for e in trail)
    assert {e["alert_id"] for e in trail} == {alert.id}
    assert all(e["at"].endswith("Z") for e in trail)
    paged = client.get(f"{url}/events", params={"limit": 2, "offset": 1}).json()
    assert [e["id"] for e in paged["data"]] == [trail[1]["id"], trail[2]["id"]]


@pytest.mark.parametrize("body", [None, {}])
def test_alert_acknowledge_and_resolve_take_no_body_or_an_empty_one(
    client: TestClient, alerts: SqliteAlertStore, body: dict[str, str] | None
) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    for action, status in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
        response = client.post(f"/api/v1/alerts/{alert.id}/{action}", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
    assert [e["comment"] for e in _trail(client, alert.id)] == ["", "", ""]


@pytest.mark.parametrize(
    ("action", "body", "loc"),
    [
        ("acknowledge", {"comment": 5}, ["body", "comment"]),
        ("acknowledge", {"comment": "line\nbreak"}, ["body", "comment"]),
        ("acknowledge", {"comment": "nul\x00"}, ["body", "comment"]),
        ("acknowledge", {"comment": "bidi \u202e override"}, ["body", "comment"]),
        ("acknowledge", {"comment": "x" * 2001}, ["body", "comment"]),
        ("acknowledge", {"note": "wrong field"}, ["body", "note"]),
        ("acknowledge", [], ["body"]),
        ("resolve", {"note": "tab\there"}, ["body", "note"]),
        ("resolve", {"note": None}, ["body", "note"]),
        ("resolve", {"comment": "wrong field"}, ["body", "comment"]),
        ("assign", {}, ["body", "assignee"]),
        ("assign", None, ["body"]),
        ("assign", {"assignee": ""}, ["body", "assignee"]),
        ("assign", {"assignee": " bo"}, ["body", "assignee"]),
        ("assign", {"assignee": "a\\b"}, ["body", "assignee"]),
        ("assign", {"assignee": "b" * 129}, ["body", "assignee"]),
        ("assign", {"assignee": ["bo"]}, ["body", "assignee"]),
    ],
)
def test_alert_bad_body_is_422_and_changes_nothing(
    client: TestClient,
    alerts: SqliteAlertStore,
    assert_error: Any,
    action: str,
    body: Any,
    loc: list[str],
) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    response = client.post(f"/api/v1/alerts/{alert.id}/{action}", json=body)
    answer = assert_error(response, 422, "validation_error")
    assert answer["detail"][0]["loc"] == loc
    assert alerts.get(alert.id) == alert
    assert [e["action"] for e in _trail(client, alert.id)] == ["raised"]


def test_alert_assigning_a_resolved_alert_is_409(
    client: TestClient, alerts: SqliteAlertStore, assert_error: Any
) -> None:
    alert = _raise(alerts, "ACME-0001", "seat_leak")
    alerts.clear(device_id="ACME-0001", cause="seat_leak", t=T + 60)
    body = assert_error(
        client.post(f"/api/v1/alerts/{alert.id}/assign", json={"assignee": "bo"}),
        409,
        "alert_resolved",
    )
    assert "assigned" in body["message"]
    assert alerts.get(alert.id).assignee is None
    trail = _trail(client, alert.id)
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("raised", "detector"),
        ("cleared", "detector"),
    ]


def test_alert_events_non_numeric_id_is_422(client: TestClient, assert_error: Any) -> None:
    body = assert_error(client.get("/api/v1/alerts/abc/events"), 422, "validation_error")
    assert body["detail"][0]["loc"] == ["path", "alert_id"]
