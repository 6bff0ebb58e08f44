"""The telemetry storage port and its adapters.

A point's identity is its series (measurement + tags) and its device event time, so writing
the same point twice leaves one point: every adapter must keep that true (replays from the
spool and QoS 1 redeliveries depend on it).

Adapters: ``sealscope.storage.influxdb.InfluxStore`` (InfluxDB via influxdb-client, reads in
InfluxQL), ``sealscope.storage.sqlite.SqliteTelemetryStore`` (the embedded default) and
``sealscope.storage.memory.MemoryTelemetryStore`` (for unit tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from sealscope.errors import PointsRejected
from sealscope.storage.lineprotocol import series_key

__all__ = [
    "VITAL_FIELDS",
    "Latest",
    "LatestReadings",
    "Point",
    "Series",
    "TelemetryQuery",
    "TelemetryStore",
]

# what a fleet view shows of every device without reading its series: battery and radio
VITAL_FIELDS: tuple[str, ...] = ("battery_v", "rsrp_dbm", "sinr_db")


@dataclass(frozen=True, slots=True)
class Series:
    """Measurement plus tag set; one per device, built once at enrichment and reused.

    ``key`` is the series in line protocol (``measurement,tag=value,...``, tags sorted, empty
    values left out as InfluxDB requires), computed once here because every point uses it.
    A series that line protocol cannot carry is still made (SQLite stores it fine); its
    ``problem`` says why, ``key`` is empty, and the InfluxDB store rejects its points.
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    device_id: str = field(init=False, compare=False)
    key: str = field(init=False, compare=False)
    problem: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_id", dict(self.tags).get("device_id", ""))
        try:
            key, problem = series_key(self.measurement, self.tags), ""
        except PointsRejected as exc:
            key, problem = "", str(exc)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "problem", problem)


class Point(NamedTuple):
    """One point; a tuple because ingest makes hundreds of thousands a second."""

    series: Series
    t_ns: int
    fields: dict[str, float]


@dataclass(frozen=True, slots=True)
class TelemetryQuery:
    """One field of one device over [start_ns, stop_ns), optionally averaged per ``every_s``."""

    device_id: str
    measurement: str
    field: str
    start_ns: int
    stop_ns: int
    every_s: int | None = None
    limit: int = 10_000


@runtime_checkable
class TelemetryStore(Protocol):
    async def write(self, points: Sequence[Point]) -> None:
        """Store points durably; raise StoreUnavailable (retry) or PointsRejected (permanent)."""
        ...

    async def query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        """Rows of (t_ns, value) in time order; with ``every_s``, the mean per bucket start."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Latest:
    """A device's newest reading time and its newest value of each vital field."""

    t_ns: int  # the newest point of any field
    values: dict[str, tuple[int, float]]  # field -> (t_ns, value), VITAL_FIELDS only


@runtime_checkable
class LatestReadings(Protocol):
    """Stores that keep each device's newest reading at hand, so a fleet of 10,000 is one
    read rather than a query per device (optional: a store without it shows no vitals)."""

    async def latest(self) -> dict[str, Latest]:
        """device_id -> its ``Latest``, for every device with a stored point."""
        ...
