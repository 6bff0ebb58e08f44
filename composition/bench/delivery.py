"""``sealscope bench delivery``: alert changes delivered per second to a local webhook
receiver, and the latency from the alert change (its enqueue committed) to the receiver.

The receiver (aiohttp, verifying every signature) runs in its own process. Its ceiling is
measured first in the same run: requests/s a bare aiohttp client gets through it with the
same body, signed headers and concurrency, so the delivery figure reads against what the
receiver can take at all. Then:

- throughput: ``changes`` alert changes are enqueued (one transaction each) before a
  dispatcher starts; the rate is changes over the time until the last one arrived;
- latency: a producer enqueues one change per transaction at ``rate_per_s`` (half the
  measured throughput by default) for ``seconds`` and wakes the in-process dispatcher;
  p50/p99 of (arrival at the receiver - enqueue commit).

The outbox is SQLite (the embedded default) in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from composition.servers import free_port, wait_for_port
from sealscope.db import open_migrated, sqlite_url
from sealscope.delivery import (
    Dispatcher,
    Notification,
    SqlOutbox,
    Subscription,
    WebhookChannel,
    new_secret,
)
from sealscope.delivery.signature import headers

__all__ = ["run_bench_delivery"]

_CONCURRENCY = 64


def _change(n: int) -> Notification:
    return Notification(
        type="alert.raised",
        kind="device",
        alert_id=n,
        cause="seat_leak",
        category="maintenance_required",
        severity=3,
        summary="seat leak 2.4x its commissioning baseline",
        device_id=f"BENCH-V-{n % 1000:04d}",
        evidence={"ratio": 2.4, "baseline_mm3s": 0.8},
    )


async def _receiver_ceiling(url: str, secret: str, requests: int) -> float:
    body = _change(0).body("msg_ceiling")
    remaining = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            signed = headers(secret, f"msg_ceiling{remaining}", body)
            signed["content-type"] = "application/json"
            async with session.post(url, data=body, headers=signed) as response:
                await response.read()
                if response.status != 204:
                    raise RuntimeError(f"receiver answered {response.status}")

    connector = aiohttp.TCPConnector(limit=_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(_CONCURRENCY)))
        return requests / (time.perf_counter() - t0)


async def _arrivals(base_url: str) -> dict[str, tuple[float, bool]]:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/received") as r:
        rows = await r.json()
    return {row[0]: (row[1], row[2]) for row in rows if not row[0].startswith("msg_ceiling")}


async def _wait_arrived(base_url: str, ids: set[str], timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        arrived = await _arrivals(base_url)
        if ids <= arrived.keys():
            unverified = [i for i in ids if not arrived[i][1]]
            if unverified:
                raise RuntimeError(f"{len(unverified)} deliveries failed verification")
            return {i: arrived[i][0] for i in ids}
        if time.monotonic() > deadline:
            missing = len(ids - arrived.keys())
            raise TimeoutError(f"{missing} of {len(ids)} changes not delivered in {timeout_s}s")
        await asyncio.sleep(0.05)


def _dispatcher(outbox: SqlOutbox) -> Dispatcher:
    return Dispatcher(
        outbox=outbox,
        channels=[WebhookChannel(timeout_s=10.0)],
        lease_s=30.0,
        batch=100,
        max_in_flight=_CONCURRENCY,
        poll_interval_s=0.5,
    )


async def _throughput(outbox: SqlOutbox, base_url: str, changes: int) -> float:
    ids: set[str] = set()
    for n in range(changes):
        with outbox.transaction() as txn:
            ids.update(outbox.enqueue(txn, _change(n)))
    t0 = time.time()
    async with _dispatcher(outbox):
        arrived = await _wait_arrived(base_url, ids, timeout_s=300)
    return len(ids) / (max(arrived.values()) - t0)


async def _latency(
    outbox: SqlOutbox, base_url: str, rate_per_s: float, seconds: float
) -> tuple[list[float], float]:
    enqueued: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    async with _dispatcher(outbox) as dispatcher:

        def produce() -> None:
            start = time.monotonic()
            n = 0
            while (elapsed := time.monotonic() - start) < seconds:
                if n >= elapsed * rate_per_s:
                    time.sleep(min(0.002, 1 / rate_per_s))
                    continue
                with outbox.transaction() as txn:
                    ids = outbox.enqueue(txn, _change(1_000_000 + n))
                now = time.time()
                enqueued.update(dict.fromkeys(ids, now))
                loop.call_soon_threadsafe(dispatcher.wake)
                n += 1

        await asyncio.to_thread(produce)
        arrived = await _wait_arrived(base_url, set(enqueued), timeout_s=300)
    latencies_ms = sorted((arrived[i] - t) * 1000 for i, t in enqueued.items())
    return latencies_ms, len(enqueued) / seconds


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run_bench_delivery(
    *, changes: int = 5000, rate_per_s: float | None = None, seconds: float = 10.0
) -> int:
    secret = new_secret()
    port = free_port()
    env = {**os.environ, "SEALSCOPE_BENCH_WEBHOOK_SECRET": secret}
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "composition.bench.webhook_receiver", str(port), env=env
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 10.0)
        with tempfile.TemporaryDirectory(prefix="sealscope-bench-delivery-") as tmp:
            engine = open_migrated(sqlite_url(Path(tmp) / "state.db"))
            outbox = SqlOutbox(engine, in_scope=lambda org, device: True)
            outbox.add_subscription(
                Subscription(
                    id="bench",
                    org_id="org-bench",
                    channel="webhook",
                    target=f"{base_url}/hook",
                    secret=secret,
                )
            )
            ceiling = await _receiver_ceiling(f"{base_url}/hook", secret, max(changes, 2000))
            rate = await _throughput(outbox, base_url, changes)
            paced = rate_per_s if rate_per_s is not None else rate / 2
            latencies_ms, offered = await _latency(outbox, base_url, paced, seconds)
            engine.dispose()
    finally:
        receiver.terminate()
        await receiver.wait()

    print("alert delivery: SQLite outbox -> dispatcher -> signed webhook, receiver verifies")
    print(
        f"  receiver ceiling (bare aiohttp client, {_CONCURRENCY} concurrent): {ceiling:8.0f} req/s"
    )
    print(f"  delivered, {changes} queued changes:                   {rate:8.0f} changes/s")
    print(
        f"  change -> delivery at {offered:.0f} changes/s for {seconds:.0f} s"
        f" ({len(latencies_ms)} changes):"
        f" p50 {_percentile(latencies_ms, 0.5):.1f} ms,"
        f" p99 {_percentile(latencies_ms, 0.99):.1f} ms,"
        f" max {latencies_ms[-1]:.1f} ms, mean {statistics.fmean(latencies_ms):.1f} ms"
    )
    return 0
