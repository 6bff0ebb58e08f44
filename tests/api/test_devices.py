"""/api/v1/devices: register, list, look up, and every refusal in the error shape."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

VALVE = {
    "device_id": "ACME-DN50-000123",
    "kind": "valve",
    "manufacturer": "acme",
    "model": "BV-50",
    "batch": "L2024-07",
    "site": "wz-plant-1",
    "region": "yongjia",
    "dn": 50,
    "pn": 16,
    "seat_material": "PTFE",
    "leakage_class": "D",
    "firmware": "1.4.2",
}


def test_create_device_returns_201_with_public_fields(client: TestClient) -> None:
    response = client.post("/api/v1/devices", json=VALVE)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/devices/ACME-DN50-000123"
    body = response.json()
    assert {k: body[k] for k in VALVE} == VALVE
    assert body["created_at"].endswith("Z")

    fetched = client.get("/api/v1/devices/ACME-DN50-000123")
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_create_device_minimal_fields_get_defaults(client: TestClient) -> None:
    response = client.post(
        "/api/v1/devices",
        json={"device_id": "ZED-P-1", "kind": "pump", "manufacturer": "zed", "model": "CP-1"},
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["dn"], body["pn"], body["leakage_class"], body["site"]) == (None, None, "", "")


def test_create_device_twice_is_409(client: TestClient, assert_error: Any) -> None:
    assert client.post("/api/v1/devices", json=VALVE).status_code == 201
    body = assert_error(
        client.post("/api/v1/devices", json={**VALVE, "model": "other"}), 409, "conflict"
    )
    assert "ACME-DN50-000123" in body["message"]
    assert client.get("/api/v1/devices/ACME-DN50-000123").json()["model"] == "BV-50"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"device_id": "a/b#"}, "device_id"),
        ({"device_id": "ab"}, "device_id"),  # too short for the pattern
        ({"device_id": "x" * 65}, "device_id"),
        ({"kind": "boiler"}, "kind"),
        ({"leakage_class": "Z"}, "leakage_class"),
        ({"dn": 0}, "dn"),
        ({"pn": -16}, "pn"),
        ({"manufacturer": ""}, "manufacturer"),
        ({"colour": "red"}, "colour"),  # unknown fields are refused, not dropped
    ],
)
def test_create_device_validation_is_422_naming_the_field(
    client: TestClient, assert_error: Any, change: dict[str, object], field: str
) -> None:
    body = assert_error(
        client.post("/api/v1/devices", json={**VALVE, **change}), 422, ("validation_error")
    )
    assert [e["loc"] for e in body["detail"]] == [["body", field]]
    assert f"body.{field}" in body["message"]
    assert client.get("/api/v1/devices").json()["data"] == []


def test_create_device_missing_body_fields_are_all_listed(
    client: TestClient, assert_error: Any
) -> None:
    body = assert_error(client.post("/api/v1/devices", json={}), 422, "validation_error")
    missing = {tuple(e["loc"]) for e in body["detail"] if e["type"] == "missing"}
    assert missing == {("body", f) for f in ("device_id", "kind", "manufacturer", "model")}


def test_create_device_rejects_malformed_json(client: TestClient, assert_error: Any) -> None:
    response = client.post(
        "/api/v1/devices", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


def test_get_unknown_device_is_404_json(client: TestClient, assert_error: Any) -> None:
    body = assert_error(client.get("/api/v1/devices/NOPE-404"), 404, "not_found")
    assert body["message"] == "Device 'NOPE-404' was not found."


def _add(client: TestClient, device_id: str, manufacturer: str, site: str) -> None:
    payload = {**VALVE, "device_id": device_id, "manufacturer": manufacturer, "site": site}
    assert client.post("/api/v1/devices", json=payload).status_code == 201


def test_list_devices_filters_and_pages(client: TestClient) -> None:
    _add(client, "ZED-0001", "zed", "s1")
    _add(client, "ACME-0002", "acme", "s2")
    _add(client, "ACME-0001", "acme", "s1")

    def ids(**params: object) -> list[str]:
        response = client.get("/api/v1/devices", params=params)
        assert response.status_code == 200, response.text
        return [d["device_id"] for d in response.json()["data"]]

    assert ids() == ["ACME-0001", "ACME-0002", "ZED-0001"]
    assert ids(manufacturer="acme") == ["ACME-0001", "ACME-0002"]
    assert ids(site="s1") == ["ACME-0001", "ZED-0001"]
    assert ids(manufacturer="acme", site="s1") == ["ACME-0001"]
    assert ids(limit=1, offset=1) == ["ACME-0002"]
    page = client.get("/api/v1/devices", params={"limit": 2, "offset": 1}).json()
    assert (page["limit"], page["offset"]) == (2, 1)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")],
)
def test_list_devices_paging_bounds(
    client: TestClient, assert_error: Any, params: dict[str, int], field: str
) -> None:
    body = assert_error(client.get("/api/v1/devices", params=params), 422, "validation_error")
    assert body["detail"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("site", "a\nb", "U+000A"),  # would have split the line protocol
        ("region", "north\u202eevil", "U+202E"),  # bidi override: reads differently on screen
        ("batch", "L1\u200b", "U+200B"),  # zero-width space: two spellings of one batch
        ("model", "BV\\50", "backslash"),
        ("manufacturer", " acme", "leading or trailing space"),
        ("seat_material", "PTFE\x00", "U+0000"),
    ],
)
def test_create_device_label_with_control_or_invisible_characters_is_422(
    client: TestClient, assert_error: Any, field: str, value: str, reason: str
) -> None:
    body = assert_error(
        client.post("/api/v1/devices", json={**VALVE, field: value}), 422, "validation_error"
    )
    assert [e["loc"] for e in body["detail"]] == [["body", field]]
    assert reason in body["message"]
    assert client.get("/api/v1/devices").json()["data"] == []


def test_create_device_labels_keep_unicode_names_in_one_spelling(client: TestClient) -> None:
    decomposed = "Cafe\u0301 Nord"  # what some keyboards send for "Café Nord"
    response = client.post(
        "/api/v1/devices", json={**VALVE, "site": "永嘉 3号厂", "region": decomposed}
    )
    assert response.status_code == 201, response.text
    assert response.json()["site"] == "永嘉 3号厂"
    assert response.json()["region"] == "Caf\u00e9 Nord"
