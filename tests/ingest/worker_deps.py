"""How the tests' ingest worker processes open their stores (module level: pickled by name)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ingest.processing
from ingest.workers import WorkerDeps
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import SqliteDeviceRegistry
from sealscope.storage.sqlite import SqliteTelemetryStore

MARKER = b"KILL-THE-WORKER"


@asynccontextmanager
async def open_sqlite_deps(settings: Settings) -> AsyncIterator[WorkerDeps]:
    store = SqliteTelemetryStore(settings.telemetry_db)
    registry = SqliteDeviceRegistry(settings.state_db)
    dead = SqliteDeadLetterStore(settings.state_db)
    try:
        yield WorkerDeps(store, registry, dead)
    finally:
        await store.close()
        dead.close()
        registry.close()


@asynccontextmanager
async def open_killing_deps(settings: Settings) -> AsyncIterator[WorkerDeps]:
    """As ``open_sqlite_deps``, in a worker whose translate dies by SIGKILL on ``MARKER``:
    what a crash in C code or the OOM killer does to a worker."""
    real = ingest.processing.translate

    def killing(topic: str, payload: bytes, *args: Any, **kwargs: Any) -> Any:
        if MARKER in payload:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(topic, payload, *args, **kwargs)

    ingest.processing.translate = killing  # type: ignore[assignment]
    async with open_sqlite_deps(settings) as deps:
        yield deps
