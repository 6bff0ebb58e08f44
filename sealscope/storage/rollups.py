"""Downsampled rollups of the telemetry in InfluxDB 1.x: retention policies and continuous
queries that keep per-series sums and counts per minute and per hour.

Each rollup lives in its own retention policy (``rp_1m``, ``rp_1h``) under the raw
measurement's name, one point per series and bucket, with fields ``sum_<field>`` and
``count_<field>``. Sums and counts rather than means, so that any coarser bucket, and a
bucket stitched from a rollup and a raw edge, still has the exact mean (``InfluxStore``
reads them that way). The hour rollup is computed from raw data, not from the minutes.

A continuous query recomputes the last ``late`` of buckets every interval (``RESAMPLE
EVERY ... FOR ...``), so samples that arrive up to ``late`` after their event time are
counted; NB-IoT devices that upload later than that need ``backfill`` over the affected
range (the same statement the continuous query runs, with an explicit time range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from sealscope.errors import ConfigError, StoreError
from sealscope.storage.influxql import quote_ident

__all__ = [
    "DEFAULT_ROLLUPS",
    "InfluxQLExecutor",
    "Rollup",
    "backfill",
    "backfill_statement",
    "install_rollups",
    "install_statements",
]

_DURATION = re.compile(r"^(INF|0s|[1-9][0-9]*(s|m|h|d|w))$")


def _check_duration(name: str, value: str) -> None:
    if not _DURATION.match(value):
        raise ConfigError(name, f"{value!r} is not an InfluxQL duration like 90d, 52w or INF")


def _label(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Rollup:
    """One bucket width, how long its points are kept and how late data may still arrive."""

    every_s: int
    retention: str = "INF"  # InfluxQL duration; INF keeps forever
    late: str = "1h"  # the continuous query's RESAMPLE FOR window

    def __post_init__(self) -> None:
        if self.every_s < 1:
            raise ConfigError("rollup every_s", "must be a positive number of seconds")
        _check_duration("rollup retention", self.retention)
        _check_duration("rollup late", self.late)

    @property
    def label(self) -> str:
        return _label(self.every_s)

    @property
    def policy(self) -> str:
        return f"rp_{self.label}"

    @property
    def continuous_query(self) -> str:
        return f"cq_{self.label}"


# a minute for a dashboard's hours and days (kept a quarter), an hour for months and years
DEFAULT_ROLLUPS = (
    Rollup(60, retention="13w", late="2h"),
    Rollup(3_600, retention="INF", late="1d"),
)


def _select_into(database: str, source_policy: str, rollup: Rollup) -> str:
    db = quote_ident(database)
    return (
        f"SELECT sum(*), count(*) INTO {db}.{quote_ident(rollup.policy)}.:MEASUREMENT"
        f" FROM {db}.{quote_ident(source_policy)}./.*/"
    )


def _policy_statement(verb: str, database: str, rollup: Rollup) -> str:
    return (
        f"{verb} RETENTION POLICY {quote_ident(rollup.policy)} ON {quote_ident(database)}"
        f" DURATION {rollup.retention}" + (" REPLICATION 1" if verb == "CREATE" else "")
    )


def _cq_statement(database: str, source_policy: str, rollup: Rollup) -> str:
    return (
        f"CREATE CONTINUOUS QUERY {quote_ident(rollup.continuous_query)}"
        f" ON {quote_ident(database)} RESAMPLE EVERY {rollup.label} FOR {rollup.late} BEGIN"
        f" {_select_into(database, source_policy, rollup)} GROUP BY time({rollup.label}), * END"
    )


def _raw_retention_statement(database: str, source_policy: str, duration: str) -> str:
    _check_duration("raw retention", duration)
    return (
        f"ALTER RETENTION POLICY {quote_ident(source_policy)} ON {quote_ident(database)}"
        f" DURATION {duration}"
    )


def install_statements(
    database: str,
    rollups: tuple[Rollup, ...] = DEFAULT_ROLLUPS,
    *,
    source_policy: str = "autogen",
    raw_retention: str | None = None,
) -> list[str]:
    """The InfluxQL that creates the retention policies and continuous queries (for docs
    and for running by hand; ``install_rollups`` runs them idempotently).

    ``raw_retention`` shortens the raw data's policy (``None`` leaves it alone: shortening
    it deletes older raw data at the next retention check).
    """
    statements = []
    if raw_retention is not None:
        statements.append(_raw_retention_statement(database, source_policy, raw_retention))
    for r in rollups:
        statements.append(_policy_statement("CREATE", database, r))
        statements.append(_cq_statement(database, source_policy, r))
    return statements


def backfill_statement(
    database: str, rollup: Rollup, start_ns: int, stop_ns: int, *, source_policy: str = "autogen"
) -> str:
    """What the continuous query does, over [start_ns, stop_ns) widened to whole buckets."""
    every_ns = rollup.every_s * 1_000_000_000
    start = start_ns // every_ns * every_ns
    stop = -(-stop_ns // every_ns) * every_ns
    return (
        f"{_select_into(database, source_policy, rollup)}"
        f" WHERE time >= {start} AND time < {stop} GROUP BY time({rollup.label}), *"
    )


class InfluxQLExecutor(Protocol):
    """What the rollups need of a store: its database and a way to run a statement
    (``InfluxStore`` is one)."""

    database: str

    async def execute(self, influxql: str, *, missing_ok: bool = False) -> dict[str, Any]: ...


async def install_rollups(
    store: InfluxQLExecutor,
    rollups: tuple[Rollup, ...] = DEFAULT_ROLLUPS,
    *,
    source_policy: str = "autogen",
    raw_retention: str | None = None,
) -> None:
    """Create (or bring up to date) the policies and continuous queries; safe to repeat."""
    db = store.database
    if raw_retention is not None:
        await store.execute(_raw_retention_statement(db, source_policy, raw_retention))
    for r in rollups:
        try:
            await store.execute(_policy_statement("CREATE", db, r))
        except StoreError as exc:
            if "exists" not in str(exc) and "conflict" not in str(exc):
                raise
            # created earlier with another duration: change it in place
            await store.execute(_policy_statement("ALTER", db, r))
        # a continuous query cannot be altered; replace it so a changed window applies
        name = f"{quote_ident(r.continuous_query)} ON {quote_ident(db)}"
        await store.execute(f"DROP CONTINUOUS QUERY {name}", missing_ok=True)
        await store.execute(_cq_statement(db, source_policy, r))


async def backfill(
    store: InfluxQLExecutor,
    rollup: Rollup,
    start_ns: int,
    stop_ns: int,
    *,
    source_policy: str = "autogen",
) -> int:
    """Recompute ``rollup`` over a range (history, late uploads); returns points written."""
    body = await store.execute(
        backfill_statement(store.database, rollup, start_ns, stop_ns, source_policy=source_policy)
    )
    written = 0
    for result in body.get("results", []):
        for series in result.get("series", []):
            written += sum(int(row[1]) for row in series.get("values", []))
    return written
