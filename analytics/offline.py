"""Offline mode: run the detectors over recorded readings in a CSV file (``sealscope detect``).

Input is whatever a plant historian or a test rig exported, not sealscope's own data, so
nothing about it is assumed beyond a header row:

* delimiter ``,``, ``;``, tab or ``|`` (from the header line); UTF-8 with or without BOM;
* a time column the user names, holding ISO 8601 (a zone-less time is taken as UTC) or
  Unix epoch seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude);
* any sampling rate, gaps, rows out of time order (sorted for detection; output keeps the
  input order), repeated timestamps;
* empty cells and ``NA``/``NaN``/``null``/``-`` are missing values; anything else that is
  not a number in a numeric column is junk: it is reported with its line number and
  treated as missing. A decimal comma is read when the delimiter is not a comma.

Signals. ``columns`` maps sealscope signals to CSV columns (``leak=leak_mm3s,pin=P1:bar``;
a ``:unit`` suffix converts pressures and leak rates to kPa and mm³/s). Where the mapped
signals fit a physical model the matching detector runs (valve seat leakage needs a leak
rate and either both pressures or ``dp``). Every other numeric column the user named, or
every numeric column when nothing is mapped, goes to the multivariate detector, which
learns their joint normal behaviour from the training window.

Training window. ``train=(start, stop)`` (times in the file's own format, ISO or epoch);
by default the first ``train_fraction`` of the time span. Physical detectors take their
commissioning baseline from it; the multivariate detector is fitted on it.

Output: the input rows in input order, every original cell untouched, plus
``anomaly_score`` (1.0 is the alarm threshold; empty where nothing could be scored),
``anomaly_flag`` (0/1) and ``anomaly_cause`` (which detector, which signals). The summary
says what was read, what was wrong with it (by line number), and what was found.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from analytics.base import CATEGORY_NAMES, DeviceTable, SampleBatch
from analytics.multivariate import RobustMahalanobis
from analytics.seat_leak import SeatLeakDetector
from sealscope.errors import ConfigError
from sealscope.registry import Device

__all__ = [
    "OUTPUT_COLUMNS",
    "SIGNAL_ALIASES",
    "DetectSummary",
    "parse_column_map",
    "run_detect",
]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

OUTPUT_COLUMNS: Final = ("anomaly_score", "anomaly_flag", "anomaly_cause")
SIGNAL_ALIASES: Final[dict[str, str]] = {
    "leak": "leak_mm3s",
    "pin": "p_in_kpa",
    "p_in": "p_in_kpa",
    "pout": "p_out_kpa",
    "p_out": "p_out_kpa",
    "dp": "dp_kpa",
    "pos": "position_pct",
    "position": "position_pct",
    "stroke": "stroke_s",
    "torque": "torque_nm",
    "current": "motor_a",
    "motor": "motor_a",
    "temp": "temp_c",
    "vib": "vib_mms",
    "flow": "flow_m3h",
    "speed": "speed_rpm",
}
_SIGNALS: Final = frozenset(SIGNAL_ALIASES.values()) | {"battery_v", "rsrp_dbm", "sinr_db"}
_UNITS: Final[dict[str, dict[str, float]]] = {
    # factor to sealscope's unit
    "kpa": {"kpa": 1.0, "pa": 1e-3, "bar": 100.0, "mbar": 0.1, "mpa": 1000.0, "psi": 6.894757},
    "mm3s": {"mm3s": 1.0, "mlmin": 1000.0 / 60.0, "mls": 1000.0, "lh": 1e6 / 3600.0,
             "lmin": 1e6 / 60.0},
}  # fmt: skip
_MISSING: Final = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?"})
# Columns that carry labels or row numbers, not readings: learning them would be cheating
# (labels) or flag the passage of time (indices). Named explicitly, they are used.
_NOT_READINGS: Final = re.compile(
    r"^(|unnamed.*|index|idx|id|row|anomaly|anomalies|label|labels|is_anomaly|changepoint|"
    r"target|class|fault|status|machine_status|y)$",
    re.IGNORECASE,
)
_MAX_LINES_REPORTED: Final = 20
_DAY_S: Final = 86_400.0


@dataclass(slots=True)
class DetectSummary:
    """What ``run_detect`` read, repaired, learned and found."""

    input: Path
    output: Path
    delimiter: str
    rows: int
    time_format: str  # "iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"
    first_t: float | None
    last_t: float | None
    median_interval_s: float | None
    gaps: int  # intervals longer than gap_factor x the median
    longest_gap_s: float
    out_of_order_rows: int  # rows earlier than the row before them (sorted for detection)
    duplicate_times: int
    bad_time_lines: list[int] = field(default_factory=list)
    junk: dict[str, list[int]] = field(default_factory=dict)  # column -> line numbers
    junk_counts: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)  # column -> empty cells
    signals: dict[str, str] = field(default_factory=dict)  # sealscope signal -> column
    features: list[str] = field(default_factory=list)  # multivariate columns
    excluded: dict[str, str] = field(default_factory=dict)  # column -> why not a feature
    detectors: list[str] = field(default_factory=list)
    train_start: float | None = None
    train_stop: float | None = None
    train_rows: int = 0
    rows_scored: int = 0
    rows_flagged: int = 0
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # flagged runs
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
        for col, why in self.excluded.items():
            lines.append(f"not used:    {col!r}: {why}")
        lines.append(
            f"training:    {when(self.train_start)} .. {when(self.train_stop)} "
            f"({self.train_rows} rows)"
        )
        lines.append(f"detectors:   {', '.join(self.detectors) or 'none'}")
        lines.append(
            f"result:      {self.rows_scored} rows scored, {self.rows_flagged} flagged "
            f"in {len(self.segments)} segments -> {self.output}"
        )
        lines += [f"  {when(a)} .. {when(b)}  {cause}" for a, b, cause in self.segments[:30]]
        if len(self.segments) > 30:
            lines.append(f"  ... and {len(self.segments) - 30} more")
        lines += [f"note:        {n}" for n in self.notes]
        return "\n".join(lines)


def _lines(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LINES_REPORTED])
    return shown + (" ..." if len(numbers) > _MAX_LINES_REPORTED else "")


# -- reading -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    header: list[str]
    rows: list[list[str]]
    lines: list[int]  # the file line each row starts on
    delimiter: str


def _read(path: Path, delimiter: str | None) -> _Table:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError("input", f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("input", f"{path} is not UTF-8 text ({exc.reason})") from exc
    first = text.split("\n", 1)[0]
    if delimiter is None:
        counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ConfigError("input", f"{path} is empty") from None
    rows, lines = [], []
    width = len(header)
    start = reader.line_num + 1
    for row in reader:
        if row and any(cell.strip() for cell in row):
            if len(row) < width:
                row = row + [""] * (width - len(row))
            rows.append(row)
            lines.append(start)
        start = reader.line_num + 1
    return _Table(header, rows, lines, delimiter)


_ISO_FALLBACKS: Final = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S.%f")


def _parse_iso(s: str) -> float:
    s = s.strip()
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        for fmt in _ISO_FALLBACKS:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
        else:
            raise
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _epoch_unit(values: F64) -> tuple[str, float]:
    mag = float(np.nanmedian(np.abs(values))) if len(values) else 0.0
    for name, lo, div in (
        ("epoch_ns", 1e17, 1e9),
        ("epoch_us", 1e14, 1e6),
        ("epoch_ms", 1e11, 1e3),
    ):
        if mag >= lo:
            return name, div
    return "epoch_s", 1.0


def _parse_times(cells: Sequence[str]) -> tuple[F64, str, float]:
    """Unix seconds per cell (NaN where unreadable), the format, and the epoch divisor."""
    n = len(cells)
    as_num = np.full(n, np.nan)
    for i, c in enumerate(cells):
        with contextlib.suppress(ValueError):
            as_num[i] = float(c)
    filled = sum(1 for c in cells if c.strip())
    if filled and np.isfinite(as_num).sum() >= 0.9 * filled:
        fmt, div = _epoch_unit(as_num[np.isfinite(as_num)])
        return as_num / div, fmt, div
    out = np.full(n, np.nan)
    for i, c in enumerate(cells):
        with contextlib.suppress(ValueError, OverflowError):
            out[i] = _parse_iso(c)
    return out, "iso8601", 1.0


def _parse_time_value(value: str | float, fmt: str, div: float) -> float:
    if isinstance(value, int | float):
        return float(value) / div
    s = str(value).strip()
    try:
        return float(s) / div if fmt != "iso8601" else _parse_iso(s)
    except ValueError:
        return _parse_iso(s)


def _parse_numbers(cells: Sequence[str], decimal_comma: bool) -> tuple[F64, list[int], int]:
    """Floats (NaN for missing or junk), row indices of junk, count of missing."""
    out = np.full(len(cells), np.nan)
    junk: list[int] = []
    missing = 0
    for i, raw in enumerate(cells):
        s = raw.strip()
        if s.lower() in _MISSING:
            missing += 1
            continue
        try:
            v = float(s)
        except ValueError:
            if decimal_comma and s.count(",") == 1:
                try:
                    v = float(s.replace(",", "."))
                except ValueError:
                    junk.append(i)
                    continue
            else:
                junk.append(i)
                continue
        if math.isfinite(v):
            out[i] = v
        else:
            junk.append(i)  # inf is no reading
    return out, junk, missing


def parse_column_map(spec: str | Mapping[str, str] | None) -> dict[str, tuple[str, float]]:
    """``"leak=leak_mm3s,pin=P1:bar"`` -> {signal: (column, factor to sealscope units)}."""
    if spec is None:
        return {}
    items = (
        list(spec.items())
        if isinstance(spec, Mapping)
        else [tuple(p.split("=", 1)) for p in spec.split(",") if p.strip()]
    )
    out: dict[str, tuple[str, float]] = {}
    for item in items:
        if len(item) != 2:
            raise ConfigError("columns", f"{'='.join(item)!r} is not signal=column")
        signal, column = item[0].strip(), item[1].strip()
        wire = SIGNAL_ALIASES.get(signal.lower(), signal)
        if wire not in _SIGNALS:
            known = ", ".join(sorted(SIGNAL_ALIASES))
            raise ConfigError("columns", f"unknown signal {signal!r} (known: {known})")
        factor = 1.0
        if ":" in column:
            column, unit = column.rsplit(":", 1)
            table = _UNITS["kpa"] if wire.endswith("_kpa") else _UNITS.get(wire.split("_")[-1])
            key = unit.strip().lower().replace("/", "").replace("³", "3")
            if table is None or key not in table:
                raise ConfigError("columns", f"unit {unit!r} is not known for {wire}")
            factor = table[key]
        out[wire] = (column.strip(), factor)
    return out


# -- detection -----------------------------------------------------------------------------


def _runs(flag: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) index pairs of consecutive True runs."""
    edges = np.diff(np.r_[0, flag.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, stops, strict=True))


