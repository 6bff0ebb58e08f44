"""POST /api/v1/provisioning/devices: per-row reports, both modes, re-uploads, the file."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from composition.api import create_app
from gateway.keys import SqliteDeviceKeys, load_pepper
from sealscope.config import Settings
from sealscope.storage.memory import MemoryTelemetryStore
from tests.provisioning.conftest import (
    UPLOAD,
    bearer,
    bundle_rows,
    fleet_csv,
    fleet_rows,
    make_keys,
)

CSV = {"content-type": "text/csv"}


def _upload(client: TestClient, body: Any, *, query: str = "", key: str | None = None) -> Any:
    url = f"{UPLOAD}?{query.lstrip('&')}"
    headers = bearer(key) if key else {}
    if isinstance(body, bytes):
        return client.post(url, content=body, headers={**CSV, **headers})
    return client.post(url, json=body, headers=headers)


def _devices(client: TestClient, key: str | None = None) -> list[dict[str, Any]]:
    headers = bearer(key) if key else {}
    r = client.get("/api/v1/devices", params={"limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _keys(settings: Settings) -> SqliteDeviceKeys:
    return SqliteDeviceKeys(settings.state_db, pepper=load_pepper(settings.gateway_pepper_path))


def _verify(settings: Settings, device_id: str, key: str) -> bool:
    keys = _keys(settings)
    try:
        return keys.verify(device_id, key)
    finally:
        keys.close()


def _bad_csv() -> bytes:
    rows = fleet_rows(4)
    rows[1]["kind"] = "robot"  # line 3
    rows[3]["dn"] = "fifty"  # line 5
    return fleet_csv(rows)


def test_upload_csv_registers_the_fleet_and_returns_its_credentials_once(
    client: TestClient, settings: Settings
) -> None:
    r = _upload(client, fleet_csv(fleet_rows(5)))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    report = r.json()
    assert report["upload"]["created"] == 5 and report["upload"]["credentials_issued"] == 5
    assert [row["line"] for row in report["rows"]] == [2, 3, 4, 5, 6]
    bundle = bundle_rows(report["credentials_csv"])
    assert sorted(bundle) == [f"ACME-BV50-{i:06d}" for i in range(5)]
    keys = _keys(settings)
    try:
        for device_id, creds in bundle.items():
            assert keys.verify(device_id, creds["coap_key"])
            assert len(creds["claim_code"]) == 11
            assert creds["mqtt_password"] == ""  # no broker administration configured here
    finally:
        keys.close()
    devices = {d["device_id"]: d for d in _devices(client)}
    assert devices["ACME-BV50-000001"]["region"] == "zj-wenzhou"
    assert devices["ACME-BV50-000000"]["kind"] == "pump"
    assert devices["ACME-BV50-000000"]["batch"] == "L000"
    # the report stays readable; the secrets do not
    detail = client.get(r.headers["location"])
    assert detail.status_code == 200
    assert detail.json()["upload"] == report["upload"]
    assert "credentials_csv" not in detail.text
    assert all(c["coap_key"] not in detail.text for c in bundle.values())


def test_upload_all_or_nothing_refuses_the_file_and_stores_nothing(client: TestClient) -> None:
    r = _upload(client, _bad_csv())
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "rows_invalid"
    assert "2 of 4 rows" in body["message"] and "nothing was stored" in body["message"]
    assert [(row["line"], row["reason"].split(":")[0]) for row in body["rows"]] == [
        (3, "kind"),
        (5, "dn"),
    ]
    assert _devices(client) == []


def test_upload_good_rows_only_stores_the_good_and_reports_the_bad(client: TestClient) -> None:
    r = _upload(client, _bad_csv(), query="&mode=good_rows_only")
    assert r.status_code == 200, r.text
    report = r.json()
    assert {k: report["upload"][k] for k in ("rows", "created", "rejected")} == {
        "rows": 4,
        "created": 2,
        "rejected": 2,
    }
    statuses = {row["line"]: row["status"] for row in report["rows"]}
    assert statuses == {2: "created", 3: "rejected", 4: "created", 5: "rejected"}
    assert sorted(bundle_rows(report["credentials_csv"])) == [
        "ACME-BV50-000000",
        "ACME-BV50-000002",
    ]
    assert len(_devices(client)) == 2
    rejected = client.get(r.headers["location"], params={"status": "rejected"}).json()["rows"]
    assert [row["line"] for row in rejected] == [3, 5]
    assert "must be a whole number" in rejected[1]["reason"]


@pytest.mark.parametrize("mode", ["all_or_nothing", "good_rows_only"])
def test_upload_json_reports_bad_rows_by_index(client: TestClient, mode: str) -> None:
    rows: list[Any] = fleet_rows(3)
    rows[0]["leakage_class"] = "Z"
    rows[2] = ["not", "an", "object"]
    r = _upload(client, rows, query=f"&mode={mode}")
    if mode == "all_or_nothing":
        assert r.status_code == 422
        assert [row["line"] for row in r.json()["rows"]] == [0, 2]
        assert _devices(client) == []
    else:
        assert r.status_code == 200
        assert [row["status"] for row in r.json()["rows"]] == ["rejected", "created", "rejected"]
        assert [d["device_id"] for d in _devices(client)] == ["ACME-BV50-000001"]


def test_upload_again_is_idempotent_and_keeps_credentials(
    client: TestClient, settings: Settings
) -> None:
    body = fleet_csv(fleet_rows(20))
    first = bundle_rows(_upload(client, body).json()["credentials_csv"])
    again = _upload(client, body).json()
    assert again["upload"]["unchanged"] == 20 and again["upload"]["credentials_issued"] == 0
    assert bundle_rows(again["credentials_csv"]) == {}
    assert len(_devices(client)) == 20

    changed = fleet_rows(20)
    changed[4]["firmware"] = "1.5.0"
    update = _upload(client, fleet_csv(changed)).json()
    assert (update["upload"]["updated"], update["upload"]["unchanged"]) == (1, 19)
    assert all(
        _verify(settings, d, c["coap_key"]) for d, c in first.items()
    )  # the update kept them
    assert update["rows"][4] == {
        "line": 6,
        "device_id": "ACME-BV50-000004",
        "status": "updated",
        "reason": "",
        "credentials_issued": False,
    }
    rotated = _upload(client, body, query="&rotate=true").json()
    assert rotated["upload"]["credentials_issued"] == 20
    fresh = bundle_rows(rotated["credentials_csv"])
    # a key store of its own, as the gateway process has (its cache would hold old hashes)
    keys = _keys(settings)
    try:
        for device_id, creds in fresh.items():
            assert creds["coap_key"] != first[device_id]["coap_key"]
            assert creds["claim_code"] != first[device_id]["claim_code"]
            assert keys.verify(device_id, creds["coap_key"])
            # the old key stays valid for the grace period, for sleeping devices
            assert keys.verify(device_id, first[device_id]["coap_key"])
    finally:
        keys.close()


def test_upload_refuses_another_manufacturers_device_ids(
    client: TestClient, keys: dict[str, str]
) -> None:
    assert _upload(client, fleet_csv(fleet_rows(2))).status_code == 200
    r = _upload(client, fleet_csv(fleet_rows(3)), key=keys["other"], query="mode=good_rows_only")
    rows = r.json()["rows"]
    assert [row["status"] for row in rows] == ["rejected", "rejected", "created"]
    assert "another manufacturer" in rows[0]["reason"]
    assert {d["manufacturer"] for d in _devices(client)} == {"ACME"}
    # one manufacturer's upload report is not another's to read
    assert client.get(r.headers["location"]).status_code == 404
    assert client.get(r.headers["location"], headers=bearer(keys["admin"])).status_code == 200


def test_upload_is_for_manufacturers_under_their_own_code(
    client: TestClient, keys: dict[str, str]
) -> None:
    body = fleet_csv(fleet_rows(1))
    assert _upload(client, body, query="manufacturer=OTHER").status_code == 403
    for role in ("operator", "monitor"):
        assert _upload(client, body, key=keys[role]).status_code == 403
    assert (
        client.post(UPLOAD, content=body, headers={**CSV, "Authorization": ""}).status_code == 401
    )
    # the admin names the manufacturer it provisions for
    assert _upload(client, body, key=keys["admin"]).status_code == 422
    r = _upload(client, body, key=keys["admin"], query="manufacturer=OTHER")
    assert r.status_code == 200
    assert r.json()["upload"]["manufacturer"] == "OTHER"


def test_upload_with_accept_csv_answers_the_file_itself(client: TestClient) -> None:
    r = client.post(
        UPLOAD,
        content=fleet_csv(fleet_rows(3)),
        headers={**CSV, "accept": "text/csv"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    assert r.text.splitlines()[0] == "device_id,mqtt_username,mqtt_password,coap_key,claim_code"
    assert len(bundle_rows(r.text)) == 3


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b"serial,kind\n", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b"", CSV, 422, "fleet_file_invalid"),
        (b"serial,kind,colour\n", CSV, 422, "fleet_file_invalid"),
        (b'{"serial": "ACME-1"}', {"content-type": "application/json"}, 422, "fleet_file_invalid"),
        (b"[1, 2", {"content-type": "application/json"}, 422, "validation_error"),
    ],
)
def test_upload_refuses_an_unreadable_file(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    r = client.post(UPLOAD, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error


def test_upload_has_its_own_body_cap(tmp_path: Any) -> None:
    settings = Settings(
        data_dir=tmp_path / "d",
        api_allowed_hosts=["testserver"],
        provisioning_max_body_bytes=2 << 20,
    )
    key = make_keys(settings)["acme"]
    app = create_app(settings, telemetry_store=MemoryTelemetryStore())
    big = json.dumps(fleet_rows(12_000)).encode()  # ~2.5 MB
    fits = json.dumps(fleet_rows(6_000)).encode()  # over the 1 MiB of other routes
    assert 1 << 20 < len(fits) < 2 << 20 < len(big)
    json_type = {"content-type": "application/json"}
    with TestClient(app, headers=bearer(key)) as client:
        r = client.post(UPLOAD, content=big, headers=json_type)
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        r = client.post(UPLOAD, content=fits, headers=json_type)
        assert r.status_code == 200 and r.json()["upload"]["created"] == 6_000
        assert client.post("/api/v1/devices", content=fits, headers=json_type).status_code == 413


def test_upload_never_logs_a_secret(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    # on the package logger: a CLI test run earlier may have set "sealscope" to WARNING
    with caplog.at_level(logging.DEBUG, logger="sealscope.provisioning"):
        r = _upload(client, fleet_csv(fleet_rows(10)))
    secrets_ = [
        v
        for c in bundle_rows(r.json()["credentials_csv"]).values()
        for v in (c["coap_key"], c["claim_code"])
    ]
    assert "10 created" in caplog.text
    assert not [s for s in secrets_ if s in caplog.text]


def test_upload_of_10000_devices(client: TestClient) -> None:
    body = json.dumps(fleet_rows(10_000)).encode()
    started = time.perf_counter()
    r = client.post(UPLOAD, content=body, headers={"content-type": "application/json"})
    elapsed_s = time.perf_counter() - started
    assert r.status_code == 200, r.text[:500]
    report = r.json()
    assert report["upload"]["created"] == 10_000
    assert report["upload"]["credentials_issued"] == 10_000
    bundle = bundle_rows(report["credentials_csv"])
    assert len(bundle) == 10_000
    assert len({c["claim_code"] for c in bundle.values()}) == 10_000
    print(f"\n10,000-device upload ({len(body)} bytes JSON): {elapsed_s:.2f} s")
