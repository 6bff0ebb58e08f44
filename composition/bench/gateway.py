"""``sealscope bench gateway``: CoAP uplinks per second through the gateway into the broker.

Both figures come from one run on this machine, with the same aiocoap clients sending the
same pre-encoded SenML CBOR uplinks, ``concurrency`` requests in flight:

1. the ceiling: a bare aiocoap server answering 2.04 to every POST (no key check, no
   decoding, no disk, no broker): what aiocoap itself manages on this machine with this
   client;
2. the gateway: key check, SenML decode and translation, group-committed fsync into the
   disk queue, 2.04, and QoS 1 publishing to Mosquitto, counted by a plain paho
   subscriber. The clock runs from the first request to the last message the subscriber
   received, so everything the broker had not delivered yet is inside the figure.

Client, server and subscriber share this process (and its two cores), which is why the
ceiling is measured the same way. Peak memory is the process's maximum resident set
(``ru_maxrss``), printed before and after the gateway phase.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import tempfile
import threading
import time
from pathlib import Path

import aiocoap
import aiocoap.resource
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from composition.servers import MosquittoServer
from gateway import Gateway, encode_cbor
from gateway.coap import CoapServer

__all__ = ["run_bench_gateway"]

log = logging.getLogger(__name__)
T0 = 1_763_000_000
CLIENTS = 64  # UDP endpoints: CoAP allows one CON in flight per endpoint (NSTART = 1)
CONCURRENCY = 64  # requests in flight across all clients


class _Echo(aiocoap.resource.Resource):
    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return True

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=aiocoap.CHANGED)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _uplinks(devices: list[str], uplinks: int, samples: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(uplinks):
        dev = devices[i % len(devices)]
        seq = i // len(devices)
        records: list[dict[str, object]] = [
            {"bn": f"urn:dev:sn:{dev}:", "bt": T0 + seq * 3600, "n": "seq", "v": seq}
        ]
        for s in range(samples):
            t = s * 300
            records += [
                {"n": "p_in", "u": "kPa", "t": t, "v": 600.0 + (i + s) % 50},
                {"n": "p_out", "u": "kPa", "t": t, "v": 20.0 + s % 5},
                {"n": "leak", "u": "mm3/s", "t": t, "v": 0.5 + (i % 7) / 10},
                {"n": "temp", "u": "Cel", "t": t, "v": 18.5},
            ]
        records.append({"n": "battery", "u": "V", "v": 3.6})
        out.append((dev, encode_cbor(records)))
    return out


class _Counter:
    def __init__(self, host: str, port: int) -> None:
        self.count = 0
        self.last_s = 0.0
        self.target = 0
        self.done = threading.Event()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-gw-counter")
        self._client.on_connect = lambda c, *_: c.subscribe("sealscope/v1/dev/+/telemetry", 1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("bench subscriber got no SUBACK")

    def _on_message(self, *_: object) -> None:
        self.count += 1
        self.last_s = time.perf_counter()
        if self.count >= self.target:
            self.done.set()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def _drive(
    port: int, work: list[tuple[str, bytes]], keys: dict[str, str] | None
) -> tuple[float, int]:
    """Send every uplink, ``CONCURRENCY`` in flight; returns (start time, non-2.04 count)."""
    clients = [await aiocoap.Context.create_client_context() for _ in range(CLIENTS)]
    failures = 0
    queue: asyncio.Queue[tuple[int, str, bytes]] = asyncio.Queue()
    for i, (dev, payload) in enumerate(work):
        queue.put_nowait((i, dev, payload))

    async def worker(client: aiocoap.Context) -> None:
        nonlocal failures
        while not queue.empty():
            _, dev, payload = queue.get_nowait()
            key = f"?k={keys[dev]}" if keys else ""
            request = aiocoap.Message(
                code=aiocoap.POST,
                uri=f"coap://127.0.0.1:{port}/u/{dev}{key}",
                payload=payload,
                content_format=112,
            )
            response = await client.request(request).response
            if response.code != aiocoap.CHANGED:
                failures += 1

    start = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for n in range(CONCURRENCY):
                tg.create_task(worker(clients[n % CLIENTS]))
    finally:
        for client in clients:
            await client.shutdown()
    return start, failures


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_bench_gateway(*, uplinks: int, devices: int, samples: int) -> int:
    if uplinks < 1 or devices < 1 or samples < 1:
        print("sealscope bench gateway: uplinks, devices and samples must be >= 1")
        return 2
    device_ids = [f"BENCH-V-{i:06d}" for i in range(devices)]
    work = _uplinks(device_ids, uplinks, samples)
    size = sum(len(p) for _, p in work) / len(work)
    print(
        f"bench gateway: {uplinks:,} CoAP uplinks (SenML CBOR, {samples} samples, "
        f"{size:.0f} bytes each) from {devices:,} devices, {CONCURRENCY} in flight "
        f"over {CLIENTS} UDP clients"
    )
    logging.getLogger("gateway").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sealscope-bench-gw-") as tmp:
        root = Path(tmp)
        # 1. ceiling: bare aiocoap, same client, same payloads
        echo_port = _free_udp_port()
        async with CoapServer(_Echo(), host="127.0.0.1", port=echo_port):
            start, failures = await _drive(echo_port, work, None)
            ceiling_s = time.perf_counter() - start
        if failures:
            print(f"  ceiling run: {failures} requests failed")
            return 1
        rss_before = _rss_mib()

        # 2. the gateway into a real Mosquitto
        with MosquittoServer(workdir=root / "mosquitto") as broker:
            counter = _Counter(broker.host, broker.port)
            counter.target = uplinks
            try:
                async with Gateway(
                    data_dir=root / "data",
                    state_db=root / "data" / "sealscope.db",
                    mqtt_host=broker.host,
                    mqtt_port=broker.port,
                    coap_host="127.0.0.1",
                    coap_port=_free_udp_port(),
                ) as gw:
                    keys = gw.keys.issue_many(device_ids)
                    start, failures = await _drive(gw.coap_port, work, keys)
                    answered_s = time.perf_counter() - start
                    if failures:
                        print(f"  gateway run: {failures} uplinks not answered 2.04")
                        return 1
                    if not await asyncio.to_thread(counter.done.wait, 120):
                        print(f"  only {counter.count} of {uplinks} messages reached the broker")
                        return 1
                    through_s = counter.last_s - start
                    stats = gw.resource.stats
            finally:
                counter.close()
        rss_after = _rss_mib()

    print()
    print("ceiling, measured in this run:")
    print(f"  bare aiocoap server, 2.04 to every POST   {uplinks / ceiling_s:>10,.0f} requests/s")
    print("sealscope gateway (key check, SenML decode, fsynced disk queue, QoS 1 to Mosquitto):")
    print(f"  answered 2.04 (uplink durable on disk)    {uplinks / answered_s:>10,.0f} uplinks/s")
    print(
        f"  delivered by the broker to a subscriber   {uplinks / through_s:>10,.0f} uplinks/s"
        f"  ({uplinks * samples / through_s:,.0f} samples/s,"
        f" {100 * ceiling_s / through_s:.0f}% of the ceiling)"
    )
    print(
        f"  accepted {stats.accepted:,}, duplicates {stats.duplicates}, bad {stats.bad_frames},"
        f" unauthorized {stats.unauthorized}"
    )
    print(
        f"peak memory (max RSS): {rss_before:,.0f} MiB after the ceiling run,"
        f" {rss_after:,.0f} MiB after the gateway run"
    )
    return 0
