"""Only the platforms get in: URL tokens for Huawei and CTWing, OneNET's signatures, and
logs that never hold a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.http_push import PlatformCredentials, RedactingAccessLogger, create_push_app
from sealscope.deadletters import SqliteDeadLetterStore
from tests.gateway.fixtures.push_support import (
    CREDENTIALS,
    CTWING_TOKEN,
    HUAWEI_TOKEN,
    ONENET_TOKEN,
    RecordingSink,
    fixture,
    onenet_sign,
    resolve,
)

SECRETS = (HUAWEI_TOKEN, CTWING_TOKEN, ONENET_TOKEN)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=RecordingSink(),
        credentials=CREDENTIALS,
        dead_letters=dead_letters,
        resolve_device=resolve,
    )
    # the access log the README prescribes: aiohttp's default prints the query (the token)
    server = TestServer(app)
    await server.start_server(access_log_class=RedactingAccessLogger)
    async with TestClient(server) as client:
        yield client
    # refused pushes prove nothing about their origin: none may fill the dead-letter store
    assert dead_letters.count() == 0
    dead_letters.close()


@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        ("/push/huawei", {}, 401),
        ("/push/huawei?token=", {}, 401),
        ("/push/huawei?token=hw-callback-secret-0123456788", {}, 403),
        (f"/push/huawei?token={CTWING_TOKEN}", {}, 403),
        ("/push/huawei", {"Authorization": "Bearer not-the-secret-at-all"}, 403),
        ("/push/ctwing", {}, 401),
        (f"/push/ctwing?token={HUAWEI_TOKEN}", {}, 403),
    ],
)
async def test_http_push_url_token_refuses_missing_or_wrong(
    client: TestClient[Any, Any],
    caplog: pytest.LogCaptureFixture,
    url: str,
    headers: dict[str, str],
    status: int,
) -> None:
    platform = url.split("?")[0].rsplit("/", 1)[1]
    body = fixture(platform, "iotda_property_report" if platform == "huawei" else "event_report")
    with caplog.at_level(logging.INFO):
        resp = await client.post(url, data=body, headers=headers)

    assert resp.status == status
    assert "refused" in caplog.text
    assert not any(secret in caplog.text for secret in SECRETS)
    answer = await resp.text()
    assert not any(secret in answer for secret in SECRETS)


async def test_http_push_url_token_accepts_bearer_header(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/push/ctwing",
        data=fixture("ctwing", "event_report"),
        headers={"Authorization": f"Bearer {CTWING_TOKEN}"},
    )
    assert resp.status == 200


async def test_http_push_onenet_url_verification_echoes_msg(client: TestClient[Any, Any]) -> None:
    msg, nonce = "gVb3kT9x1Qz", "a1b2c3d4"
    params = {"msg": msg, "nonce": nonce, "signature": onenet_sign(nonce, msg.encode())}
    resp = await client.get("/push/onenet", params=params)

    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert await resp.text() == msg


async def test_http_push_onenet_url_verification_survives_plus_turned_to_space(
    client: TestClient[Any, Any],
) -> None:
    # find a nonce whose signature holds a '+', then send it unescaped as OneNET's GET may
    msg = "verify-me"
    nonce = next(
        n for n in (f"n{i:07d}" for i in range(1000)) if "+" in onenet_sign(n, msg.encode())
    )
    signature = onenet_sign(nonce, msg.encode())
    resp = await client.get(f"/push/onenet?msg={msg}&nonce={nonce}&signature={signature}")
    assert (resp.status, await resp.text()) == (200, msg)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"msg": "abc", "nonce": "a1b2c3d4"}, 401),
        ({"msg": "abc", "nonce": "a1b2c3d4", "signature": onenet_sign("a1b2c3d4", b"abd")}, 403),
        (
            {
                "msg": "abc",
                "nonce": "a1b2c3d4",
                "signature": onenet_sign("a1b2c3d4", b"abc", token="another-token"),
            },
            403,
        ),
        ({}, 401),
    ],
)
async def test_http_push_onenet_url_verification_refuses_bad_signature(
    client: TestClient[Any, Any],
    caplog: pytest.LogCaptureFixture,
    params: dict[str, str],
    status: int,
) -> None:
    resp = await client.get("/push/onenet", params=params)

    assert resp.status == status
    assert "abc" not in await resp.text()  # msg is echoed only to the platform
    assert ONENET_TOKEN not in caplog.text


def tampered_classic() -> bytes:
    body = fixture("onenet", "classic_datapoints")
    return body.replace(b'"value":455.5', b'"value":955.5')


def tampered_current() -> bytes:
    body = json.loads(fixture("onenet", "current_property"))
    body["msg"] = body["msg"].replace("702.5", "702.6")
    return json.dumps(body).encode()


def resigned_with_wrong_token() -> bytes:
    body = json.loads(fixture("onenet", "current_property"))
    body["signature"] = onenet_sign(body["nonce"], body["msg"].encode(), token="guessed")
    return json.dumps(body).encode()


def unsigned() -> bytes:
    body = json.loads(fixture("onenet", "current_property"))
    del body["signature"]
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (tampered_classic(), 403),
        (tampered_current(), 403),
        (resigned_with_wrong_token(), 403),
        (unsigned(), 401),
        (b"not json at all", 401),
        (b'{"msg": {"type": 1}}', 401),
        (b"[]", 401),
    ],
)
async def test_http_push_onenet_refuses_tampered_or_unsigned_bodies(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, body: bytes, status: int
) -> None:
    resp = await client.post("/push/onenet", data=body)

    assert resp.status == status
    assert ONENET_TOKEN not in caplog.text


async def test_http_push_platform_without_credentials_has_no_route(tmp_path: Path) -> None:
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=RecordingSink(),
        credentials=PlatformCredentials(onenet_token=ONENET_TOKEN),
        dead_letters=dead_letters,
        resolve_device=resolve,
    )
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(f"/push/huawei?token={HUAWEI_TOKEN}", data=b"{}")
        assert resp.status == 404
    dead_letters.close()


def test_http_push_credentials_refuse_short_url_tokens_and_hide_secrets() -> None:
    with pytest.raises(ValueError, match="huawei_token"):
        PlatformCredentials(huawei_token="short")
    assert not any(secret in repr(CREDENTIALS) for secret in SECRETS)


async def test_http_push_token_flood_is_throttled_and_logged_once(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    body = fixture("ctwing", "event_report")
    with caplog.at_level(logging.INFO):
        statuses = [
            (await client.post(f"/push/ctwing?token={HUAWEI_TOKEN}", data=body)).status
            for _ in range(40)
        ]
        # a refill of one a second: at most a few more 403s however slow the loop is
        assert statuses[:10] == [403] * 10 and statuses.count(429) >= 25
        throttled = await client.post(f"/push/ctwing?token={HUAWEI_TOKEN}", data=body)
        assert throttled.status == 429 and int(throttled.headers["Retry-After"]) >= 1
        # the right token from the same (throttled) address still gets in
        ok = await client.post(f"/push/ctwing?token={CTWING_TOKEN}", data=body)
        assert ok.status == 200
    refusals = [r for r in caplog.records if r.name == "gateway.throttle"]
    assert len(refusals) == 1  # the rest goes into the interval's summary
    assert "refused 403: wrong token" in refusals[0].getMessage()
    assert not any(secret in caplog.text for secret in SECRETS)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"msg":' + b"[" * 100 + b"]" * 100 + b',"nonce":"n","signature":"s"}',
        b'{"msg":"{}","msg":"{}","nonce":"n","signature":"s"}',
    ],
)
async def test_http_push_onenet_unsigned_hostile_body_is_401_and_not_kept(
    client: TestClient[Any, Any], body: bytes
) -> None:
    resp = await client.post("/push/onenet", data=body)
    assert resp.status == 401
