"""Fleet risk as values, and the port the API reads it through.

The detection process computes the table (``analytics.fleet_risk``); whoever serves it
(the API, a report) reads it from a ``RiskStore`` without importing the detectors. A
``RiskTable`` round-trips through JSON so a separate API process can serve the table the
detection process last saved.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, Protocol

__all__ = [
    "DIMENSIONS",
    "STRENGTHS",
    "Dimension",
    "JsonFileRiskStore",
    "MemoryRiskStore",
    "RiskRow",
    "RiskStore",
    "RiskTable",
    "Strength",
]

Dimension = Literal["batch", "model", "manufacturer", "region"]
Strength = Literal["none", "weak", "moderate", "strong"]

DIMENSIONS: Final[tuple[Dimension, ...]] = ("batch", "model", "manufacturer", "region")
STRENGTHS: Final[tuple[Strength, ...]] = ("none", "weak", "moderate", "strong")
_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class RiskRow:
    """One group against its peers; rates are events per device-year at risk."""

    dimension: Dimension
    group: str
    devices: int
    events: int
    exposure_days: float
    rate_per_year: float
    peer_devices: int
    peer_events: int
    peer_exposure_days: float
    peer_rate_per_year: float
    expected_events: float  # at the peers' rate, stratum by stratum
    rate_ratio: float | None  # observed / expected; None when peers had no events
    rate_ratio_low: float | None
    rate_ratio_high: float | None
    p_value: float
    q_value: float
    strength: Strength
    flagged: bool  # passes the guards at alert_strength: what an alert is raised for
    manufacturers: tuple[str, ...] = ()
    # Added fields (defaults keep older tables and callers working). ``p_value`` above is
    # the group's combined p (the smaller of the two below, Bonferroni-doubled when both
    # ran); ``rate_ratio*`` the exact conditional interval of the event test.
    models: tuple[str, ...] = ()
    event_p_value: float | None = None  # exact conditional test of first seal events
    # Continuous evidence: each device's growth of its degradation signal (log of the
    # leak coefficient or wear level against its commissioning baseline, per 30 days).
    growth_devices: int = 0  # devices of the group with a commissioned baseline
    growing: int = 0  # of those, clearly growing (or with a seal event)
    growth_per_30d: float | None = None  # group's shrunken mean, x per 30 days
    peer_growth_per_30d: float | None = None
    growth_ratio: float | None = None  # group's growth rate / peers' (empirical Bayes)
    growth_ratio_low: float | None = None
    growth_ratio_high: float | None = None
    growth_p_value: float | None = None  # stratified permutation test
    near_limit: int = 0  # devices whose trend reaches their class limit within 90 days
    evidence_text: str = ""  # one line a quality engineer reads

    @property
    def key(self) -> str:
        return f"{self.dimension}:{self.group}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["key"] = self.key
        out["manufacturers"] = list(self.manufacturers)
        out["models"] = list(self.models)
        for name, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[name] = None  # JSON has no inf
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskRow:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["manufacturers"] = tuple(values.get("manufacturers", ()))
        values["models"] = tuple(values.get("models", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RiskTable:
    evaluated_at: float  # event time of the newest observation (Unix s)
    devices: int
    events: int
    exposure_days: float
    tests: int  # the family Benjamini-Hochberg adjusts over
    rows: tuple[RiskRow, ...] = ()

    def flagged(self) -> list[RiskRow]:
        return [r for r in self.rows if r.flagged]

    def select(
        self, *, dimension: str | None = None, min_strength: Strength = "none"
    ) -> list[RiskRow]:
        floor = STRENGTHS.index(min_strength)
        return [
            r
            for r in self.rows
            if (dimension is None or r.dimension == dimension)
            and STRENGTHS.index(r.strength) >= floor
        ]

    def to_json(self) -> bytes:
        head = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rows"}
        body = {"format": _FORMAT_VERSION, **head, "rows": [r.as_dict() for r in self.rows]}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RiskTable:
        data = json.loads(raw)
        if data.get("format") != _FORMAT_VERSION:
            raise ValueError(f"risk table format {data.get('format')!r} is not {_FORMAT_VERSION}")
        rows = tuple(RiskRow.from_dict(r) for r in data["rows"])
        head = {f.name: data[f.name] for f in fields(cls) if f.name != "rows"}
        return cls(**head, rows=rows)


class RiskStore(Protocol):
    """Where the latest fleet-risk table is kept. ``load`` answers None before a first save."""

    def save(self, table: RiskTable) -> None: ...

    def load(self) -> RiskTable | None: ...


class MemoryRiskStore:
    def __init__(self) -> None:
        self._table: RiskTable | None = None

    def save(self, table: RiskTable) -> None:
        self._table = table

    def load(self) -> RiskTable | None:
        return self._table


class JsonFileRiskStore:
    """One JSON file, replaced atomically on save; ``load`` re-reads it only when it changed,
    so an API process follows what another process saved."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._table: RiskTable | None = None

    def save(self, table: RiskTable) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(table.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self) -> RiskTable | None:
        with self._lock:
            try:
                mtime_ns = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                return None
            if self._table is None or mtime_ns != self._mtime_ns:
                self._table = RiskTable.from_json(self.path.read_bytes())
                self._mtime_ns = mtime_ns
            return self._table
