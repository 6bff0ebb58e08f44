"""POST /api/v1/devices/claim: a technician moves a device into a site with its nameplate code."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from sealscope.provisioning.claim_limiter import DEFAULT_MAX_FAILURES
from tests.provisioning.conftest import CLAIM, UPLOAD, bearer, bundle_rows, fleet_csv, fleet_rows


def _provision(client: TestClient, n: int = 3, query: str = "") -> dict[str, dict[str, str]]:
    r = client.post(
        f"{UPLOAD}?{query}",
        content=fleet_csv(fleet_rows(n)),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    return bundle_rows(r.json()["credentials_csv"])


def _claim(
    client: TestClient, key: str, device_id: str, code: str, site: str = "north-plant"
) -> Any:
    body = {"device_id": device_id, "claim_code": code, "site": site}
    return client.post(CLAIM, json=body, headers=bearer(key))


def test_claim_moves_the_device_and_the_manufacturer_keeps_its_view(
    client: TestClient, keys: dict[str, str]
) -> None:
    codes = _provision(client)
    device_id = "ACME-BV50-000001"
    typed = codes[device_id]["claim_code"].lower().replace("-", " ")  # as a person types it
    r = _claim(client, keys["operator"], device_id, typed)
    assert r.status_code == 200, r.text
    assert (r.json()["site"], r.json()["manufacturer"]) == ("north-plant", "ACME")
    operator = bearer(keys["operator"])
    at_site = client.get("/api/v1/devices", headers=operator).json()["data"]
    assert [d["device_id"] for d in at_site] == [device_id]
    # the manufacturer still sees it (its code matches), without the operator's site name
    made = {d["device_id"]: d for d in client.get("/api/v1/devices").json()["data"]}
    assert made[device_id]["manufacturer"] == "ACME" and made[device_id]["site"] == ""

    # the same claim again answers the same (a retry after a lost answer)
    assert _claim(client, keys["operator"], device_id, typed).status_code == 200
    # but the spent code moves it nowhere else
    assert _claim(client, keys["operator"], device_id, typed, site="south-plant").status_code == 404

    # a re-upload of the fleet neither moves it back nor re-issues its spent code
    again = client.post(
        f"{UPLOAD}?rotate=true",
        content=fleet_csv(fleet_rows(3)),
        headers={"content-type": "text/csv"},
    ).json()
    assert bundle_rows(again["credentials_csv"])[device_id]["claim_code"] == ""
    assert client.get(f"/api/v1/devices/{device_id}", headers=operator).json()["site"] == (
        "north-plant"
    )


def test_claim_with_a_wrong_code_answers_like_an_unknown_device(
    client: TestClient, keys: dict[str, str]
) -> None:
    codes = _provision(client)
    wrong = _claim(
        client, keys["operator"], "ACME-BV50-000000", codes["ACME-BV50-000002"]["claim_code"]
    )
    unknown = _claim(
        client, keys["operator"], "ACME-BV50-999999", codes["ACME-BV50-000002"]["claim_code"]
    )
    garbage = _claim(client, keys["operator"], "ACME-BV50-000000", "not-a-code")
    for r in (wrong, unknown, garbage):
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
    assert wrong.json()["message"].replace("000000", "999999") == unknown.json()["message"]
    admin = bearer(keys["admin"])
    assert client.get("/api/v1/devices/ACME-BV50-000000", headers=admin).json()["site"] == ""


def test_claim_failures_are_rate_limited_per_caller(
    client: TestClient, keys: dict[str, str]
) -> None:
    codes = _provision(client)
    right = codes["ACME-BV50-000000"]["claim_code"]
    # claims that succeed do not count
    assert _claim(client, keys["operator"], "ACME-BV50-000000", right).status_code == 200
    for _ in range(DEFAULT_MAX_FAILURES):
        assert (
            _claim(client, keys["operator"], "ACME-BV50-000001", "AAAAA-AAAAA").status_code == 404
        )
    blocked = _claim(
        client, keys["operator"], "ACME-BV50-000002", codes["ACME-BV50-000002"]["claim_code"]
    )
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_requests"
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    admin = bearer(keys["admin"])
    assert client.get("/api/v1/devices/ACME-BV50-000002", headers=admin).json()["site"] == ""
    # another technician is not held up by this one's failures
    other = _claim(
        client, keys["admin"], "ACME-BV50-000002", codes["ACME-BV50-000002"]["claim_code"]
    )
    assert other.status_code == 200


def test_claim_refuses_a_site_that_is_not_a_label(client: TestClient, keys: dict[str, str]) -> None:
    codes = _provision(client, 1)
    r = _claim(
        client,
        keys["operator"],
        "ACME-BV50-000000",
        codes["ACME-BV50-000000"]["claim_code"],
        site="a\nb",
    )
    assert r.status_code == 422
    r = client.post(
        CLAIM,
        json={"device_id": "ACME-BV50-000000", "claim_code": "x", "extra": 1},
        headers=bearer(keys["operator"]),
    )
    assert r.status_code == 422


def test_claim_is_for_technicians_into_their_own_sites(
    client: TestClient, keys: dict[str, str]
) -> None:
    code = _provision(client, 1)["ACME-BV50-000000"]["claim_code"]
    # the manufacturer itself, a monitoring point: not a claimer
    for role in ("acme", "monitor"):
        assert _claim(client, keys[role], "ACME-BV50-000000", code).status_code == 403
    # another operator's site
    assert (
        _claim(client, keys["operator"], "ACME-BV50-000000", code, "elsewhere").status_code == 403
    )
    assert _claim(client, keys["rival"], "ACME-BV50-000000", code).status_code == 403
    # none of that spent the code
    assert _claim(client, keys["operator"], "ACME-BV50-000000", code).status_code == 200
