"""Whatever an authenticated platform (or anyone) sends, the ingress answers 2xx/4xx/503,
never 500, and nothing it keeps is the trace of a parser bug."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http_push import INGRESS, create_push_app
from sealscope.deadletters import SqliteDeadLetterStore
from tests.gateway.fixtures.push_support import (
    CREDENTIALS,
    CTWING_TOKEN,
    HUAWEI_TOKEN,
    RecordingSink,
    ServerThread,
    onenet_current_body,
    onenet_sign,
    resolve,
)

ALLOWED = {200, 400, 401, 403, 413, 429, 503}

keys = st.sampled_from(
    [
        "resource",
        "event",
        "notify_data",
        "header",
        "body",
        "services",
        "service_id",
        "properties",
        "event_time",
        "device_id",
        "node_id",
        "content",
        "notifyType",
        "deviceId",
        "service",
        "serviceId",
        "data",
        "eventTime",
        "messageType",
        "payload",
        "APPdata",
        "timestamp",
        "IMEI",
        "upPacketSN",
        "eventContent",
        "type",
        "dev_id",
        "ds_id",
        "at",
        "value",
        "imei",
        "notifyType",
        "deviceName",
        "params",
        "time",
        "p_in_kpa",
        "leak_mm3s",
        "kind",
        "fw",
        "seq",
        "t",
        "config",
        "detail",
    ]
) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [
            "device.property",
            "device.message",
            "report",
            "deviceDataChanged",
            "deviceDatasChanged",
            "dataReport",
            "eventReport",
            "SealTelemetry",
            "SealEvent",
            "SealState",
            "notify",
            "property",
            "event",
            "leak_alarm",
            "20250311T163657Z",
            "e30=",
            "7b7d",
            "[]",
            "{}",
            "gAA=",
        ]
    )
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    dead_letters = SqliteDeadLetterStore(Path(tmp_path_factory.mktemp("fuzz")) / "state.db")

    def make_app() -> Any:
        return create_push_app(
            sink=RecordingSink(),
            credentials=CREDENTIALS,
            dead_letters=dead_letters,
            resolve_device=lambda platform, ref: resolve(platform, ref) or "FUZZ-DEV-001",
            queue_max=10_000,
        )

    with ServerThread(make_app) as running:
        yield running
        assert running.app is not None
        running.call(running.app[INGRESS].join())
        # a reason that names an internal error is a parser bug that only looked like a 400
        internal = [
            d.reason for d in dead_letters.list(limit=10_000) if "internal error" in d.reason
        ]
        assert internal == []
    dead_letters.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, wrap=st.sampled_from(["bare", "huawei", "ctwing", "onenet"]))
def test_http_push_arbitrary_json_never_gets_a_500(
    server: ServerThread, value: Any, wrap: str
) -> None:
    bare = json.dumps(value).encode()
    posts = {
        f"/push/huawei?token={HUAWEI_TOKEN}": bare,
        f"/push/ctwing?token={CTWING_TOKEN}": bare,
        "/push/onenet": bare,
    }
    if wrap == "huawei":
        wrapped = {"resource": "device.property", "event": "report", "notify_data": value}
        posts[f"/push/huawei?token={HUAWEI_TOKEN}"] = json.dumps(wrapped).encode()
    elif wrap == "ctwing":
        wrapped = {"messageType": "dataReport", "deviceId": "d", "timestamp": 1, "payload": value}
        posts[f"/push/ctwing?token={CTWING_TOKEN}"] = json.dumps(wrapped).encode()
    elif wrap == "onenet":
        # signed, so the fuzz reaches the parser behind the signature check
        posts["/push/onenet"] = onenet_current_body(value)
        classic = json.dumps(value, separators=(",", ":"))
        signed = {"msg": value, "msg_signature": onenet_sign("n1", classic.encode()), "nonce": "n1"}
        posts["/push/onenet?classic"] = json.dumps(signed, separators=(",", ":")).encode()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for url, body in posts.items():
            resp = client.post(url.replace("?classic", ""), content=body)
            assert resp.status_code in ALLOWED, (url, body[:200], resp.text[:200])
        verify = client.get("/push/onenet", params={"msg": bare.decode()[:100], "nonce": "x"})
        assert verify.status_code in ALLOWED


HOSTILE = [
    b"[" * 5000 + b"]" * 5000,  # issue 9: 5,000 deep
    b'{"resource":"device.property","notify_data":' + b"{" * 40 + b"}" * 40 + b"}",
    b'{"messageType":"dataReport","messageType":"dataReport"}',
    b'{"messageType":"dataReport","deviceId":"d","timestamp":NaN}',
    b'{"messageType":"dataReport","deviceId":"d","timestamp":1' + b"0" * 5000 + b"}",
    b'{"messageType":"d\xffataReport"}',
    b'{"messageType":"dataReport"',
    b"[" + b",".join([b"{}"] * 20_000) + b"]",
    b'{"messageType":"dataReport","deviceId":"d","timestamp":1,"payload":{"APPdata":"'
    + base64.b64encode(b"[" * 5000 + b"]" * 5000)
    + b'"}}',
]


@pytest.mark.parametrize("body", HOSTILE)
@pytest.mark.parametrize("platform", ["huawei", "ctwing"])
def test_http_push_hostile_json_is_400_and_names_the_fault(
    server: ServerThread, body: bytes, platform: str
) -> None:
    token = HUAWEI_TOKEN if platform == "huawei" else CTWING_TOKEN
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post(f"/push/{platform}?token={token}", content=body)
    assert resp.status_code == 400, resp.text[:200]
    assert "internal error" not in resp.json()["reason"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=600), platform=st.sampled_from(["huawei", "ctwing", "onenet"]))
def test_http_push_arbitrary_bytes_get_a_4xx(
    server: ServerThread, body: bytes, platform: str
) -> None:
    token = {"huawei": HUAWEI_TOKEN, "ctwing": CTWING_TOKEN, "onenet": ""}[platform]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post(f"/push/{platform}?token={token}", content=body)
    assert resp.status_code in (400, 401, 429), resp.text[:200]