def _persist(hit: npt.NDArray[np.bool_], window: int, needed: int) -> npt.NDArray[np.bool_]:
    """Causal k-of-n: a row is flagged when ``needed`` of the last ``window`` rows hit."""
    c = np.cumsum(np.r_[0, hit.astype(np.int64)])
    idx = np.arange(len(hit))
    count = c[idx + 1] - c[np.maximum(idx + 1 - window, 0)]
    return hit & (count >= needed)


def _seat_leak(
    t: F64,
    sig: Mapping[str, F64],
    train: npt.NDArray[np.bool_],
    device: Device,
    chunk: int = 256,
) -> tuple[F64, npt.NDArray[np.int8], list[str]]:
    """Per sorted row: score (instantaneous leak coefficient vs baseline on the alarm scale),
    the detector's category after that row, and notes."""
    notes: list[str] = []
    p_in = sig.get("p_in_kpa")
    p_out = sig.get("p_out_kpa")
    if p_in is None:
        p_in = sig["dp_kpa"]
        p_out = np.zeros_like(p_in)
    elif p_out is None:
        p_out = np.zeros_like(p_in)
        notes.append("no outlet pressure mapped: the seat sees p_in against 0 kPa")
    leak = sig["leak_mm3s"]
    pos = sig.get("position_pct", np.full(len(t), np.nan))
    probe = SeatLeakDetector()
    dp = p_in - p_out
    closed = (pos <= probe.closed_max_pct) | np.isnan(pos)
    qual = closed & (dp >= probe.min_dp_kpa) & np.isfinite(leak) & (leak >= 0)
    n_train = int((qual & train).sum())
    if n_train < 3:
        notes.append(
            f"seat leakage: {n_train} usable training rows (valve closed, ΔP >= "
            f"{probe.min_dp_kpa:g} kPa, leak read); are pressures in kPa? (map with :bar)"
        )
        return np.full(len(t), np.nan), np.zeros(len(t), np.int8), notes
    det = SeatLeakDetector(baseline_samples=min(n_train, 4096))
    # rows before the training window are not fed: the baseline must come from it
    start = int(np.argmax(train)) if train.any() else 0
    table = DeviceTable()
    table.set(0, device)
    cat = np.zeros(len(t), np.int8)
    prev_cat, prev_changed = 0, math.nan

    def feed(lo: int, hi: int) -> Any:
        det.update(
            SampleBatch.from_arrays(
                np.zeros(hi - lo, np.int64),
                t[lo:hi],
                p_in_kpa=p_in[lo:hi],
                p_out_kpa=p_out[lo:hi],
                leak_mm3s=leak[lo:hi],
                position_pct=pos[lo:hi],
            ),
            table,
        )
        return det.verdicts()

    for lo in range(start, len(t), chunk):
        hi = min(lo + chunk, len(t))
        snap = {k: v.copy() for k, v in det.state_dict().items()}
        v = feed(lo, hi)
        c, changed = int(v.category[0]), float(v.changed_s[0])
        if c == prev_cat and (
            changed == prev_changed or (math.isnan(changed) and math.isnan(prev_changed))
        ):
            cat[lo:hi] = c
            continue
        # a verdict changed inside this chunk: replay it row by row to date it exactly
        det.load_state_dict(snap)
        for i in range(lo, hi):
            v = feed(i, i + 1)
            cat[i] = v.category[0]
        prev_cat, prev_changed = int(v.category[0]), float(v.changed_s[0])
    base = float(v.evidence["baseline_c"][0])
    thr = float(v.evidence["threshold_ratio"][0])
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = np.log(np.maximum(leak, probe.leak_floor_mm3s)) - probe.exponent * np.log(dp)
        score = (logc - math.log(base)) / math.log(thr)
    score = np.where(qual & (np.arange(len(t)) >= start), np.maximum(score, 0.0), np.nan)
    return score, cat, notes


