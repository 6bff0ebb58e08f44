"""Every number a client sends is bounded at the edge: 422 naming the parameter, bounds in the
OpenAPI. (A store that still overflows answers 422, never 500: see test_app.)"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from composition.api.params import MAX_ID, MAX_OFFSET
from sealscope.registry import Device, SqliteDeviceRegistry

TELEMETRY = "/api/v1/devices/ACME-0001/telemetry?field=temp_c"


@pytest.fixture
def device(registry: SqliteDeviceRegistry) -> Device:
    return registry.add(Device("ACME-0001", "valve", "a", "m"))


@pytest.mark.parametrize(
    ("url", "loc", "says"),
    [
        # the four 500s the fuzzing found, now each a 422
        (f"/api/v1/alerts/{MAX_ID + 1}", ["path", "alert_id"], str(MAX_ID)),
        (f"/api/v1/alerts/{MAX_ID + 1}/acknowledge", ["path", "alert_id"], str(MAX_ID)),
        (f"/api/v1/alerts?offset={MAX_ID + 1}", ["query", "offset"], str(MAX_OFFSET)),
        (f"/api/v1/devices?offset={MAX_OFFSET + 1}", ["query", "offset"], str(MAX_OFFSET)),
        (f"/api/v1/dead-letters?offset={MAX_ID + 1}", ["query", "offset"], str(MAX_OFFSET)),
        (f"{TELEMETRY}&start=0&stop=9223372037", ["query", "stop"], "2262-04-11"),
        (f"{TELEMETRY}&start=-1&stop=10", ["query", "start"], "1970-01-01"),
        (f"{TELEMETRY}&stop=9{'9' * 5000}", ["query", "stop"], "out of range"),
        (f"{TELEMETRY}&start=10000-01-01", ["query", "start"], "ISO 8601"),
        (f"{TELEMETRY}&every=99999999999999999999d", ["query", "every"], "at most 3650d"),
        (f"{TELEMETRY}&every={'9' * 5000}", ["query", "every"], "at most 3650d"),
        (f"{TELEMETRY}&every=3651d", ["query", "every"], "at most 3650d"),
        (f"{TELEMETRY}&limit={MAX_ID + 1}", ["query", "limit"], "100000"),
    ],
)
def test_bounds_number_past_the_edge_is_422(
    client: TestClient, device: Device, assert_error: Any, url: str, loc: list[str], says: str
) -> None:
    body = assert_error(
        client.get(url) if "acknowledge" not in url else client.post(url), 422, "validation_error"
    )
    assert body["detail"][0]["loc"] == loc
    assert says in body["message"]


def test_bounds_largest_values_in_range_are_answered(client: TestClient, device: Device) -> None:
    assert client.get(f"/api/v1/alerts/{MAX_ID}").status_code == 404
    assert client.get(f"/api/v1/alerts?offset={MAX_OFFSET}").json()["data"] == []
    assert client.get(f"{TELEMETRY}&start=0&stop=9223372036").status_code == 200
    assert client.get(f"{TELEMETRY}&every=3650d").json()["every_s"] == 3650 * 86_400


def test_bounds_default_start_never_goes_before_1970(client: TestClient, device: Device) -> None:
    assert client.get(f"{TELEMETRY}&stop=60").status_code == 200


def test_bounds_are_in_the_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def schema_of(path: str, method: str, name: str) -> dict[str, Any]:
        params = paths[path][method]["parameters"]
        found: dict[str, Any] = next(p for p in params if p["name"] == name)["schema"]
        return found

    assert schema_of("/api/v1/alerts/{alert_id}", "get", "alert_id")["maximum"] == MAX_ID
    assert schema_of("/api/v1/alerts/{alert_id}/resolve", "post", "alert_id")["minimum"] == 1
    for path in ("/api/v1/alerts", "/api/v1/devices", "/api/v1/dead-letters"):
        assert schema_of(path, "get", "offset")["maximum"] == MAX_OFFSET
        assert schema_of(path, "get", "limit")["maximum"] == 1000
    # the error shape is what the OpenAPI promises for a 422
    ref = paths["/api/v1/devices"]["post"]["responses"]["422"]["content"]["application/json"]
    assert ref["schema"]["$ref"].endswith("/ErrorBody")
