"""Hostile bodies against a running gateway (issue 9): a real aiocoap server and the HTTP
push app on free loopback ports, the session's Mosquitto behind them.

Each bad body, authenticated, must answer 4.xx (CoAP) or 4xx (push), add exactly one
dead letter (none for a body already dead-lettered), leave the gateway serving, and a good
uplink sent right after it must reach the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composition.servers import MosquittoServer
from gateway import Gateway
from gateway.http_push import create_push_app
from tests.gateway.fixtures.push_support import CREDENTIALS, CTWING_TOKEN, HUAWEI_TOKEN
from tests.gateway.helpers import Subscriber, cbor_pack, device_id, free_udp_port, json_pack

pytestmark = pytest.mark.integration

T0 = 1_718_000_000
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningGateway:
    """A ``Gateway`` (CoAP + push) served by its own event loop in a thread, for the sync
    tests hypothesis runs; ``call`` runs a coroutine there."""

    def __init__(self, data_dir: Path, broker: MosquittoServer, dev: str) -> None:
        self.dev = dev
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop = asyncio.Event()
        self._gateway = Gateway(
            data_dir=data_dir,
            state_db=data_dir / "sealscope.db",
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            client_id=f"fuzz-gw-{uuid.uuid4().hex[:8]}",
            coap_host="127.0.0.1",
            coap_port=free_udp_port(),
            http_host="127.0.0.1",
            http_port=_free_tcp_port(),
            http_app_factory=lambda gw: create_push_app(
                sink=gw.forwarder,
                credentials=CREDENTIALS,
                dead_letters=gw.dead_letters,
                resolve_device=lambda platform, ref: dev,
            ),
            drain_timeout_s=2.0,
        )
        self.gw = self._gateway
        self.coap: aiocoap.Context | None = None
        self.key = ""

    def call(self, coro: Any, timeout_s: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    async def _start(self) -> None:
        await self._gateway.__aenter__()
        self.key = self._gateway.keys.issue(self.dev)
        self.coap = await aiocoap.Context.create_client_context()

    async def _close(self) -> None:
        if self.coap is not None:
            await self.coap.shutdown()
        await self._gateway.__aexit__(None, None, None)

    def __enter__(self) -> RunningGateway:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self._close(), timeout_s=30.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            self._loop.close()

    def post_coap(self, payload: bytes, content_format: int, key: str | None = None) -> Any:
        async def post() -> aiocoap.Message:
            assert self.coap is not None
            request = aiocoap.Message(
                code=aiocoap.POST,
                uri=f"coap://127.0.0.1:{self.gw.coap_port}/u/{self.dev}?k={key or self.key}",
                payload=payload,
            )
            request.opt.content_format = content_format
            return await asyncio.wait_for(self.coap.request(request).response, 10)

        return self.call(post())

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.gw.http_port}"


class Ledger:
    """What the test expects in the dead-letter store and at the broker."""

    def __init__(self, running: RunningGateway, sub: Subscriber) -> None:
        self.running = running
        self.sub = sub
        self.seen: set[str] = set()
        self.dead_letters = 0
        self.forwarded = 0
        self.seq = 0

    def refused(self, channel: str, body: bytes) -> None:
        digest = hashlib.sha256(channel.encode() + b"\0" + body).hexdigest()
        if digest not in self.seen:
            self.seen.add(digest)
            self.dead_letters += 1
        assert self.running.gw.dead_letters.count() == self.dead_letters, (channel, body[:80])

    def good_coap(self) -> None:
        self.seq += 1
        raw = cbor_pack(self.running.dev, self.seq, [{"t": T0 + self.seq, "p_in_kpa": 600}])
        assert self.running.post_coap(raw, 112).code == aiocoap.CHANGED
        self._arrived()

    def good_push(self, client: httpx.Client) -> None:
        self.seq += 1
        body = {
            "messageType": "dataReport",
            "deviceId": "fuzz-ct-1",
            "timestamp": (T0 + self.seq) * 1000,
            "serviceId": "SealTelemetry",
            "payload": {"p_in_kpa": 500, "seq": self.seq},
        }
        resp = client.post(f"/push/ctwing?token={CTWING_TOKEN}", content=json.dumps(body))
        assert resp.status_code == 200, resp.text
        self._arrived()

    def _arrived(self) -> None:
        self.forwarded += 1
        self.running.call(self.sub.wait_count(self.forwarded))


@pytest.fixture(scope="module")
def ledger(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: MosquittoServer
) -> Iterator[Ledger]:
    dev = device_id()
    sub = Subscriber(mosquitto.host, mosquitto.port, f"sealscope/v1/dev/{dev}/#")
    try:
        with RunningGateway(tmp_path_factory.mktemp("fuzzgw"), mosquitto, dev) as running:
            yield Ledger(running, sub)
            assert running.gw.resource.stats.errors == 0
        payloads = [m.payload for m in sub.snapshot()]
        assert len(payloads) == len(set(payloads))  # nothing arrived twice
    finally:
        sub.close()


# -- adversarial bodies ----------------------------------------------------------------

depths = st.integers(9, 6000)
numbers = st.sampled_from(
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 5000, b"-0x10", b"1.", b"01"]
)


def _record(value: bytes) -> bytes:
    return b'[{"n":"seq","v":' + value + b"}]"


json_bodies = st.one_of(
    depths.map(lambda n: b"[" * n + b"]" * n),
    depths.map(lambda n: _record(b"[" * n + b"]" * n)),
    depths.map(lambda n: b'[{"n":"seq","v":1,"x":' + b'{"a":' * n + b"1" + b"}" * n + b"}]"),
    numbers.map(_record),
    st.sampled_from([b'[{"n":"seq","v":1,"v":2}]', b'[{"n":"seq","n":"seq","v":1}]']),
    st.integers(10_001, 20_000).map(lambda n: b"[" + b",".join([b"{}"] * n) + b"]"),
    st.binary(min_size=1, max_size=8).map(lambda b: b'[{"n":"s' + b + b'\xff","v":1}]'),
    st.integers(1, 40).map(lambda n: json_pack("X-V-1", 1, [{"t": T0, "p_in_kpa": 1}])[:n]),
    st.sampled_from([b'{"n":"seq","v":1}', b"[]", b'[{"n":"seq","v":"1"}]', b'[{"n":"seq"}]']),
)


def _cbor_deep(n: int) -> bytes:
    return b"\x81" * n + b"\x80"


cbor_bodies = st.one_of(
    depths.map(_cbor_deep),
    depths.map(lambda n: b"\xa1\x00" * n + b"\x00"),
    st.sampled_from(
        [
            b"\x81\xd8\x1c\x81\xd8\x1d\x00",  # shared reference: a cycle
            b"\xc2\x59\x10\x00" + b"\xff" * 4096,  # a 32,768-bit bignum
            b"\x81\xa1\x02\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # NaN value
            b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # 2**64-1 items announced
            b"\x5b\x00\x00\x00\xff\xff\xff\xff\xff",  # a terabyte string announced
            b"\x81\xa2\x00\x63seq\x00\x61x",  # duplicate label
            b"\x81\xa2\x00\x63seq\x02\x3b\xff\xff\xff\xff\xff\xff\xff\xff",  # -2**64
            b"\x81\xa1\x00\x63s\xffq",  # invalid UTF-8
        ]
    ),
    st.integers(1, 20).map(lambda n: cbor_pack("X-V-1", 1, [{"t": T0, "p_in_kpa": 1}])[:n]),
    st.integers(10_001, 12_000).map(lambda n: cbor2.dumps([{}] * n)),
)
coap_cases = st.one_of(
    json_bodies.map(lambda b: (b, 110)),
    cbor_bodies.map(lambda b: (b, 112)),
    st.tuples(st.binary(max_size=400), st.sampled_from([110, 112])),
)


@FUZZ
@given(case=coap_cases)
def test_fuzz_running_gateway_coap_refuses_each_bad_body_once_and_serves_on(
    ledger: Ledger, case: tuple[bytes, int]
) -> None:
    body, content_format = case
    response = ledger.running.post_coap(body, content_format)
    assert response.code.class_ == 4, (response, body[:80])
    assert response.payload, "a 4.xx says why"
    ledger.refused("coap", body)
    ledger.good_coap()


push_bodies = st.one_of(
    json_bodies,
    depths.map(lambda n: b'{"messageType":"dataReport","payload":' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from(
        [
            b'{"messageType":"dataReport","messageType":"dataReport"}',
            b'{"resource":"device.property","event":"report","notify_data":NaN}',
            b'{"messageType":"dataReport","timestamp":1' + b"0" * 5000 + b"}",
            b'{"messageType":"dataReport","deviceId":"d","timestamp":1,"payload":'
            b'{"APPdata":"' + b"gQ==" * 10 + b'"}}',
        ]
    ),
    st.binary(max_size=400),
    st.integers(65_537, 70_000).map(lambda n: b" " * n),  # over the body bound: 413
)


@FUZZ
@given(body=push_bodies, platform=st.sampled_from(["huawei", "ctwing"]))
def test_fuzz_running_gateway_push_refuses_each_bad_body_once_and_serves_on(
    ledger: Ledger, body: bytes, platform: str
) -> None:
    token = HUAWEI_TOKEN if platform == "huawei" else CTWING_TOKEN
    with httpx.Client(base_url=ledger.running.push_url, timeout=10) as client:
        resp = client.post(f"/push/{platform}?token={token}", content=body)
        assert resp.status_code in (400, 413), (resp.status_code, resp.text[:200], body[:80])
        assert "reason" in resp.json()
        ledger.refused(f"push/{platform}", body[:65536])  # kept once per platform
        ledger.good_push(client)