@dataclass(slots=True)
class _Timeline:
    """The rows with a readable time, sorted by it (detection runs in time order)."""

    order: npt.NDArray[np.intp]  # input row index of each sorted row
    t: F64  # Unix seconds, sorted
    ok_t: npt.NDArray[np.bool_]  # per input row: the time was readable
    time_format: str
    divisor: float  # epoch units per second


@dataclass(slots=True)
class _Scores:
    """Per sorted row: the highest score, whether any detector flagged it, and which."""

    score: F64
    flag: npt.NDArray[np.bool_]
    cause: npt.NDArray[np.object_]

    @classmethod
    def empty(cls, n: int) -> _Scores:
        return cls(np.full(n, np.nan), np.zeros(n, dtype=bool), np.full(n, "", dtype=object))


def run_detect(
    *,
    input: Path,
    output: Path,
    time_column: str,
    columns: Mapping[str, str] | str | None = None,
    train: tuple[str | float, str | float] | None = None,
    features: Sequence[str] | None = None,
    delimiter: str | None = None,
    kind: Literal["valve", "pump"] = "valve",
    dn: int | None = None,
    pn: int | None = None,
    leakage_class: str = "",
    train_fraction: float = 0.2,
    persist: tuple[int, int] = (3, 5),
    gap_factor: float = 5.0,
) -> DetectSummary:
    """Score every row of ``input`` and write ``output``; see the module docstring.

    ``columns`` maps signals to CSV columns (``{"leak": "leak_mm3s", "pin": "P1:bar"}`` or
    the CLI string); ``features`` names the multivariate columns (``["*"]``: every numeric
    column); ``persist=(needed, window)``: a multivariate flag needs ``needed`` of the last
    ``window`` rows over threshold. Raises ``ConfigError`` for unusable input or options.
    """
    input, output = Path(input), Path(output)
    table = _read(input, delimiter)
    mapping = _check_options(table, input, time_column, columns, train_fraction, persist)
    cells = _cells_by_column(table)
    timeline, summary = _timeline(table, cells[time_column], input, output, time_column)
    _describe_sampling(timeline.t, gap_factor, summary)
    numeric = _numeric_columns(table, cells, time_column, mapping, features, summary)
    in_train = _training_window(train, timeline, train_fraction, summary)

    scores = _Scores.empty(len(timeline.order))
    sig = {w: numeric[c][timeline.order] * f for w, (c, f) in mapping.items()}
    summary.signals = {w: c for w, (c, _) in mapping.items()}
    consumed: set[str] = set()
    if kind == "valve" and "leak_mm3s" in sig and ({"p_in_kpa", "dp_kpa"} & sig.keys()):
        device = Device(
            device_id="offline",
            kind="valve",
            manufacturer="",
            model="",
            dn=dn,
            pn=pn,
            # CLI text, unchecked: DeviceTable treats a class it does not know as none given
            leakage_class=leakage_class.upper(),  # type: ignore[arg-type]
        )
        _score_seat_leak(timeline.t, sig, in_train, device, scores, summary)
        consumed |= {"leak_mm3s", "p_in_kpa", "p_out_kpa", "dp_kpa", "position_pct"}
    feats = _features(numeric, mapping, features, consumed, summary)
    _score_multivariate(numeric, feats, timeline, in_train, persist, scores, summary)
    if not summary.detectors:
        raise ConfigError(
            "columns", "nothing to detect with: no physical signals mapped and no numeric column"
        )
    _write_scored(output, table, timeline, scores, summary)
    return summary


