"""A recorded CSV read in chunks: times and numeric columns as arrays, the mess reported.

Input is whatever a plant historian or a test rig exported, so nothing is assumed beyond a
header row (see ``analytics.offline`` for the accepted formats). The file is read twice
with the same row rules: once here, keeping only numbers (float64 per cell, 8 bytes per
row per column instead of the ~100 bytes of a Python string), and once by ``iter_rows``
to write the scored copy. Peak memory is therefore the numeric arrays, whatever the
file's text costs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from sealscope.errors import ConfigError

__all__ = [
    "SIGNAL_ALIASES",
    "Recording",
    "iter_rows",
    "parse_column_map",
    "parse_time_value",
    "read_recording",
]

F64 = npt.NDArray[np.float64]
Progress = Callable[[int, int], None]  # (bytes read, file size)

SIGNAL_ALIASES: Final[dict[str, str]] = {
    "leak": "leak_mm3s",
    "pin": "p_in_kpa",
    "p_in": "p_in_kpa",
    "pout": "p_out_kpa",
    "p_out": "p_out_kpa",
    "dp": "dp_kpa",
    "cavity": "p_cavity_kpa",
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
    # factor to sealscope's unit, by the unit suffix of the signal's name
    "kpa": {"kpa": 1.0, "pa": 1e-3, "bar": 100.0, "mbar": 0.1, "mpa": 1000.0, "psi": 6.894757},
    "mm3s": {"mm3s": 1.0, "mlmin": 1000.0 / 60.0, "mls": 1000.0, "lh": 1e6 / 3600.0,
             "lmin": 1e6 / 60.0},
    "m3h": {"m3h": 1.0, "lmin": 0.06, "ls": 3.6, "lh": 1e-3, "gpm": 0.2271247,
            "m3s": 3600.0},
}  # fmt: skip
_MISSING: Final = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?"})
MAX_LINES_REPORTED: Final = 20
_CHUNK_ROWS: Final = 65_536
_ISO_FALLBACKS: Final = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S.%f")


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
                known_u = ", ".join(table) if table else "none"
                raise ConfigError(
                    "columns", f"unit {unit!r} is not known for {wire} (known: {known_u})"
                )
            factor = table[key]
        out[wire] = (column.strip(), factor)
    return out


# -- times ---------------------------------------------------------------------------------


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
    for name, lo, div in (("epoch_ns", 1e17, 1e9), ("epoch_us", 1e14, 1e6),
                          ("epoch_ms", 1e11, 1e3)):  # fmt: skip
        if mag >= lo:
            return name, div
    return "epoch_s", 1.0


def parse_time_value(value: str | float, fmt: str, div: float) -> float:
    """A user's time (a training bound) in the file's own format, as Unix seconds."""
    if isinstance(value, int | float):
        return float(value) / div
    s = str(value).strip()
    try:
        return float(s) / div if fmt != "iso8601" else _parse_iso(s)
    except ValueError:
        return _parse_iso(s)


def _numbers_fast(cells: list[str]) -> F64 | None:
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        return None


def _parse_numbers(cells: list[str], decimal_comma: bool) -> tuple[F64, list[int], int]:
    """Floats (NaN for missing or junk), indices of junk cells, count of missing cells."""
    fast = _numbers_fast(cells)
    if fast is not None:  # every cell a number, NaN or inf
        bad = np.isinf(fast)
        missing = int(np.isnan(fast).sum())
        fast[bad] = np.nan  # inf is no reading
        return fast, np.flatnonzero(bad).tolist(), missing
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
            try:
                if not (decimal_comma and s.count(",") == 1):
                    raise
                v = float(s.replace(",", "."))
            except ValueError:
                junk.append(i)
                continue
        if math.isfinite(v):
            out[i] = v
        else:
            junk.append(i)
    return out, junk, missing


# -- rows ----------------------------------------------------------------------------------


def sniff_delimiter(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            first = f.readline()
    except OSError as exc:
        raise ConfigError("input", f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("input", f"{path} is not UTF-8 text ({exc.reason})") from exc
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: (counts[d], d == ","))


def iter_rows(
    path: Path, delimiter: str, progress: Progress | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(file line the row starts on, cells padded to the header) for each non-blank row
    after the header; the header itself comes first with line 1."""
    size = path.stat().st_size
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError("input", f"{path} is empty") from None
        except UnicodeDecodeError as exc:
            raise ConfigError("input", f"{path} is not UTF-8 text ({exc.reason})") from exc
        yield 1, [h.strip() for h in header]
        width = len(header)
        start = reader.line_num + 1
        try:
            for k, row in enumerate(reader):
                if row and any(cell.strip() for cell in row):
                    if len(row) < width:
                        row = row + [""] * (width - len(row))
                    yield start, row
                start = reader.line_num + 1
                if progress is not None and k % 8192 == 0:
                    progress(raw.tell(), size)
        except UnicodeDecodeError as exc:
            raise ConfigError(
                "input", f"{path} is not UTF-8 text near line {start} ({exc.reason})"
            ) from exc
        if progress is not None:
            progress(size, size)


