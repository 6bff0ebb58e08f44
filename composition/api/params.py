"""Bounded path and query parameters shared by the routes.

Every number a client sends is bounded here, and the bounds show in the OpenAPI, so an id
or offset past what the stores keep in a 64-bit integer answers 422 instead of overflowing
inside SQLite (or PostgreSQL's bigint).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

__all__ = ["MAX_ID", "MAX_OFFSET", "AlertId", "Limit", "Offset"]

MAX_ID = 2**63 - 1  # SQLite INTEGER, PostgreSQL bigint
# far past any real table; a page that deep is a client bug, not a query worth running
MAX_OFFSET = 1_000_000_000

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="the alert's id")]
