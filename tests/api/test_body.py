"""Request bodies: the size cap, strict JSON, routes without a body, and answers that never
echo a body back whole."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from composition.api.body import DEFAULT_MAX_BODY_BYTES, MAX_JSON_DEPTH, BodyGuard
from composition.api.handlers import SHOWN_CHARS, SHOWN_ERRORS
from sealscope.registry import SqliteDeviceRegistry

DEVICES = "/api/v1/devices"
JSON = {"content-type": "application/json"}
JSON_RAW = [(b"content-type", b"application/json")]
VALVE = b'{"device_id": "ACME-0001", "kind": "valve", "manufacturer": "a", "model": "m"}'


def _post(client: TestClient, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(DEVICES, content=body, headers=JSON if headers is None else headers)


def test_body_guard_admits_a_good_body(client: TestClient) -> None:
    assert _post(client, VALVE).status_code == 201


@pytest.mark.parametrize(
    ("body", "error_type", "says"),
    [
        (VALVE[:40], "json_invalid", "ends early"),
        (b"{not json}", "json_invalid", "line 1, column 2"),
        (VALVE[:-1] + b', "kind": "pump"}', "json_duplicate_key", "duplicate key 'kind'"),
        (VALVE[:-1] + b', "dn": NaN}', "json_invalid", "NaN is not JSON"),
        (VALVE[:-1] + b', "dn": -Infinity}', "json_invalid", "-Infinity is not JSON"),
        (VALVE[:-1] + b', "dn": 1e999}', "json_number_too_large", "out of range"),
        (VALVE[:-1] + b', "dn": 1' + b"0" * 5000 + b"}", "json_number_too_large", "out of range"),
        (VALVE.replace(b'"a"', b'"\\ud800"'), "json_invalid", "lone UTF-16 surrogate"),
        (VALVE.replace(b'"a"', b'"\xff"'), "json_invalid", "not UTF-8 (byte"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "json_too_deep", "deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "json_too_deep", "deeper"),
    ],
)
def test_body_guard_names_the_real_fault_of_bad_json(
    client: TestClient,
    registry: SqliteDeviceRegistry,
    assert_error: Any,
    body: bytes,
    error_type: str,
    says: str,
) -> None:
    answer = assert_error(_post(client, body), 422, "validation_error")
    assert [e["type"] for e in answer["detail"]] == [error_type]
    assert says in answer["message"]
    assert registry.list() == []


def test_body_guard_duplicate_key_is_named_in_loc(client: TestClient, assert_error: Any) -> None:
    answer = assert_error(_post(client, VALVE[:-1] + b', "model": "x"}'), 422, "validation_error")
    assert answer["detail"][0]["loc"] == ["body", "model"]


def test_body_guard_refuses_a_body_that_is_not_json(client: TestClient, assert_error: Any) -> None:
    assert_error(_post(client, VALVE, headers={}), 415, "unsupported_media_type")
    answer = assert_error(
        _post(client, VALVE, headers={"content-type": "text/plain"}), 415, "unsupported_media_type"
    )
    assert "text/plain" in answer["message"]
    # a JSON media type with parameters or a +json suffix is JSON
    for media in ("application/json; charset=utf-8", "application/merge-patch+json"):
        body = VALVE.replace(b"0001", media[-4:].encode().replace(b"-", b"0").upper())
        assert _post(client, body, headers={"content-type": media}).status_code == 201


def test_body_guard_caps_a_declared_body(client: TestClient, assert_error: Any) -> None:
    body = b" " * (DEFAULT_MAX_BODY_BYTES + 1)
    answer = assert_error(_post(client, body), 413, "payload_too_large")
    assert str(DEFAULT_MAX_BODY_BYTES) in answer["message"]
    # at the cap exactly, the body is read (and judged on its JSON)
    padded = VALVE + b" " * (DEFAULT_MAX_BODY_BYTES - len(VALVE))
    assert _post(client, padded).status_code == 201


async def test_body_guard_stops_reading_a_streamed_body() -> None:
    # TestClient reads a streamed body whole before the app runs, so this drives the
    # middleware directly with a chunked body that never ends
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"[" * 65_536, "more_body": True}

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not see an oversized body")

    scope = {"type": "http", "method": "POST", "path": DEVICES, "headers": list(JSON_RAW)}
    await BodyGuard(app, max_bytes=DEFAULT_MAX_BODY_BYTES)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "payload_too_large"
    assert reads == DEFAULT_MAX_BODY_BYTES // 65_536 + 1


@pytest.mark.parametrize("length", ["x", "²", "-1", "9" * 40])
def test_body_guard_refuses_a_bad_content_length(
    client: TestClient, assert_error: Any, length: str
) -> None:
    headers = {**JSON, "content-length": length.encode("latin-1")}
    assert_error(client.post(DEVICES, content=VALVE, headers=headers), 400, "bad_request")


def test_validation_error_never_echoes_the_body_whole(client: TestClient) -> None:
    big = "z" * 900_000
    response = _post(client, VALVE[:-1] + f', "note": "{big}"}}'.encode())
    assert response.status_code == 422
    assert len(response.content) < 2 * SHOWN_CHARS + 500
    entry = response.json()["detail"][0]
    assert entry["loc"] == ["body", "note"]
    assert entry["input"] == "z" * SHOWN_CHARS + "…"


def test_validation_error_lists_a_bounded_number_of_faults(client: TestClient) -> None:
    extra = ", ".join(f'"k{i}": {i}' for i in range(50_000))
    response = _post(client, VALVE[:-1] + f", {extra}}}".encode())
    body = response.json()
    assert response.status_code == 422
    assert len(body["detail"]) == SHOWN_ERRORS
    assert "(and 49997 more)" in body["message"]
    assert len(response.content) < 10_000


def test_validation_error_drops_a_large_object_input(client: TestClient) -> None:
    # a list where an object belongs: pydantic's input is the whole list
    response = _post(client, json.dumps(list(range(10_000))).encode())
    entry = response.json()["detail"][0]
    assert response.status_code == 422
    assert "input" not in entry
    assert len(response.content) < 1000


def test_validation_error_cuts_a_long_unknown_key(client: TestClient) -> None:
    key = "k" * 10_000
    response = _post(client, VALVE[:-1] + f', "{key}": 1}}'.encode())
    loc = response.json()["detail"][0]["loc"]
    assert loc == ["body", "k" * SHOWN_CHARS + "…"]


def test_body_guard_passes_get_requests_untouched(client: TestClient) -> None:
    assert client.get(DEVICES).status_code == 200
    assert isinstance(httpx.Response(200).content, bytes)