def _check_options(
    table: _Table,
    input: Path,
    time_column: str,
    columns: Mapping[str, str] | str | None,
    train_fraction: float,
    persist: tuple[int, int],
) -> dict[str, tuple[str, float]]:
    """Refuse options that cannot work on this table; the column map, parsed."""
    header = table.header
    if time_column not in header:
        raise ConfigError("time_column", f"no column {time_column!r} in {header}")
    clash = [c for c in OUTPUT_COLUMNS if c in header]
    if clash:
        raise ConfigError("input", f"{input} already has columns {clash}")
    mapping = parse_column_map(columns)
    for wire, (col, _) in mapping.items():
        if col not in header:
            raise ConfigError("columns", f"{wire} is mapped to {col!r}, which is not a column")
    if not 0 < train_fraction <= 1:
        raise ConfigError("train_fraction", "must be in (0, 1]")
    needed, window = persist
    if not 1 <= needed <= window:
        raise ConfigError("persist", "need 1 <= needed <= window")
    return mapping


def _cells_by_column(table: _Table) -> dict[str, list[str]]:
    col_of = {h: i for i, h in enumerate(table.header)}
    return {
        h: [r[col_of[h]] if col_of[h] < len(r) else "" for r in table.rows] for h in table.header
    }


def _timeline(
    table: _Table, time_cells: list[str], input: Path, output: Path, time_column: str
) -> tuple[_Timeline, DetectSummary]:
    """Parse the time column and sort the readable rows; the summary starts here."""
    t_raw, time_format, divisor = _parse_times(time_cells)
    ok_t = np.isfinite(t_raw)
    summary = DetectSummary(
        input=input,
        output=output,
        delimiter=table.delimiter,
        rows=len(table.rows),
        time_format=time_format,
        first_t=None,
        last_t=None,
        median_interval_s=None,
        gaps=0,
        longest_gap_s=0.0,
        out_of_order_rows=0,
        duplicate_times=0,
        bad_time_lines=[table.lines[i] for i in np.flatnonzero(~ok_t).tolist()],
    )
    if ok_t.sum() < 3:
        raise ConfigError("time_column", f"fewer than 3 readable times in {time_column!r}")
    if time_format == "iso8601":
        first_cell = time_cells[int(np.argmax(ok_t))].strip()
        try:
            naive = datetime.fromisoformat(first_cell).tzinfo is None
        except ValueError:
            naive = True
        if naive:
            summary.notes.append("timestamps carry no time zone: read as UTC")
    valid = np.flatnonzero(ok_t)
    tv = t_raw[valid]
    summary.out_of_order_rows = int((np.diff(tv) < 0).sum())
    order = valid[np.argsort(tv, kind="stable")]  # sorted row indices
    return _Timeline(order, t_raw[order], ok_t, time_format, divisor), summary


