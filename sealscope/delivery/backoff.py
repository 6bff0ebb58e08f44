"""When to try a failed delivery again: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential cap) spreads the retries of many
deliveries that failed together, so a receiver that comes back is not hit by all of them
at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` sends in all; after the last failure the delivery is dead."""

    max_attempts: int = 10
    base_s: float = 1.0
    cap_s: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError("need 0 < base_s <= cap_s")

    def is_exhausted(self, attempts: int) -> bool:
        """After ``attempts`` failed sends, is the budget spent?"""
        return attempts >= self.max_attempts

    def delay_s(self, attempts: int) -> float:
        """Delay before the next send, after ``attempts`` (>= 1) failed sends."""
        ceiling_s = min(self.cap_s, self.base_s * 2 ** min(attempts - 1, 62))
        return self.rng.uniform(0.0, ceiling_s)
