"""What ``sealscope detect`` read, repaired, learned and found, as the user reads it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

__all__ = ["DetectSummary", "Segment"]

_MAX_LINES_REPORTED: Final = 20
_MAX_SEGMENTS: Final = 30


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of flagged rows and why."""

    start_t: float
    stop_t: float
    rows: int
    cause: str  # as in the anomaly_cause column
    explanation: str  # which signals and which relation, in numbers


@dataclass(slots=True)
class DetectSummary:
    input: Path
    output: Path
    delimiter: str
    rows: int
    time_format: str  # "iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"
    first_t: float | None = None
    last_t: float | None = None
    median_interval_s: float | None = None
    gaps: int = 0  # intervals longer than gap_factor x the median
    longest_gap_s: float = 0.0
    out_of_order_rows: int = 0  # rows earlier than the row before them (sorted)
    duplicate_times: int = 0
    bad_time_lines: list[int] = field(default_factory=list)
    junk: dict[str, list[int]] = field(default_factory=dict)  # column -> line numbers
    junk_counts: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # column -> empty cells
    signals: dict[str, str] = field(default_factory=dict)  # sealscope signal -> column
    features: list[str] = field(default_factory=list)  # multivariate columns
    scales: dict[str, tuple[float, float]] = field(default_factory=dict)  # (quantum, spread)
    drift_sigma: dict[str, float] = field(default_factory=dict)  # followed, in spreads
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why not a feature
    detectors: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)  # detector -> why not
    warmup_rows: int = 0
    warmup_by_channel: dict[str, int] = field(default_factory=dict)
    warmup_skipped: bool = False
    train_start: float | None = None
    train_stop: float | None = None
    train_rows: int = 0
    rows_scored: int = 0
    rows_flagged: int = 0
    mean_score: float | None = None  # over scored rows after any skipped warm-up
    segments: list[Segment] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)  # each pressure hold and its verdict
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        def when(t: float | None) -> str:
            if t is None:
                return "-"
            return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")

        lines = [
            f"read:        {self.input} ({self.rows} rows, delimiter {self.delimiter!r})",
            f"time:        {self.time_format}, {when(self.first_t)} .. {when(self.last_t)}",
        ]
        if self.median_interval_s is not None:
            lines.append(
                f"sampling:    median {self.median_interval_s:g} s; {self.gaps} gaps "
                f"(longest {self.longest_gap_s:g} s)"
            )
        if self.out_of_order_rows or self.duplicate_times:
            lines.append(
                f"order:       {self.out_of_order_rows} rows out of time order (sorted), "
                f"{self.duplicate_times} repeated timestamps"
            )
        if self.bad_time_lines:
            lines.append(
                f"bad times:   {len(self.bad_time_lines)} rows skipped, lines "
                + _lines(self.bad_time_lines)
            )
        for col, bad in self.junk.items():
            lines.append(
                f"junk:        {col!r}: {self.junk_counts[col]} non-numeric cells, lines "
                + _lines(bad)
            )
        if self.missing:
            lines.append("missing:     " + ", ".join(f"{c!r} {n}" for c, n in self.missing.items()))
        if self.signals:
            lines.append("signals:     " + ", ".join(f"{s}={c}" for s, c in self.signals.items()))
        if self.features:
            lines.append("features:    " + ", ".join(self.features))
        for col, (q, spread) in self.scales.items():
            if q > 0 and spread <= q:
                lines.append(
                    f"quantised:   {col!r} in steps of {q:.4g}; spread floored at {spread:.4g}"
                )
        followed = {c: d for c, d in self.drift_sigma.items() if abs(d) >= 3}
        if followed:
            lines.append(
                "drift:       baseline followed "
                + ", ".join(f"{c} by {d:+.1f} spreads" for c, d in followed.items())
            )
        for col, why in self.excluded.items():
            lines.append(f"not used:    {col!r}: {why}")
        if self.warmup_rows:
            chans = ", ".join(f"{c} {r}" for c, r in self.warmup_by_channel.items())
            what = "skipped" if self.warmup_skipped else "scored; --skip-warmup leaves them out"
            lines.append(f"warm-up:     {self.warmup_rows} rows ({chans}): {what}")
        lines.append(
            f"training:    {when(self.train_start)} .. {when(self.train_stop)} "
            f"({self.train_rows} rows)"
        )
        lines.append(f"detectors:   {', '.join(self.detectors) or 'none'}")
        lines += [f"not run:     {d}: {why}" for d, why in self.not_run.items()]
        mean = f", mean score {self.mean_score:.3g}" if self.mean_score is not None else ""
        lines.append(
            f"result:      {self.rows_scored} rows scored{mean}, {self.rows_flagged} flagged "
            f"in {len(self.segments)} segments -> {self.output}"
        )
        lines += [
            f"  {when(s.start_t)} .. {when(s.stop_t)}  {s.rows} rows  {s.explanation}"
            for s in self.segments[:_MAX_SEGMENTS]
        ]
        if len(self.segments) > _MAX_SEGMENTS:
            lines.append(f"  ... and {len(self.segments) - _MAX_SEGMENTS} more")
        if self.holds:
            lines.append(f"holds:       {len(self.holds)} pressure holds")
            lines += [f"  {h}" for h in self.holds[:_MAX_SEGMENTS]]
            if len(self.holds) > _MAX_SEGMENTS:
                lines.append(f"  ... and {len(self.holds) - _MAX_SEGMENTS} more")
        lines += [f"note:        {n}" for n in self.notes]
        return "\n".join(lines)


def _lines(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LINES_REPORTED])
    return shown + (" ..." if len(numbers) > _MAX_LINES_REPORTED else "")
