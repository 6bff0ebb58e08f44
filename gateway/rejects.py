"""Dead-letter a rejected body once, not once per retry.

A platform retries a push it got a 4xx for, and a device may resend a frame whatever the
README says; each would otherwise add the same dead letter again. ``RecentRejects``
remembers the digests of the last bodies dead-lettered by one ingress.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["RecentRejects"]

DEFAULT_SIZE: Final = 512


class RecentRejects:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._digests: OrderedDict[str, None] = OrderedDict()

    def is_new(self, digest: str) -> bool:
        """True the first time ``digest`` is seen (among the last ``size``); remembers it."""
        if digest in self._digests:
            self._digests.move_to_end(digest)
            return False
        self._digests[digest] = None
        if len(self._digests) > self._size:
            self._digests.popitem(last=False)
        return True