def _describe_sampling(t: F64, gap_factor: float, summary: DetectSummary) -> None:
    dt = np.diff(t)
    summary.duplicate_times = int((dt == 0).sum())
    positive = dt[dt > 0]
    summary.first_t, summary.last_t = float(t[0]), float(t[-1])
    if len(positive):
        med = float(np.median(positive))
        summary.median_interval_s = med
        big = positive > gap_factor * med
        summary.gaps = int(big.sum())
        summary.longest_gap_s = float(positive.max())


def _numeric_columns(
    table: _Table,
    cells: dict[str, list[str]],
    time_column: str,
    mapping: Mapping[str, tuple[str, float]],
    features: Sequence[str] | None,
    summary: DetectSummary,
) -> dict[str, F64]:
    """Every column that reads as numbers (mapped ones always), per input row."""
    decimal_comma = table.delimiter != ","
    numeric: dict[str, F64] = {}
    mapped_cols = {c for c, _ in mapping.values()}
    n = len(table.rows)
    for h in table.header:
        if h == time_column:
            continue
        values, junk, missing = _parse_numbers(cells[h], decimal_comma)
        filled = n - missing
        is_numeric = h in mapped_cols or (filled > 0 and len(junk) <= 0.2 * filled)
        if not is_numeric:
            if features is not None and h in features:
                raise ConfigError("features", f"column {h!r} is not numeric")
            summary.excluded[h] = "not numeric"
            continue
        numeric[h] = values
        if junk:
            summary.junk[h] = [table.lines[i] for i in junk[:_MAX_LINES_REPORTED]]
            summary.junk_counts[h] = len(junk)
        if missing:
            summary.missing[h] = missing
    return numeric


