"""POST /api/v1/devices/claim: a technician moves a device into a site with its nameplate code."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from sealscope.provisioning.claim_limiter import DEFAULT_MAX_FAILURES
from tests.provisioning.conftest import CLAIM, UPLOAD, bundle_rows, fleet_csv, fleet_rows


def _provision(client: TestClient, n: int = 3, query: str = "") -> dict[str, dict[str, str]]:
    r = client.post(
        f"{UPLOAD}?manufacturer=ACME{query}",
        content=fleet_csv(fleet_rows(n)),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    return bundle_rows(r.json()["credentials_csv"])


def _claim(client: TestClient, device_id: str, code: str, site: str = "north-plant") -> Any:
    return client.post(CLAIM, json={"device_id": device_id, "claim_code": code, "site": site})


def test_claim_moves_the_device_and_the_manufacturer_keeps_its_view(client: TestClient) -> None:
    codes = _provision(client)
    device_id = "ACME-BV50-000001"
    typed = codes[device_id]["claim_code"].lower().replace("-", " ")  # as a person types it
    r = _claim(client, device_id, typed)
    assert r.status_code == 200, r.text
    assert (r.json()["site"], r.json()["manufacturer"]) == ("north-plant", "ACME")
    at_site = client.get("/api/v1/devices", params={"site": "north-plant"}).json()["data"]
    assert [d["device_id"] for d in at_site] == [device_id]
    made = client.get("/api/v1/devices", params={"manufacturer": "ACME"}).json()["data"]
    assert device_id in {d["device_id"] for d in made}

    # the same claim again answers the same (a retry after a lost answer)
    assert _claim(client, device_id, typed).status_code == 200
    # but the spent code moves it nowhere else
    assert _claim(client, device_id, typed, site="south-plant").status_code == 404

    # a re-upload of the fleet neither moves it back nor re-issues its spent code
    again = client.post(
        f"{UPLOAD}?manufacturer=ACME&rotate=true",
        content=fleet_csv(fleet_rows(3)),
        headers={"content-type": "text/csv"},
    ).json()
    assert bundle_rows(again["credentials_csv"])[device_id]["claim_code"] == ""
    assert client.get(f"/api/v1/devices/{device_id}").json()["site"] == "north-plant"


def test_claim_with_a_wrong_code_answers_like_an_unknown_device(client: TestClient) -> None:
    codes = _provision(client)
    wrong = _claim(client, "ACME-BV50-000000", codes["ACME-BV50-000002"]["claim_code"])
    unknown = _claim(client, "ACME-BV50-999999", codes["ACME-BV50-000002"]["claim_code"])
    garbage = _claim(client, "ACME-BV50-000000", "not-a-code")
    for r in (wrong, unknown, garbage):
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
    assert wrong.json()["message"].replace("000000", "999999") == unknown.json()["message"]
    assert client.get("/api/v1/devices/ACME-BV50-000000").json()["site"] == ""


def test_claim_failures_are_rate_limited_per_caller(client: TestClient) -> None:
    codes = _provision(client)
    right = codes["ACME-BV50-000000"]["claim_code"]
    # claims that succeed do not count
    assert _claim(client, "ACME-BV50-000000", right).status_code == 200
    for _ in range(DEFAULT_MAX_FAILURES):
        assert _claim(client, "ACME-BV50-000001", "AAAAA-AAAAA").status_code == 404
    blocked = _claim(client, "ACME-BV50-000002", codes["ACME-BV50-000002"]["claim_code"])
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_requests"
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    assert client.get("/api/v1/devices/ACME-BV50-000002").json()["site"] == ""


def test_claim_refuses_a_site_that_is_not_a_label(client: TestClient) -> None:
    codes = _provision(client, 1)
    r = _claim(client, "ACME-BV50-000000", codes["ACME-BV50-000000"]["claim_code"], site="a\nb")
    assert r.status_code == 422
    r = client.post(CLAIM, json={"device_id": "ACME-BV50-000000", "claim_code": "x", "extra": 1})
    assert r.status_code == 422
