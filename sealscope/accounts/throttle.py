"""Failed sign-ins, counted per username and per source address over a sliding window.

Past the limit a sign-in is refused before the password is even checked, so guessing costs
the attacker the window, not one argon2 hash. Counts live in this process: with several API
instances each keeps its own (the bound multiplies by the instance count).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from sealscope.errors import SignInThrottled

__all__ = ["SignInThrottle"]


class SignInThrottle:
    def __init__(
        self,
        *,
        per_username: int = 5,
        per_source: int = 20,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_username < 1 or per_source < 1 or window_s <= 0:
            raise ValueError("limits must be >= 1 and the window > 0")
        self._limits = {"user": per_username, "source": per_source}
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, *, username: str, source: str) -> None:
        """Raise SignInThrottled while either count is at its limit."""
        now = self._clock()
        with self._lock:
            for key in (("user", username), ("source", source)):
                times = self._recent(key, now)
                if len(times) >= self._limits[key[0]]:
                    raise SignInThrottled(retry_after_s=max(1.0, times[0] + self._window_s - now))

    def failed(self, *, username: str, source: str) -> None:
        now = self._clock()
        with self._lock:
            for key in (("user", username), ("source", source)):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username), None)
