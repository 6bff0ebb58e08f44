"""The running gateway with real peers: an aiocoap client in front, Mosquitto behind."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import aiocoap
import cbor2
import paho.mqtt.publish
import pytest

from composition.servers import MosquittoServer
from gateway import encode_cbor, encode_json
from sealscope import wire
from tests.gateway.helpers import Subscriber, cbor_pack, device_id, json_pack, post_uplink

pytestmark = pytest.mark.integration

T0 = 1_718_000_000


def sample(i: int) -> dict[str, Any]:
    return {"t": T0 + 60 * i, "p_in_kpa": 600 + i, "leak_mm3s": 0.5 * i}


async def test_coap_uplinks_arrive_once_each_as_canonical_messages(
    gateway_factory: Any, coap: aiocoap.Context, subscribe: Callable[..., Subscriber]
) -> None:
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/#")
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        for seq in range(5):
            encode = cbor_pack if seq % 2 == 0 else json_pack
            response = await post_uplink(
                coap,
                gw,
                dev,
                key,
                encode(dev, seq, [sample(seq)]),
                content_format=112 if seq % 2 == 0 else 110,
            )
            assert response.code == aiocoap.CHANGED, response.payload
            assert response.payload == b""
        alarm = json_pack(
            dev, 5, [sample(5)], extra=[{"n": "event", "t": T0 + 300, "vs": "leak_alarm"}]
        )
        assert (
            await post_uplink(coap, gw, dev, key, alarm, content_format=110)
        ).code == aiocoap.CHANGED
        messages = await sub.wait_count(7)
        assert await gw.forwarder.wait_drained(5)
    assert len(sub.snapshot()) == 7  # nothing more arrived: exactly once
    telemetry = [m for m in messages if m.topic.endswith("/telemetry")]
    assert [wire.decode_telemetry(m.payload).seq for m in telemetry] == [0, 1, 2, 3, 4, 5]
    assert [wire.decode_telemetry(m.payload).samples[0].p_in_kpa for m in telemetry] == [
        600,
        601,
        602,
        603,
        604,
        605,
    ]
    (event,) = [m for m in messages if m.topic.endswith("/event")]
    decoded = wire.decode_event(event.payload)
    assert decoded.kind == "leak_alarm" and decoded.reading is not None
    assert messages.index(event) == 5  # an alarm goes out before its uplink's telemetry


async def test_coap_state_is_published_retained(
    gateway_factory: Any, coap: aiocoap.Context, subscribe: Callable[..., Subscriber]
) -> None:
    dev = device_id()
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        raw = cbor_pack(dev, 1, [], extra=[{"n": "fw", "t": T0, "vs": "2.4.1"}])
        assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED
        assert await gw.forwarder.wait_drained(5)
    late = subscribe(f"sealscope/v1/dev/{dev}/state")  # subscribes after the publish
    (state,) = await late.wait_count(1)
    assert state.retain and wire.decode_state(state.payload).fw == "2.4.1"


async def test_coap_wrong_or_missing_key_is_refused_and_never_logged(
    gateway_factory: Any,
    coap: aiocoap.Context,
    subscribe: Callable[..., Subscriber],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/#")
    caplog.set_level(logging.DEBUG)
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        wrong = "W" + key[1:] if key[0] != "W" else "X" + key[1:]
        raw = cbor_pack(dev, 1, [sample(1)])
        for attempt_key, target in ((wrong, dev), (None, dev), (key, device_id())):
            response = await post_uplink(coap, gw, target, attempt_key, raw)
            assert response.code == aiocoap.UNAUTHORIZED
        assert gw.resource.stats.unauthorized == 3
        assert gw.dead_letters.count() == 0  # unauthenticated bytes are not kept
        assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED
        await sub.wait_count(1)
    assert "refused uplink" in caplog.text
    assert key not in caplog.text and wrong not in caplog.text
    assert key[5:20] not in caplog.text


@pytest.mark.parametrize(
    ("payload", "content_format", "reason"),
    [
        (encode_cbor([{0: "p_in", 2: 1}])[:-3], 112, "not valid CBOR"),
        (b'[{"n": "seq", "v": 1}, {"n": "p_in", "v": "high"}]', 110, "must be a number"),
        (encode_json([{"n": "seq", "v": 1}, {"n": "humidity", "v": 50}]), 110, "unknown record"),
        (encode_json([{"n": "seq", "v": 1}, {"n": "p_in", "t": T0, "v": 1e15}]), 110, "p_in_kpa"),
        (encode_json([{"n": "p_in", "t": T0, "v": 1}]), 110, "no seq"),
        (cbor2.dumps({"not": "a pack"}), 112, "array of records"),
    ],
)
async def test_coap_bad_frames_get_4_00_and_a_dead_letter(
    gateway_factory: Any,
    coap: aiocoap.Context,
    payload: bytes,
    content_format: int,
    reason: str,
) -> None:
    dev = device_id()
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        response = await post_uplink(coap, gw, dev, key, payload, content_format=content_format)
        assert response.code == aiocoap.BAD_REQUEST
        assert reason in response.payload.decode()
        (letter,) = gw.dead_letters.list(device_id=dev)
        assert letter.payload == payload and letter.code == "malformed"
        assert reason in letter.reason and letter.topic == f"coap:/u/{dev}"
        # the gateway carries on
        good = cbor_pack(dev, 2, [sample(2)])
        assert (await post_uplink(coap, gw, dev, key, good)).code == aiocoap.CHANGED


async def test_coap_protocol_errors(gateway_factory: Any, coap: aiocoap.Context) -> None:
    dev = device_id()
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        raw = cbor_pack(dev, 1, [sample(1)])
        assert (await post_uplink(coap, gw, dev, key, raw, content_format=60)).code == (
            aiocoap.UNSUPPORTED_CONTENT_FORMAT
        )
        assert (await post_uplink(coap, gw, dev, key, raw, content_format=None)).code == (
            aiocoap.UNSUPPORTED_CONTENT_FORMAT
        )
        base = f"coap://127.0.0.1:{gw.coap_port}"
        get = aiocoap.Message(code=aiocoap.GET, uri=f"{base}/u/{dev}?k={key}")
        assert (await coap.request(get).response).code == aiocoap.METHOD_NOT_ALLOWED
        other = aiocoap.Message(code=aiocoap.POST, uri=f"{base}/telemetry", payload=raw)
        assert (await coap.request(other).response).code == aiocoap.NOT_FOUND
        big = encode_json(
            [{"n": "seq", "v": 1}] + [{"n": "p_in", "t": T0 + i, "v": 1} for i in range(3000)]
        )
        response = await post_uplink(coap, gw, dev, key, big, content_format=110)
        assert response.code == aiocoap.REQUEST_ENTITY_TOO_LARGE  # assembled via Block1


async def test_coap_retried_uplink_is_published_once_even_across_a_restart(
    gateway_factory: Any, coap: aiocoap.Context, subscribe: Callable[..., Subscriber]
) -> None:
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/#")
    raw = cbor_pack(dev, 7, [sample(7)])
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        for _ in range(3):
            assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED
        assert gw.resource.stats.duplicates == 2
        await sub.wait_count(1)
    async with gateway_factory() as gw:
        assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED
        assert gw.resource.stats.duplicates == 1
        # same seq, new content (a device that reset its counter): not a retry
        fresh = cbor_pack(dev, 7, [sample(8)])
        assert (await post_uplink(coap, gw, dev, key, fresh)).code == aiocoap.CHANGED
        await sub.wait_count(2)
        assert await gw.forwarder.wait_drained(5)
    assert len(sub.snapshot()) == 2


async def test_coap_downlink_rides_back_and_reports_its_states(
    gateway_factory: Any,
    coap: aiocoap.Context,
    subscribe: Callable[..., Subscriber],
    mosquitto: MosquittoServer,
) -> None:
    dev = device_id()
    status = subscribe(f"sealscope/v1/dev/{dev}/cmd/status")
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        assert await gw.subscriber.wait_subscribed(10)
        command = {
            "v": 1,
            "id": "c-1",
            "name": "set_interval",
            "params": {"uplink_interval_s": 900},
        }
        paho.mqtt.publish.single(
            f"sealscope/v1/dev/{dev}/cmd",
            json.dumps(command),
            qos=1,
            hostname=mosquitto.host,
            port=mosquitto.port,
        )
        await status.wait_count(1)
        response = await post_uplink(coap, gw, dev, key, cbor_pack(dev, 1, [sample(1)]))
        assert response.code == aiocoap.CHANGED
        assert response.opt.content_format == 60
        (sent,) = cbor2.loads(response.payload)
        assert sent["id"] == "c-1" and sent["params"] == {"uplink_interval_s": 900}
        ack = cbor_pack(dev, 2, [], extra=[{"n": "cmd:c-1", "vs": "delivered"}])
        assert (await post_uplink(coap, gw, dev, key, ack)).payload == b""
        done = json_pack(dev, 3, [], extra=[{"n": "cmd:c-1", "vs": "succeeded"}])
        assert (await post_uplink(coap, gw, dev, key, done, content_format=110)).code == (
            aiocoap.CHANGED
        )
        # a JSON uplink gets its commands as JSON
        await gw.downlinks.enqueue(dev, "self_test", command_id="c-2")
        response = await post_uplink(coap, gw, dev, key, json_pack(dev, 4, []), content_format=110)
        assert response.opt.content_format == 50
        assert [c["id"] for c in json.loads(response.payload)] == ["c-2"]
        messages = await status.wait_count(6)
    states = [(json.loads(m.payload)["id"], json.loads(m.payload)["state"]) for m in messages]
    assert states == [
        ("c-1", "pending"),
        ("c-1", "sent"),
        ("c-1", "delivered"),
        ("c-1", "succeeded"),
        ("c-2", "pending"),
        ("c-2", "sent"),
    ]


async def test_coap_downlink_expires_unsent(
    gateway_factory: Any, coap: aiocoap.Context, subscribe: Callable[..., Subscriber]
) -> None:
    dev = device_id()
    status = subscribe(f"sealscope/v1/dev/{dev}/cmd/status")
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        await gw.downlinks.enqueue(dev, "self_test", command_id="c-x", ttl_s=0.2)
        messages = await status.wait_count(2, timeout_s=5)
        assert [json.loads(m.payload)["state"] for m in messages] == ["pending", "expired"]
        response = await post_uplink(coap, gw, dev, key, cbor_pack(dev, 1, [sample(1)]))
        assert response.code == aiocoap.CHANGED and response.payload == b""


async def test_coap_random_frames_never_reach_a_5_xx(
    gateway_factory: Any, coap: aiocoap.Context
) -> None:
    rng = random.Random(7)
    dev = device_id()
    valid = cbor_pack(dev, 1, [sample(1)])
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        for i in range(40):
            if i % 2:  # a valid frame with bytes flipped
                raw = bytearray(valid)
                for _ in range(3):
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
                payload = bytes(raw)
            else:
                payload = rng.randbytes(rng.randrange(0, 300))
            response = await post_uplink(
                coap, gw, dev, key, payload, content_format=110 if i % 3 == 0 else 112
            )
            assert response.code in (aiocoap.BAD_REQUEST, aiocoap.CHANGED), response
        assert gw.resource.stats.errors == 0
        assert gw.dead_letters.count(device_id=dev) == gw.resource.stats.bad_frames


@pytest.mark.parametrize(
    ("payload", "content_format", "reason"),
    [
        # issue 9: 10 KB, 5,000 deep, valid key: was 5.00 and no dead letter
        (b"[" * 5000 + b"]" * 5000, 110, "nested deeper than 8"),
        (b'[{"n":"seq","v":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}]", 110, "nested deeper"),
        (b"\x81" * 5000 + b"\x80", 112, "nested deeper than 8"),
        (b'[{"n":"seq","v":1,"v":2}]', 110, "key 'v' twice"),
        (b'[{"n":"seq","v":NaN}]', 110, "not valid JSON"),
        (b'[{"n":"seq","v":1' + b"0" * 5000 + b"}]", 110, "not valid JSON"),
        (b'[{"n":"s\xffq","v":1}]', 110, "UTF-8"),
        (b"\x81\xd8\x1c\x81\xd8\x1d\x00", 112, "tag 28"),
        (b"\x81\xa2\x00\x63seq\x00\x61x", 112, "Duplicate map key"),
        (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 112, "not valid CBOR"),
        (b"\x80" * 70_000, 112, "over 65536"),
        (b'[{"n":"seq","v":1}]', 0, "senml+cbor (112)"),
    ],
)
async def test_coap_undecodable_frames_are_4_xx_and_dead_lettered_once(
    gateway_factory: Any,
    coap: aiocoap.Context,
    subscribe: Callable[..., Subscriber],
    payload: bytes,
    content_format: int,
    reason: str,
) -> None:
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/#")
    async with gateway_factory() as gw:
        key = gw.keys.issue(dev)
        for _ in range(2):  # a device that retries anyway adds no second dead letter
            response = await post_uplink(coap, gw, dev, key, payload, content_format=content_format)
            assert response.code.class_ == 4, response
            assert reason in response.payload.decode()
        assert gw.resource.stats.errors == 0
        (letter,) = gw.dead_letters.list(device_id=dev)
        assert reason in letter.reason and payload.startswith(letter.payload)
        assert letter.payload_bytes == len(payload) and len(letter.payload) <= 4096
        good = cbor_pack(dev, 2, [sample(2)])
        assert (await post_uplink(coap, gw, dev, key, good)).code == aiocoap.CHANGED
        await sub.wait_count(1)


async def test_coap_key_flood_is_throttled_and_logged_once_per_interval(
    gateway_factory: Any,
    coap: aiocoap.Context,
    subscribe: Callable[..., Subscriber],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gateway.throttle import FailureThrottle

    caplog.set_level(logging.DEBUG)
    dev = device_id()
    sub = subscribe(f"sealscope/v1/dev/{dev}/#")
    # the throttle's clock stands still, so the counts do not depend on how fast the loop
    # runs; the gateway's own flush task writes the summary once it moves on
    now_s = [1000.0]
    throttle = FailureThrottle(
        what="CoAP key checks", burst=10, log_interval_s=10.0, clock=lambda: now_s[0]
    )
    async with gateway_factory(auth_failures=throttle) as gw:
        key = gw.keys.issue(dev)
        wrong = "W" + key[1:] if key[0] != "W" else "X" + key[1:]
        raw = cbor_pack(dev, 1, [sample(1)])
        codes = [(await post_uplink(coap, gw, dev, wrong, raw)).code for _ in range(300)]
        assert codes[:10] == [aiocoap.UNAUTHORIZED] * 10
        assert codes[10:] == [aiocoap.TOO_MANY_REQUESTS] * 290
        throttled = await post_uplink(coap, gw, dev, wrong, raw)
        assert throttled.opt.max_age is not None and throttled.opt.max_age >= 1
        # the right key from the same (throttled) address still gets in
        assert (await post_uplink(coap, gw, dev, key, raw)).code == aiocoap.CHANGED
        await sub.wait_count(1)
        assert gw.resource.stats.throttled == 291

        def refusals() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "gateway.throttle"]

        assert len(refusals()) == 1
        now_s[0] += 10.0
        for _ in range(100):
            if len(refusals()) >= 2:
                break
            await asyncio.sleep(0.05)
        assert refusals()[0] == f"coap: refused uplink for {dev!r}: wrong key (from 127.0.0.1)"
        assert refusals()[1] == (
            "301 failed CoAP key checks from 127.0.0.1 in the last 10 s (291 over the limit)"
        )
        assert len(refusals()) == 2
    assert key not in caplog.text and wrong not in caplog.text and key[5:20] not in caplog.text
