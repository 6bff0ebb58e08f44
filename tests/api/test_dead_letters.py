"""/api/v1/dead-letters: payloads shown exactly, as text or base64."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from sealscope.deadletters import SqliteDeadLetterStore

TOPIC = "sealscope/v1/dev/ACME-0001/telemetry"


def _add(store: SqliteDeadLetterStore, payload: bytes, device_id: str | None = "ACME-0001") -> int:
    return store.add(
        topic=TOPIC, payload=payload, code="malformed", reason="not valid JSON", device_id=device_id
    )


def test_dead_letters_text_and_binary_payloads_round_trip(
    client: TestClient, dead_letters: SqliteDeadLetterStore
) -> None:
    text = '{"v": 1, "seq": 7, "samples": [{"t": 1.7e9, "p_in_kpa": "hi"}], "note": "caf\u00e9"}'
    binary = bytes(range(256))
    text_id = _add(dead_letters, text.encode())
    binary_id = _add(dead_letters, binary, device_id=None)

    response = client.get("/api/v1/dead-letters")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    newest, oldest = body["data"]
    assert newest["id"] == binary_id
    assert newest["payload_encoding"] == "base64"
    assert base64.b64decode(newest["payload"]) == binary
    assert newest["payload_bytes"] == 256
    assert newest["device_id"] is None

    assert oldest["id"] == text_id
    assert oldest["payload_encoding"] == "utf-8"
    assert oldest["payload"] == text
    assert oldest["payload"].encode() == text.encode()
    assert (oldest["topic"], oldest["code"], oldest["reason"]) == (
        TOPIC,
        "malformed",
        "not valid JSON",
    )
    assert oldest["received_at"].endswith("Z")


def test_dead_letters_filter_and_paging_keep_the_total(
    client: TestClient, dead_letters: SqliteDeadLetterStore
) -> None:
    ids = [_add(dead_letters, b"%d" % i, device_id=f"ACME-000{i % 2}") for i in range(5)]
    body = client.get(
        "/api/v1/dead-letters", params={"device_id": "ACME-0000", "limit": 2, "offset": 1}
    ).json()
    assert [d["id"] for d in body["data"]] == [ids[2], ids[0]]
    assert body["total"] == 5
    assert (body["limit"], body["offset"]) == (2, 1)


def test_dead_letters_limit_bounds(client: TestClient, assert_error: Any) -> None:
    assert_error(client.get("/api/v1/dead-letters", params={"limit": 0}), 422, "validation_error")
