"""The dead-letter store: every message ingest could not use, with the reason.

Port: ``DeadLetterStore``. Adapter: ``SqliteDeadLetterStore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["DeadLetter", "DeadLetterStore"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_at: float  # arrival time at ingest, Unix s
    topic: str
    payload: bytes
    code: str  # MessageRejected.code: malformed, unknown_version, bad_topic, unknown_device
    reason: str
    device_id: str | None = None


class DeadLetterStore(Protocol):
    def add(
        self, *, topic: str, payload: bytes, code: str, reason: str, device_id: str | None
    ) -> int:
        """Keep one rejected message; returns its id."""
        ...

    def list(
        self, *, device_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...
