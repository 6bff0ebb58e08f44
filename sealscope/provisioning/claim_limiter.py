"""Failed claims per caller, in a sliding window: past the budget, the caller waits.

Only failures count, so a technician claiming a whole delivery of devices is never slowed;
someone trying codes is. The count lives in this process (one API instance); behind a load
balancer each instance keeps its own, which still bounds guessing to instances x budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["ClaimLimiter"]

DEFAULT_MAX_FAILURES = 10
DEFAULT_WINDOW_S = 900.0
_MAX_CALLERS = 100_000  # bounds memory under a flood of distinct callers


class ClaimLimiter:
    def __init__(
        self,
        *,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, caller: str, now: float) -> deque[float]:
        times = self._failures.get(caller)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[caller]
        return times

    def retry_after_s(self, caller: str) -> int | None:
        """Whole seconds ``caller`` must wait before trying again, or None if it may now."""
        with self._lock:
            now = self._clock()
            times = self._recent(caller, now)
            if len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, caller: str) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(caller, now)
            if caller not in self._failures:
                if len(self._failures) >= _MAX_CALLERS:
                    self._failures.clear()  # crude and rare; the window refills
                self._failures[caller] = times
            times.append(now)
