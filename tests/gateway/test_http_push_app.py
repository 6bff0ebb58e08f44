"""The app's contract with the platforms: answer at once, 503 when full, 400 + dead letter
for what cannot be used, retry the sink, and lose nothing acknowledged on shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from gateway.http_push import INGRESS, create_push_app
from sealscope.deadletters import SqliteDeadLetterStore
from tests.gateway.fixtures.push_support import (
    CREDENTIALS,
    CTWING_TOKEN,
    HUAWEI_TOKEN,
    RecordingSink,
    fixture,
    onenet_current_body,
    resolve,
)

HUAWEI = f"/push/huawei?token={HUAWEI_TOKEN}"
CTWING = f"/push/ctwing?token={CTWING_TOKEN}"


def ctwing_report(seq: int) -> bytes:
    body = json.loads(fixture("ctwing", "data_report_properties"))
    body["payload"]["seq"] = seq
    return json.dumps(body).encode()


async def test_http_push_answers_before_the_sink_and_503_when_the_queue_is_full(
    tmp_path: Path,
) -> None:
    sink = RecordingSink(gate=asyncio.Event())
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=sink,
        credentials=CREDENTIALS,
        dead_letters=dead_letters,
        resolve_device=resolve,
        queue_max=1,
    )
    async with TestClient(TestServer(app)) as client:
        first = await client.post(CTWING, data=ctwing_report(1))
        assert first.status == 200  # answered while the sink is still holding it
        await asyncio.wait_for(sink.entered.wait(), 5)  # the worker took it off the queue

        second = await client.post(CTWING, data=ctwing_report(2))  # fills the queue
        third = await client.post(CTWING, data=ctwing_report(3))
        assert (second.status, third.status) == (200, 503)
        assert third.headers["Retry-After"] == "5"

        assert sink.gate is not None
        sink.gate.set()
        await asyncio.wait_for(app[INGRESS].join(), 5)
        retried = await client.post(CTWING, data=ctwing_report(3))  # the platform's retry
        assert retried.status == 200
        await asyncio.wait_for(app[INGRESS].join(), 5)

    seqs = [json.loads(m.payload)["seq"] for m in sink.taken]
    assert seqs == [1, 2, 3]
    assert app[INGRESS].stats.busy == 1
    assert dead_letters.count() == 0
    dead_letters.close()


async def test_http_push_malformed_is_400_and_dead_lettered_once(tmp_path: Path) -> None:
    sink = RecordingSink()
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=sink, credentials=CREDENTIALS, dead_letters=dead_letters, resolve_device=resolve
    )
    bad_reading = json.loads(fixture("huawei", "oceanconnect_device_data_changed"))
    bad_reading["service"]["data"]["p_in_kpa"] = "lots"
    unknown_property = json.loads(fixture("ctwing", "data_report_properties"))
    unknown_property["payload"]["signalStrength"] = 12
    cases = [
        (HUAWEI, b"{not json", "body is not valid JSON"),
        (HUAWEI, json.dumps(bad_reading).encode(), "SealTelemetry.p_in_kpa: expected a number"),
        (CTWING, json.dumps(unknown_property).encode(), "unknown property 'signalStrength'"),
        (
            "/push/onenet",
            onenet_current_body({"type": 1, "dev_id": 5, "ds_id": "p_in_kpa", "value": 1}),
            "msg[0].at",
        ),
    ]
    async with TestClient(TestServer(app)) as client:
        for url, body, _ in cases:
            for _attempt in range(2):  # the platform retries a 400
                resp = await client.post(url, data=body)
                assert resp.status == 400
                assert (await resp.json())["error"] == "malformed"
        await asyncio.wait_for(app[INGRESS].join(), 5)

    letters = list(reversed(dead_letters.list()))
    assert [(d.topic, d.code) for d in letters] == [
        ("push/huawei", "malformed"),
        ("push/huawei", "malformed"),
        ("push/ctwing", "malformed"),
        ("push/onenet", "malformed"),
    ]
    for letter, (_, body, reason) in zip(letters, cases, strict=True):
        assert letter.payload == body  # kept exactly as it arrived
        assert reason in letter.reason
    assert sink.submissions == []
    dead_letters.close()


async def test_http_push_retries_a_failing_sink_without_losing_the_uplink(tmp_path: Path) -> None:
    sink = RecordingSink(failures=2)
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=sink, credentials=CREDENTIALS, dead_letters=dead_letters, resolve_device=resolve
    )
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(CTWING, data=ctwing_report(5))
        assert resp.status == 200
        await asyncio.wait_for(app[INGRESS].join(), 10)

    assert [json.loads(m.payload)["seq"] for m in sink.taken] == [5]
    assert app[INGRESS].stats.sink_retries == 2
    assert dead_letters.count() == 0
    dead_letters.close()


async def test_http_push_shutdown_dead_letters_what_the_sink_never_took(tmp_path: Path) -> None:
    sink = RecordingSink(failures=10**6)  # the spool is gone for good
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=sink,
        credentials=CREDENTIALS,
        dead_letters=dead_letters,
        resolve_device=resolve,
        drain_timeout_s=0.3,
    )
    bodies = [ctwing_report(6), ctwing_report(7)]
    async with TestClient(TestServer(app)) as client:
        for body in bodies:
            assert (await client.post(CTWING, data=body)).status == 200
        await asyncio.wait_for(sink.entered.wait(), 5)
    # leaving the client ran the app's cleanup: drain, give up, dead-letter

    letters = list(reversed(dead_letters.list()))
    assert [(d.code, d.payload) for d in letters] == [("undelivered", b) for b in bodies]
    assert all("OSError('spool disk unavailable')" in d.reason for d in letters)
    assert sink.taken == []
    dead_letters.close()