def _training_window(
    train: tuple[str | float, str | float] | None,
    timeline: _Timeline,
    train_fraction: float,
    summary: DetectSummary,
) -> npt.NDArray[np.bool_]:
    """Per sorted row: inside the training window (given, or the first share of the span)."""
    t = timeline.t
    if train is not None:
        fmt, div = timeline.time_format, timeline.divisor
        try:
            lo_t = _parse_time_value(train[0], fmt, div)
            hi_t = _parse_time_value(train[1], fmt, div)
        except ValueError as exc:
            raise ConfigError("train", f"cannot read {train}: {exc}") from exc
        if not lo_t < hi_t:
            raise ConfigError("train", "start must be before stop")
    else:
        lo_t = float(t[0])
        hi_t = float(t[0] + train_fraction * (t[-1] - t[0]))
    in_train = (t >= lo_t) & (t <= hi_t)
    summary.train_start, summary.train_stop = lo_t, hi_t
    summary.train_rows = int(in_train.sum())
    if summary.train_rows < 10:
        raise ConfigError("train", f"the training window holds {summary.train_rows} rows (< 10)")
    return in_train


def _score_seat_leak(
    t: F64,
    sig: Mapping[str, F64],
    in_train: npt.NDArray[np.bool_],
    device: Device,
    scores: _Scores,
    summary: DetectSummary,
) -> None:
    s_score, s_cat, notes = _seat_leak(t, sig, in_train, device)
    summary.notes += notes
    summary.detectors.append("seat_leak")
    hit = s_cat > 0
    names = np.array([CATEGORY_NAMES[int(c)] or "" for c in range(len(CATEGORY_NAMES))])
    scores.cause[hit] = np.char.add("seat_leak:", names[s_cat[hit]])
    scores.flag |= hit
    scores.score = np.fmax(scores.score, s_score)