@dataclass(slots=True)
class Recording:
    """A recorded file's times and numeric columns, one element per data row."""

    path: Path
    delimiter: str
    header: list[str]
    t: F64  # Unix seconds, NaN where unreadable
    time_format: str  # "iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"
    divisor: float  # epoch units per second
    columns: dict[str, F64]  # numeric columns (the time column excluded)
    naive_times: bool = False
    bad_time_lines: list[int] = field(default_factory=list)
    junk: dict[str, list[int]] = field(default_factory=dict)  # column -> first lines
    junk_counts: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    text_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.t)


class _ColumnReader:
    """Accumulates one column's chunks; decides after the first chunk if it is text."""

    def __init__(self, name: str, forced: bool) -> None:
        self.name = name
        self.forced = forced
        self.chunks: list[F64] = []
        self.junk_lines: list[int] = []
        self.junk = 0
        self.missing = 0
        self.filled = 0
        self.text = False

    def add(self, cells: list[str], lines: Sequence[int], decimal_comma: bool) -> None:
        if self.text:
            return
        values, junk, missing = _parse_numbers(cells, decimal_comma)
        self.junk += len(junk)
        self.missing += missing
        self.filled += len(cells) - missing
        room = MAX_LINES_REPORTED - len(self.junk_lines)
        self.junk_lines += [lines[i] for i in junk[:room]]
        if not self.chunks and not self.forced and self._looks_like_text():
            self.text = True
            return
        self.chunks.append(values)

    def _looks_like_text(self) -> bool:
        return self.filled == 0 or self.junk > 0.2 * self.filled

    def array(self) -> F64:
        out = np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        self.chunks = []
        return out


class _TimeReader:
    def __init__(self) -> None:
        self.fmt: str | None = None
        self.div = 1.0
        self.chunks: list[F64] = []
        self.naive = False

    def add(self, cells: list[str]) -> None:
        if self.fmt is None:
            self._decide(cells)
        if self.fmt == "iso8601":
            out = np.full(len(cells), np.nan)
            for i, c in enumerate(cells):
                with contextlib.suppress(ValueError, OverflowError):
                    out[i] = _parse_iso(c)
        else:
            parsed = _numbers_fast(cells)
            if parsed is None:
                parsed = np.full(len(cells), np.nan)
                for i, c in enumerate(cells):
                    with contextlib.suppress(ValueError):
                        parsed[i] = float(c)
            out = np.where(np.isfinite(parsed), parsed / self.div, np.nan)
        self.chunks.append(out)

    def _decide(self, cells: list[str]) -> None:
        as_num = np.full(len(cells), np.nan)
        for i, c in enumerate(cells):
            with contextlib.suppress(ValueError):
                as_num[i] = float(c)
        filled = sum(1 for c in cells if c.strip())
        if filled and np.isfinite(as_num).sum() >= 0.9 * filled:
            self.fmt, self.div = _epoch_unit(as_num[np.isfinite(as_num)])
            return
        self.fmt = "iso8601"
        for c in cells:
            try:
                self.naive = datetime.fromisoformat(c.strip()).tzinfo is None
                break
            except ValueError:
                continue
        else:
            self.naive = True


def read_recording(
    path: Path,
    *,
    time_column: str,
    delimiter: str | None = None,
    numeric_columns: Collection[str] = (),
    chunk_rows: int = _CHUNK_ROWS,
    progress: Progress | None = None,
) -> Recording:
    """Read ``path`` in chunks of ``chunk_rows`` rows. ``numeric_columns`` are always read
    as numbers (mapped signals); other columns mostly junk in the first chunk are text."""
    path = Path(path)
    delimiter = delimiter or sniff_delimiter(path)
    rows = iter_rows(path, delimiter, progress)
    _, header = next(rows)
    if time_column not in header:
        raise ConfigError("time_column", f"no column {time_column!r} in {header}")
    ti = header.index(time_column)
    readers = {j: _ColumnReader(h, h in numeric_columns) for j, h in enumerate(header) if j != ti}
    times = _TimeReader()
    decimal_comma = delimiter != ","
    bad_time: list[int] = []

    def flush(block: list[list[str]], lines: list[int]) -> None:
        tcells = [r[ti] for r in block]
        times.add(tcells)
        bad = np.flatnonzero(~np.isfinite(times.chunks[-1])).tolist()
        bad_time.extend(lines[i] for i in bad)
        for j, rd in readers.items():
            rd.add([r[j] if j < len(r) else "" for r in block], lines, decimal_comma)

    block: list[list[str]] = []
    lines: list[int] = []
    for line, row in rows:
        block.append(row)
        lines.append(line)
        if len(block) >= chunk_rows:
            flush(block, lines)
            block, lines = [], []
    if block:
        flush(block, lines)
    rec = Recording(
        path=path,
        delimiter=delimiter,
        header=header,
        t=np.concatenate(times.chunks) if times.chunks else np.zeros(0),
        time_format=times.fmt or "epoch_s",
        divisor=times.div,
        columns={},
        naive_times=times.naive,
        bad_time_lines=bad_time,
    )
    for rd in readers.values():
        if rd.text or (not rd.forced and rd._looks_like_text()):
            rec.text_columns.append(rd.name)
            rd.chunks = []
            continue
        rec.columns[rd.name] = rd.array()
        if rd.junk:
            rec.junk[rd.name] = rd.junk_lines
            rec.junk_counts[rd.name] = rd.junk
        if rd.missing:
            rec.missing[rd.name] = rd.missing
    return rec
