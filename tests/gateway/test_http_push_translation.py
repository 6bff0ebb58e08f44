"""Each platform's documented push bodies (tests/gateway/fixtures/http_push/SOURCES.md) become
exactly the canonical v1 messages, for the right sealscope device, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.http_push import INGRESS, PushIngress, create_push_app
from gateway.uplink import CanonicalMessage
from sealscope.deadletters import SqliteDeadLetterStore
from tests.gateway.fixtures.push_support import (
    CREDENTIALS,
    CTWING_TOKEN,
    HUAWEI_TOKEN,
    RecordingSink,
    fixture,
    resolve,
)

URLS = {
    "huawei": f"/push/huawei?token={HUAWEI_TOKEN}",
    "ctwing": f"/push/ctwing?token={CTWING_TOKEN}",
    "onenet": "/push/onenet",
}


@dataclass
class Push:
    client: TestClient[Any, Any]
    sink: RecordingSink
    dead_letters: SqliteDeadLetterStore
    ingress: PushIngress

    async def post(self, platform: str, body: bytes) -> tuple[int, Any]:
        resp = await self.client.post(URLS[platform], data=body)
        return resp.status, await resp.json()

    async def settled(self) -> None:
        await asyncio.wait_for(self.ingress.join(), 5)


@pytest.fixture
async def push(tmp_path: Path) -> AsyncIterator[Push]:
    sink = RecordingSink()
    dead_letters = SqliteDeadLetterStore(tmp_path / "state.db")
    app = create_push_app(
        sink=sink, credentials=CREDENTIALS, dead_letters=dead_letters, resolve_device=resolve
    )
    async with TestClient(TestServer(app)) as client:
        yield Push(client, sink, dead_letters, app[INGRESS])
    dead_letters.close()


def msg(device_id: str, kind: str, payload: dict[str, Any]) -> CanonicalMessage:
    encoded = json.dumps(payload, separators=(",", ":")).encode()
    return CanonicalMessage(device_id, kind, encoded, retain=kind == "state")  # type: ignore[arg-type]


T0 = 1741711017.0  # 2025-03-11T16:36:57Z, the fixtures' first event time


async def test_http_push_huawei_iotda_property_report_is_telemetry_and_state(push: Push) -> None:
    status, answer = await push.post("huawei", fixture("huawei", "iotda_property_report"))
    await push.settled()

    assert (status, answer) == (200, {"result": "accepted", "uplinks": 1})
    dev = "YJV-DN50-000101"
    sample = {
        "t": T0,
        "p_in_kpa": 512.5,
        "p_out_kpa": 101.2,
        "leak_mm3s": 3.25,
        "position_pct": 0.0,
    }
    state = {
        "v": 1,
        "t": T0,
        "fw": "2.4.1",
        "config": {"interval_s": 3600},
        "rsrp_dbm": -104.0,
        "sinr_db": 3.5,
        "battery_v": 3.61,
    }
    assert push.sink.taken == [
        msg(dev, "telemetry", {"v": 1, "seq": 42, "samples": [sample]}),
        msg(dev, "state", state),
    ]
    assert push.sink.submissions[0].dedup_key == "huawei:3fe58d5e-8697-4849-a165-7db128f7e776"


async def test_http_push_huawei_iotda_message_report_is_the_device_event(push: Push) -> None:
    status, _ = await push.post("huawei", fixture("huawei", "iotda_message_report"))
    await push.settled()

    assert status == 200
    event = {
        "v": 1,
        "seq": 43,
        "t": 1741711080.0,
        "kind": "leak_alarm",
        "detail": "seat leak above local threshold",
        "reading": {"t": 1741711080.0, "p_in_kpa": 515.0, "leak_mm3s": 48.0},
    }
    assert push.sink.taken == [msg("YJV-DN50-000101", "event", event)]


async def test_http_push_huawei_oceanconnect_data_changed(push: Push) -> None:
    await push.post("huawei", fixture("huawei", "oceanconnect_device_data_changed"))
    await push.post("huawei", fixture("huawei", "oceanconnect_device_datas_changed"))
    await push.settled()

    dev = "YJP-CP80-000202"
    one = {"t": T0, "p_in_kpa": 880.0, "motor_a": 1.9, "temp_c": 41.5, "vib_mms": 2.4}
    two = {"t": T0 + 3600, "p_in_kpa": 876.5, "leak_mm3s": 0.8}
    event = {
        "v": 1,
        "seq": 18,
        "t": T0 + 3601,
        "kind": "actuation_fault",
        "detail": "stroke timeout",
        "reading": {"t": T0 + 3601, "stroke_s": 61.0},
    }
    assert push.sink.taken == [
        msg(dev, "telemetry", {"v": 1, "seq": 17, "samples": [one]}),
        msg(dev, "telemetry", {"v": 1, "seq": 18, "samples": [two]}),
        msg(dev, "event", event),
    ]
    assert [s.dedup_key for s in push.sink.submissions] == [
        "huawei:a8f3c1d2e4b5",
        "huawei:a8f3c1d2e4b6",
    ]


async def test_http_push_ctwing_appdata_canonical_json(push: Push) -> None:
    status, _ = await push.post("ctwing", fixture("ctwing", "data_report_appdata"))
    await push.settled()

    assert status == 200
    samples = [
        {"t": T0, "p_in_kpa": 640.0, "leak_mm3s": 1.5},
        {"t": T0 + 300, "p_in_kpa": 642.5, "leak_mm3s": 1.6},
    ]
    assert push.sink.taken == [
        msg("YJV-DN100-000303", "telemetry", {"v": 1, "seq": 7, "samples": samples})
    ]


async def test_http_push_ctwing_appdata_senml_cbor(push: Push) -> None:
    await push.post("ctwing", fixture("ctwing", "data_report_senml_cbor"))
    await push.settled()

    sample = {"t": T0, "p_in_kpa": 512.5, "leak_mm3s": 3.25}
    assert push.sink.taken == [
        msg("ACME-V-000777", "telemetry", {"v": 1, "seq": 8, "samples": [sample]})
    ]


async def test_http_push_ctwing_properties_and_event(push: Push) -> None:
    await push.post("ctwing", fixture("ctwing", "data_report_properties"))
    await push.post("ctwing", fixture("ctwing", "event_report"))
    await push.settled()

    dev = "YJV-DN100-000303"
    sample = {
        "t": T0 + 180,
        "p_in_kpa": 300.25,
        "flow_m3h": 12.5,
        "speed_rpm": 2950.0,
        "battery_v": 3.58,
    }
    event = {
        "v": 1,
        "seq": 10,
        "t": T0 + 240,
        "kind": "low_battery",
        "reading": {"t": T0 + 240, "battery_v": 3.05},
    }
    assert push.sink.taken == [
        # no seq property: the platform's upPacketSN stands in
        msg(dev, "telemetry", {"v": 1, "seq": 9, "samples": [sample]}),
        msg(dev, "event", event),
    ]


@pytest.mark.parametrize(
    ("platform", "name"),
    [
        ("ctwing", "device_online_offline"),
        ("ctwing", "command_response"),
        ("huawei", "iotda_device_status"),
        ("onenet", "classic_online"),
    ],
)
async def test_http_push_notifications_without_data_are_acknowledged(
    push: Push, platform: str, name: str
) -> None:
    status, answer = await push.post(platform, fixture(platform, name))
    await push.settled()

    assert (status, answer) == (200, {"result": "acknowledged"})
    assert push.sink.submissions == []
    assert push.dead_letters.count() == 0


async def test_http_push_onenet_classic_datapoints_merge_by_time(push: Push) -> None:
    status, _ = await push.post("onenet", fixture("onenet", "classic_datapoints"))
    await push.settled()

    assert status == 200
    samples = [
        {"t": T0, "p_in_kpa": 455.5, "leak_mm3s": 2.75},
        {"t": T0 + 300, "p_in_kpa": 457.0},
    ]
    assert push.sink.taken == [
        msg("YJV-DN65-000404", "telemetry", {"v": 1, "seq": 0, "samples": samples})
    ]


async def test_http_push_onenet_classic_nb_opaque_hex(push: Push) -> None:
    await push.post("onenet", fixture("onenet", "classic_nb_opaque"))
    await push.settled()

    sample = {"t": 1741711017.5, "p_in_kpa": 601.0, "leak_mm3s": 0.5}
    assert push.sink.taken == [
        msg("YJV-DN65-000505", "telemetry", {"v": 1, "seq": 5, "samples": [sample]})
    ]


async def test_http_push_onenet_current_property_and_event(push: Push) -> None:
    await push.post("onenet", fixture("onenet", "current_property"))
    await push.post("onenet", fixture("onenet", "current_event"))
    await push.settled()

    dev = "YJV-DN80-000321"
    sample = {"t": T0 + 4, "p_in_kpa": 702.5, "p_out_kpa": 98.0, "position_pct": 100.0}
    event = {
        "v": 1,
        "seq": 92,
        "t": T0 + 5,
        "kind": "leak_alarm",
        "detail": "seat leak",
        "reading": {"t": T0 + 5, "leak_mm3s": 55.5},
    }
    assert push.sink.taken == [
        msg(dev, "telemetry", {"v": 1, "seq": 91, "samples": [sample]}),
        msg(dev, "event", event),
    ]
    assert push.sink.submissions[0].dedup_key == "onenet:7b2c1e9a0f6d4c53a8e1f02b9d3c4e5f"


@pytest.mark.parametrize(
    ("platform", "name"),
    [
        ("huawei", "iotda_property_report"),
        ("ctwing", "data_report_appdata"),
        ("onenet", "classic_datapoints"),
        ("onenet", "current_property"),
    ],
)
async def test_http_push_platform_retry_passes_the_same_dedup_key(
    push: Push, platform: str, name: str
) -> None:
    body = fixture(platform, name)
    first, _ = await push.post(platform, body)
    again, _ = await push.post(platform, body)
    await push.settled()

    assert (first, again) == (200, 200)
    first_sub, second_sub = push.sink.submissions
    assert first_sub.dedup_key == second_sub.dedup_key is not None
    assert (first_sub.taken, second_sub.taken) == (True, False)
    assert push.ingress.stats.duplicates == 1


async def test_http_push_unknown_device_is_dead_lettered_with_its_platform_ids(
    push: Push,
) -> None:
    body = json.loads(fixture("ctwing", "data_report_appdata"))
    body["deviceId"], body["IMEI"] = "ffffffffffffffffffffffffffffffff", "860000000000001"
    raw = json.dumps(body).encode()

    status, _ = await push.post("ctwing", raw)
    await push.settled()

    assert status == 200  # the push itself was fine; the platform must not retry it
    assert push.sink.submissions == []
    (letter,) = push.dead_letters.list()
    assert (letter.topic, letter.code, letter.payload) == ("push/ctwing", "unknown_device", raw)
    assert "'ffffffffffffffffffffffffffffffff', '860000000000001'" in letter.reason