def _features(
    numeric: Mapping[str, F64],
    mapping: Mapping[str, tuple[str, float]],
    features: Sequence[str] | None,
    consumed: set[str],
    summary: DetectSummary,
) -> list[str]:
    """The multivariate columns: as named, every reading (``*`` or nothing mapped), or the
    mapped signals no physical detector took."""
    mapped_cols = {c for c, _ in mapping.values()}
    if features is not None and list(features) != ["*"]:
        feats = list(features)
        missing_f = [f for f in feats if f not in numeric]
        if missing_f:
            raise ConfigError("features", f"not numeric columns of the input: {missing_f}")
        return feats
    if features is not None or not mapping:
        feats = [h for h in numeric if not (_NOT_READINGS.match(h) and h not in mapped_cols)]
        for h in numeric:
            if h not in feats:
                summary.excluded[h] = "looks like a label or row index, not a reading"
        return feats
    return [c for w, (c, _) in mapping.items() if w not in consumed]


def _score_multivariate(
    numeric: Mapping[str, F64],
    feats: list[str],
    timeline: _Timeline,
    in_train: npt.NDArray[np.bool_],
    persist: tuple[int, int],
    scores: _Scores,
    summary: DetectSummary,
) -> None:
    """Fit on the training rows the features that vary there; flag persistent excess."""
    order = timeline.order
    x = np.column_stack([numeric[f][order] for f in feats]) if feats else None
    if x is not None:
        xt = x[in_train]
        keep = []
        for j, f in enumerate(feats):
            col = xt[:, j]
            col = col[np.isfinite(col)]
            if len(col) < 3:
                summary.excluded[f] = "fewer than 3 readings in the training window"
            elif np.ptp(col) == 0:
                summary.excluded[f] = "constant in the training window"
            else:
                keep.append(j)
        feats = [feats[j] for j in keep]
        x = x[:, keep]
    summary.features = feats
    if not feats or x is None:
        return
    try:
        model = RobustMahalanobis().fit(x[in_train], feature_names=feats)
    except ValueError as exc:
        raise ConfigError("train", f"cannot learn normal behaviour: {exc}") from exc
    scored = model.score(x)
    contrib = scored.contributions
    mv = np.where(np.isfinite(x).any(axis=1), scored.score, np.nan)
    hit = np.nan_to_num(mv) > 1.0
    needed, window = persist
    mv_flag = _persist(hit, window, needed)
    top = np.argsort(-contrib, axis=1)[:, :2]
    fa = np.array(feats, dtype=object)
    for i in np.flatnonzero(mv_flag & ~scores.flag).tolist():
        names_i = [fa[j] for j in top[i] if contrib[i, j] > 0.2 * max(contrib[i].sum(), 1e-12)]
        scores.cause[i] = "multivariate:" + "+".join(names_i or [fa[top[i, 0]]])
    scores.flag |= mv_flag
    scores.score = np.fmax(scores.score, mv)
    summary.detectors.append("multivariate")


def _write_scored(
    output: Path, table: _Table, timeline: _Timeline, scores: _Scores, summary: DetectSummary
) -> None:
    """The input rows in input order, cells untouched, plus the three output columns."""
    n, t = len(table.rows), timeline.t
    out_score = np.full(n, np.nan)
    out_flag = np.zeros(n, dtype=bool)
    out_cause = np.full(n, "", dtype=object)
    order = timeline.order
    out_score[order], out_flag[order], out_cause[order] = scores.score, scores.flag, scores.cause
    out_cause[~timeline.ok_t] = "invalid_time"
    summary.rows_scored = int(np.isfinite(scores.score).sum())
    summary.rows_flagged = int(scores.flag.sum())
    for a, b in _runs(scores.flag):
        summary.segments.append((float(t[a]), float(t[b - 1]), str(scores.cause[a])))

    output.parent.mkdir(parents=True, exist_ok=True)
    header = table.header
    with open(output, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=table.delimiter, lineterminator="\n")
        w.writerow([*header, *OUTPUT_COLUMNS])
        for i, row in enumerate(table.rows):
            s = out_score[i]
            w.writerow(
                [*row[: len(header)], f"{s:.4g}" if math.isfinite(s) else "",
                 int(out_flag[i]), out_cause[i]]
            )  # fmt: skip
