"""/api/v1/alerts: list, look up, acknowledge and resolve."""

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
    }


def test_alert_list_newest_first_with_filters(client: TestClient, alerts: SqliteAlertStore) -> None:
    a1 = _raise(alerts, "ACME-0001", "seat_leak")
    a2 = _raise(alerts, "ACME-0002", "seat_leak")
    a3 = _raise(alerts, "ACME-0001", "actuation_wear")
    alerts.set_status(a2.id, "acknowledged")

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
    ],
)
def test_alert_unknown_id_is_404(
    client: TestClient, assert_error: Any, method: str, path: str
) -> None:
    body = assert_error(client.request(method, path), 404, "not_found")
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
