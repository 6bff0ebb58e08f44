"""Failed authentication, per source address: a token bucket and one log line per interval.

Each source may fail ``burst`` key (or token) checks, then one per ``1 / refill_per_s``
seconds; failures beyond that are answered "too many requests" (CoAP 4.29, HTTP 429) with
the time to wait. The check itself still runs for every request: NB-IoT devices share a
carrier's NAT address, and a UDP source is easily spoofed, so refusing a good key because
its address is over the limit would let one broken or hostile sender lock out a whole
cell. What the throttle bounds is what a flood costs: no answer tells it more than
"wrong", and the log gets the first failure of a quiet source, then one WARNING per
source per ``log_interval_s`` with the count. IPv6 sources count per /64 (one subscriber's
prefix). Callers never pass the secret itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FailureThrottle", "source_key"]

log = logging.getLogger(__name__)


def source_key(address: str) -> str:
    """The unit a budget belongs to: an IPv4 address, an IPv6 /64, or the text as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class _Bucket:
    tokens: float
    refilled_at: float


@dataclass
class _Window:
    started_at: float
    failures: int = 0
    throttled: int = 0
    is_first_logged: bool = False


class FailureThrottle:
    """``failed(source, detail)`` after each failed check; ``run()`` (or ``flush()``) emits
    the interval summaries even when the failures stop."""

    def __init__(
        self,
        *,
        what: str,
        burst: int = 10,
        refill_per_s: float = 1.0,
        log_interval_s: float = 10.0,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        if burst < 1 or refill_per_s <= 0 or log_interval_s <= 0 or max_sources < 1:
            raise ValueError("burst, refill_per_s, log_interval_s and max_sources must be > 0")
        self.what = what  # plural noun for the summary: "failed {what} from ..."
        self.burst = burst
        self.refill_per_s = refill_per_s
        self.log_interval_s = log_interval_s
        self.max_sources = max_sources
        self._clock = clock
        self._log = logger
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently failed first
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # oldest window first

    def failed(self, source: str, detail: str) -> float | None:
        """Count one failed check from ``source`` (an address). None while within the
        budget; else the seconds until the source may fail again (answer 4.29/429)."""
        now = self._clock()
        self.flush(now)
        key = source_key(source)
        wait_s = self._spend(key, now)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(started_at=now, is_first_logged=True)
            self._log.warning("%s (from %s)", detail, key)
            if len(self._windows) > self.max_sources:
                self._close(*self._windows.popitem(last=False), now=now, is_reopened=False)
        window.failures += 1
        window.throttled += wait_s is not None
        return wait_s

    def flush(self, now: float | None = None) -> None:
        """Log the summary of every window that has run its interval."""
        now = self._clock() if now is None else now
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.started_at < self.log_interval_s:
                break
            del self._windows[key]
            self._close(key, window, now=now, is_reopened=True)

    async def run(self, *, interval_s: float = 1.0) -> None:
        """Flush every ``interval_s`` until cancelled (a task of the ingress's owner)."""
        while True:
            await asyncio.sleep(interval_s)
            self.flush()

    def _close(self, key: str, window: _Window, *, now: float, is_reopened: bool) -> None:
        unlogged = window.failures - (1 if window.is_first_logged else 0)
        if unlogged <= 0:
            return  # a single failure, already logged: the source is quiet again
        span_s = max(now - window.started_at, 0.0)
        self._log.warning(
            "%d failed %s from %s in the last %.0f s (%d over the limit)",
            window.failures,
            self.what,
            key,
            min(span_s, self.log_interval_s) if is_reopened else span_s,
            window.throttled,
        )
        if is_reopened:
            # still noisy: its next failures are summed up too, not logged one by one
            self._windows[key] = _Window(started_at=now)

    def _spend(self, key: str, now: float) -> float | None:
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), refilled_at=now)
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
        self._buckets[key] = bucket
        tokens = self._refill(bucket, now)
        if tokens >= 1:
            bucket.tokens = tokens - 1
            return None
        return (1 - tokens) / self.refill_per_s

    def _refill(self, bucket: _Bucket, now: float) -> float:
        elapsed_s = max(now - bucket.refilled_at, 0.0)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed_s * self.refill_per_s)
        bucket.refilled_at = now
        return bucket.tokens
