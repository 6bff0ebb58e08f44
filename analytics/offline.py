"""Offline mode: run the detectors over recorded readings in a CSV file (``sealscope detect``).

Input is whatever a plant historian or a test rig exported (``analytics.recording`` reads
it in chunks): delimiter ``,``, ``;``, tab or ``|``; a time column in ISO 8601 (zone-less
is UTC) or Unix epoch s/ms/us/ns; any rate, gaps, rows out of order (sorted for detection,
output keeps the input order); missing cells; junk reported by line number.

Signals. ``columns`` maps sealscope signals to CSV columns (``leak=leak_mm3s,pin=P1:bar,
flow=F:lmin``; a ``:unit`` suffix converts pressures, leak rates and flows). Whatever the
asset ``kind``, the seat-leak relation runs when a leak rate and either both pressures or
``dp`` are mapped: the leak coefficient leak / ΔPⁿ against its training baseline. Every
other numeric column the user named, or every numeric column when nothing is mapped, goes
to the multivariate detector; the summary says which detectors did not run and why.

The multivariate detector is made for recorded data nobody here produced:

* quantised channels get a spread floored by their resolution (``analytics.resolution``)
  and no channel's variance may collapse in the robust fit;
* slow normal drifts are followed (``analytics.drift``): the location adapts on rows below
  the threshold, with a time constant of ``adapt_rows`` rows (0: fixed);
* warm-up at the start is detected and reported (``analytics.warmup``); ``skip_warmup``
  or ``warmup_rows`` leave it out of training and scoring.

Training window: ``train=(start, stop)`` in the file's times, ``train_rows=(first, last)``
data rows (0-based, inclusive), or the first ``train_fraction`` of the time span (after
any skipped warm-up).

Output: the input rows in input order, cells untouched, plus ``anomaly_score`` (1.0 is the
alarm threshold), ``anomaly_flag`` (0/1) and ``anomaly_cause`` (detector: signals). The
summary names, per flagged segment, the signals and their share of the distance, or the
leak coefficient against ΔPⁿ.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from analytics.base import CATEGORY_NAMES, DeviceTable, SampleBatch
from analytics.detect_summary import DetectSummary, Segment
from analytics.drift import DriftTracker
from analytics.multivariate import RobustMahalanobis
from analytics.pressure_hold import Hold, HoldBaseline, PressureHoldTest
from analytics.recording import (
    SIGNAL_ALIASES,
    Recording,
    iter_rows,
    parse_column_map,
    parse_time_value,
    read_recording,
)
from analytics.seat_leak import SeatLeakDetector
from analytics.warmup import detect_warmup
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
Bools = npt.NDArray[np.bool_]

OUTPUT_COLUMNS: Final = ("anomaly_score", "anomaly_flag", "anomaly_cause")
# Columns that carry labels or row numbers, not readings: learning them would be cheating
# (labels) or flag the passage of time (indices). Named explicitly, they are used.
_NOT_READINGS: Final = re.compile(
    r"^(|unnamed.*|index|idx|id|row|anomaly|anomalies|label|labels|is_anomaly|changepoint|"
    r"target|class|fault|status|machine_status|y)$",
    re.IGNORECASE,
)
_SEAT_SIGNALS: Final = ("leak_mm3s", "p_in_kpa", "p_out_kpa", "dp_kpa", "position_pct")
_BLOCK_ROWS: Final = 512  # multivariate scoring block: the drift tracker steps per block
_PROGRESS_BYTES: Final = 32 << 20  # auto progress bar from this file size on


def _runs(flag: Bools) -> list[tuple[int, int]]:
    """[start, stop) index pairs of consecutive True runs."""
    edges = np.diff(np.r_[0, flag.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, stops, strict=True))


def _persist(hit: Bools, window: int, needed: int) -> Bools:
    """Causal k-of-n: a row is flagged when ``needed`` of the last ``window`` rows hit."""
    c = np.cumsum(np.r_[0, hit.astype(np.int64)])
    idx = np.arange(len(hit))
    count = c[idx + 1] - c[np.maximum(idx + 1 - window, 0)]
    return hit & (count >= needed)


@dataclass(slots=True)
class _Scores:
    """Per sorted row: the highest score, the flag, a cause code, and the multivariate
    top two channels with their shares of the distance (for the explanation)."""

    score: F64
    flag: Bools
    cause: npt.NDArray[np.int16]  # index into causes; 0 = none
    causes: list[str]
    top: npt.NDArray[np.int16]  # (rows, 2) feature index, -1 = none
    share: npt.NDArray[np.float32]  # (rows, 2)
    seat_ratio: F64  # leak coefficient / baseline, NaN where not measured
    hold: npt.NDArray[np.int32]  # index into holds, -1 = none
    holds: list[Hold]
    hold_test: PressureHoldTest | None = None
    hold_base: HoldBaseline | None = None

    @classmethod
    def empty(cls, n: int) -> _Scores:
        return cls(
            np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.int16), [""],
            np.full((n, 2), -1, np.int16), np.zeros((n, 2), np.float32), np.full(n, np.nan),
            np.full(n, -1, np.int32), [],
        )  # fmt: skip

    def code(self, cause: str) -> int:
        if cause not in self.causes:
            self.causes.append(cause)
        return self.causes.index(cause)


def run_detect(
    *,
    input: Path,
    output: Path,
    time_column: str,
    columns: Mapping[str, str] | str | None = None,
    train: tuple[str | float, str | float] | None = None,
    train_rows: tuple[int, int] | None = None,
    features: Sequence[str] | None = None,
    delimiter: str | None = None,
    kind: Literal["valve", "pump"] = "valve",
    dn: int | None = None,
    pn: int | None = None,
    leakage_class: str = "",
    train_fraction: float = 0.2,
    persist: tuple[int, int] = (3, 5),
    gap_factor: float = 5.0,
    skip_warmup: bool = False,
    warmup_rows: int | None = None,
    adapt_rows: int = 1000,
    progress: bool | None = None,
    hold_medium: Literal["gas", "liquid"] = "gas",
    hold_volume_l: float | None = None,
    bulk_modulus_mpa: float = 2200.0,
    hold_thermal_kpa_per_k: float | None = None,
) -> DetectSummary:
    """Score every row of ``input`` and write ``output``; see the module docstring.

    ``features`` names the multivariate columns (``["*"]``: every numeric column);
    ``persist=(needed, window)``: a multivariate flag needs ``needed`` of the last
    ``window`` rows over threshold; ``progress``: a progress bar on stderr (None: on a
    terminal, for files over 32 MB). ``hold_*``: the pressure-hold test's medium, test
    volume (litres; without it decay rates are not turned into leak rates), the liquid's
    effective bulk modulus and its thermal pressure coefficient (``analytics.pressure_hold``).
    Raises ``ConfigError`` for unusable input or options.
    """
    input, output = Path(input), Path(output)
    mapping = parse_column_map(columns)
    _check_options(train, train_rows, train_fraction, persist, warmup_rows, adapt_rows)
    try:
        hold_test = PressureHoldTest(
            medium=hold_medium, volume_l=hold_volume_l, bulk_modulus_mpa=bulk_modulus_mpa,
            thermal_kpa_per_k=hold_thermal_kpa_per_k,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError("hold", str(exc)) from exc
    named = {c for c, _ in mapping.values()} | set(features or ()) - {"*"}
    with _progress_bar(input, progress) as bar:
        rec = read_recording(
            input,
            time_column=time_column,
            delimiter=delimiter,
            numeric_columns=named,
            progress=bar("reading"),
        )
        _check_columns(rec, mapping, features)
        summary, order, t = _timeline(rec, output, gap_factor)
        for c in list(rec.columns):  # detection runs in time order
            rec.columns[c] = rec.columns[c][order]
        sig = {w: rec.columns[c] * f for w, (c, f) in mapping.items()}
        summary.signals = {w: c for w, (c, _) in mapping.items()}
        seat = "leak_mm3s" in sig and bool({"p_in_kpa", "dp_kpa"} & sig.keys())
        consumed = set(_SEAT_SIGNALS) if seat else set()
        holds = _find_holds(hold_test, t, sig, summary)
        if holds:
            consumed |= _hold_signals(sig)
        feats = _features(rec, mapping, features, consumed, summary)
        warm = _warmup(rec, feats, sig, t, skip_warmup, warmup_rows, summary)
        in_train = _training_window(train, train_rows, rec, order, t, warm, train_fraction,
                                    summary)  # fmt: skip
        scores = _Scores.empty(len(t))
        if seat:
            device = Device(
                device_id="offline", kind=kind, manufacturer="", model="", dn=dn, pn=pn,
                # CLI text, unchecked: DeviceTable treats a class it does not know as none given
                leakage_class=leakage_class.upper(),  # type: ignore[arg-type]
            )  # fmt: skip
            _score_seat_leak(t, sig, in_train, warm, device, scores, summary)
        else:
            summary.not_run["seat_leak"] = (
                "needs a leak rate (leak=) and the pressures across the seat "
                "(pin= and pout=, or dp=) mapped with --map"
            )
        if holds:
            _score_holds(hold_test, holds, in_train, warm, leakage_class, dn, pn, scores,
                         summary)  # fmt: skip
        _score_multivariate(rec, feats, in_train, warm, persist, adapt_rows, scores, summary)
        if not summary.detectors:
            raise ConfigError(
                "columns",
                "nothing to detect with: no physical signals mapped and no numeric column",
            )
        _explain(t, scores, summary)
        _write_scored(output, rec, order, warm, scores, summary, bar("writing"))
    return summary


def _check_options(
    train: object,
    train_rows: tuple[int, int] | None,
    train_fraction: float,
    persist: tuple[int, int],
    warmup_rows: int | None,
    adapt_rows: int,
) -> None:
    if train is not None and train_rows is not None:
        raise ConfigError("train", "give a time range or row numbers, not both")
    if train_rows is not None and not 0 <= train_rows[0] < train_rows[1]:
        raise ConfigError("train_rows", f"need 0 <= first < last, got {train_rows}")
    if not 0 < train_fraction <= 1:
        raise ConfigError("train_fraction", "must be in (0, 1]")
    needed, window = persist
    if not 1 <= needed <= window:
        raise ConfigError("persist", "need 1 <= needed <= window")
    if warmup_rows is not None and warmup_rows < 0:
        raise ConfigError("warmup_rows", "must be >= 0")
    if adapt_rows < 0:
        raise ConfigError("adapt_rows", "must be >= 0 (0: a fixed baseline)")


def _check_columns(
    rec: Recording, mapping: Mapping[str, tuple[str, float]], features: Sequence[str] | None
) -> None:
    clash = [c for c in OUTPUT_COLUMNS if c in rec.header]
    if clash:
        raise ConfigError("input", f"{rec.path} already has columns {clash}")
    for wire, (col, _) in mapping.items():
        if col not in rec.header:
            raise ConfigError("columns", f"{wire} is mapped to {col!r}, which is not a column")
    for f in features or ():
        if f != "*" and f not in rec.columns:
            raise ConfigError("features", f"column {f!r} is not a numeric column of the input")


@contextmanager
def _progress_bar(
    path: Path, wanted: bool | None
) -> Iterator[Callable[[str], Callable[[int, int], None] | None]]:
    """A factory of per-phase progress callbacks (None when no bar is shown)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError("input", f"cannot read {path}: {exc.strerror or exc}") from exc
    show = wanted if wanted is not None else size >= _PROGRESS_BYTES and sys.stderr.isatty()
    if not show:
        yield lambda _phase: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip

        def phase(name: str) -> Callable[[int, int], None]:
            task = bar.add_task(name, total=size)
            return lambda done, total: bar.update(task, completed=done, total=total)

        yield phase


def _timeline(rec: Recording, output: Path, gap_factor: float) -> tuple[DetectSummary, Any, F64]:
    """The summary's first lines; the input rows with a readable time, sorted by it."""
    ok_t = np.isfinite(rec.t)
    summary = DetectSummary(
        input=rec.path, output=output, delimiter=rec.delimiter, rows=rec.rows,
        time_format=rec.time_format, bad_time_lines=rec.bad_time_lines, junk=rec.junk,
        junk_counts=rec.junk_counts, missing=rec.missing,
    )  # fmt: skip
    for col in rec.text_columns:
        summary.excluded[col] = "not numeric"
    if ok_t.sum() < 3:
        raise ConfigError("time_column", "fewer than 3 readable times in the time column")
    if rec.naive_times and rec.time_format == "iso8601":
        summary.notes.append("timestamps carry no time zone: read as UTC")
    valid = np.flatnonzero(ok_t)
    tv = rec.t[valid]
    summary.out_of_order_rows = int((np.diff(tv) < 0).sum())
    order = valid[np.argsort(tv, kind="stable")]
    t = rec.t[order]
    dt = np.diff(t)
    summary.duplicate_times = int((dt == 0).sum())
    positive = dt[dt > 0]
    summary.first_t, summary.last_t = float(t[0]), float(t[-1])
    if len(positive):
        med = float(np.median(positive))
        summary.median_interval_s = med
        summary.gaps = int((positive > gap_factor * med).sum())
        summary.longest_gap_s = float(positive.max())
    return summary, order, t


def _features(
    rec: Recording,
    mapping: Mapping[str, tuple[str, float]],
    features: Sequence[str] | None,
    consumed: set[str],
    summary: DetectSummary,
) -> list[str]:
    """The multivariate columns: as named, every reading (``*`` or nothing mapped), or the
    mapped signals no physical detector took."""
    mapped_cols = {c for c, _ in mapping.values()}
    if features is not None and list(features) != ["*"]:
        return list(features)
    if features is not None or not mapping:
        feats = [h for h in rec.columns if not (_NOT_READINGS.match(h) and h not in mapped_cols)]
        for h in rec.columns:
            if h not in feats:
                summary.excluded[h] = "looks like a label or row index, not a reading"
        return feats
    return [c for w, (c, _) in mapping.items() if w not in consumed]


def _warmup(
    rec: Recording,
    feats: list[str],
    sig: Mapping[str, F64],
    t: F64,
    skip: bool,
    rows: int | None,
    summary: DetectSummary,
) -> int:
    """Sorted rows at the start left out of training and scoring (0 unless asked)."""
    names = list(dict.fromkeys(feats))
    chans = {**{f: rec.columns[f] for f in names}, **{w: v for w, v in sig.items()}}
    if chans:
        head = max(1, len(t) // 2 + 1)  # warm-up is looked for in the first half only
        stacked = np.column_stack([v[:head] for v in chans.values()])
        found = detect_warmup(stacked, list(chans), total_rows=len(t))
        summary.warmup_rows, summary.warmup_by_channel = found.rows, found.by_channel
    if rows is not None:
        summary.warmup_rows, summary.warmup_by_channel = rows, {"given": rows}
        skip = True
    summary.warmup_skipped = skip and summary.warmup_rows > 0
    return min(summary.warmup_rows, len(t) - 3) if skip else 0


def _training_window(
    train: tuple[str | float, str | float] | None,
    train_rows: tuple[int, int] | None,
    rec: Recording,
    order: Any,
    t: F64,
    warm: int,
    train_fraction: float,
    summary: DetectSummary,
) -> Bools:
    """Per sorted row: inside the training window, and never in a skipped warm-up."""
    after_warm = np.arange(len(t)) >= warm
    if train_rows is not None:
        in_train = (order >= train_rows[0]) & (order <= train_rows[1])
    else:
        if train is not None:
            try:
                lo_t = parse_time_value(train[0], rec.time_format, rec.divisor)
                hi_t = parse_time_value(train[1], rec.time_format, rec.divisor)
            except ValueError as exc:
                raise ConfigError(
                    "train",
                    f"cannot read {train} as times in the file's format ({rec.time_format}); "
                    "for row numbers use --train-rows FIRST:LAST",
                ) from exc
            if not lo_t < hi_t:
                raise ConfigError("train", "start must be before stop")
        else:
            lo_t = float(t[warm])
            hi_t = float(t[warm] + train_fraction * (t[-1] - t[warm]))
        in_train = (t >= lo_t) & (t <= hi_t)
    in_train &= after_warm
    rows = np.flatnonzero(in_train)
    summary.train_rows = len(rows)
    if summary.train_rows < 10:
        hint = ""
        if train is not None:
            span = f"{rec.t[np.isfinite(rec.t)].min() * rec.divisor:.10g}"
            hint = (
                f"; the file's times start at {span} ({rec.time_format}), "
                "for row numbers use --train-rows FIRST:LAST"
            )
        raise ConfigError(
            "train", f"the training window holds {summary.train_rows} rows (< 10){hint}"
        )
    summary.train_start, summary.train_stop = float(t[rows[0]]), float(t[rows[-1]])
    return in_train


def _seat_leak(
    t: F64,
    sig: Mapping[str, F64],
    train: Bools,
    warm: int,
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
    start = max(int(np.argmax(train)) if train.any() else 0, warm)
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


def _score_seat_leak(
    t: F64,
    sig: Mapping[str, F64],
    in_train: Bools,
    warm: int,
    device: Device,
    scores: _Scores,
    summary: DetectSummary,
) -> None:
    s_score, s_cat, notes = _seat_leak(t, sig, in_train, warm, device)
    summary.notes += notes
    if notes and np.isnan(s_score).all():
        summary.not_run["seat_leak"] = notes[-1]
        return
    summary.detectors.append("seat_leak")
    codes = np.array(
        [scores.code(f"seat_leak:{name}") if name else 0 for name in CATEGORY_NAMES], np.int16
    )
    hit = s_cat > 0
    scores.cause[hit] = codes[s_cat[hit]]
    scores.flag |= hit
    scores.score = np.fmax(scores.score, s_score)
    scores.seat_ratio = SeatLeakDetector().alarm_ratio ** s_score


def _hold_pressure(sig: Mapping[str, F64]) -> str | None:
    """The signal whose volume is held: the body cavity when mapped, else upstream."""
    return next((w for w in ("p_cavity_kpa", "p_in_kpa") if w in sig), None)


def _hold_signals(sig: Mapping[str, F64]) -> set[str]:
    held = _hold_pressure(sig)
    return {s for s in (held, "p_out_kpa", "position_pct", "temp_c") if s and s in sig}


def _find_holds(
    test: PressureHoldTest, t: F64, sig: Mapping[str, F64], summary: DetectSummary
) -> list[Hold]:
    """The isolated closed-valve holds of the file (empty, with the reason, when none)."""
    held = _hold_pressure(sig)
    if held is None or "position_pct" not in sig:
        summary.not_run["pressure_hold"] = (
            "needs the valve position (pos=) and the held pressure (pin=, or cavity= for a "
            "body cavity) mapped with --map"
        )
        return []
    p_out = sig.get("p_out_kpa")
    holds, short = test.find(t, sig[held], p_out, sig["position_pct"], sig.get("temp_c"))
    isolated = [h for h in holds if h.verdict != "not_isolated"]
    if not holds:
        summary.not_run["pressure_hold"] = (
            f"no closed-valve run of at least {test.settle_s + test.min_hold_s:g} s at "
            f"{test.min_dp_kpa:g} kPa or more across the seat ({short} closed runs shorter "
            "or unpressurised); are pressures in kPa? (map with :bar)"
        )
    elif not isolated:
        summary.not_run["pressure_hold"] = (
            f"the valve was closed {len(holds)} times but the pressure was never held: "
            f"{holds[0].why}"
        )
    return isolated


def _score_holds(
    test: PressureHoldTest,
    holds: list[Hold],
    in_train: Bools,
    warm: int,
    leakage_class: str,
    dn: int | None,
    pn: int | None,
    scores: _Scores,
    summary: DetectSummary,
) -> None:
    holds = [h for h in holds if h.start >= warm]
    base = test.learn(holds, [bool(in_train[(h.start + h.stop - 1) // 2]) for h in holds])
    if base is None:
        why = test.refused
        if why.startswith("no isolated hold"):
            why = (
                f"{len(holds)} isolated holds, none inside the training window: the baseline "
                "decay rate comes from training holds (widen --train or --train-rows)"
            )
        summary.not_run["pressure_hold"] = why
        return
    test.judge(holds, base, leakage_class=leakage_class, dn=dn, pn=pn)
    summary.notes += base.notes
    summary.detectors.append("pressure_hold")
    scores.holds, scores.hold_test, scores.hold_base = holds, test, base
    for k, h in enumerate(holds):
        rows = slice(h.start, h.stop)
        scores.hold[rows] = k
        if math.isfinite(h.score):
            scores.score[rows] = np.fmax(scores.score[rows], h.score)
        if h.flagged:
            new = ~scores.flag[rows]
            scores.cause[rows][new] = scores.code(f"pressure_hold:{h.verdict}")
            scores.flag[rows] = True
        summary.holds.append(f"{_when(h.t0)}  {test.describe(h, base)}")


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _score_multivariate(
    rec: Recording,
    feats: list[str],
    in_train: Bools,
    warm: int,
    persist: tuple[int, int],
    adapt_rows: int,
    scores: _Scores,
    summary: DetectSummary,
) -> None:
    """Fit on the training rows the features that vary there; score block by block with
    a drifting location; flag persistent excess."""
    keep = []
    for f in dict.fromkeys(feats):
        col = rec.columns[f][in_train]
        col = col[np.isfinite(col)]
        if len(col) < 3:
            summary.excluded[f] = "fewer than 3 readings in the training window"
        elif np.ptp(col) == 0:
            summary.excluded[f] = "constant in the training window"
        else:
            keep.append(f)
    summary.features = keep
    if not keep:
        summary.not_run["multivariate"] = "no numeric column that varies in the training window"
        return
    n = len(in_train)
    x = np.empty((n, len(keep)))
    for j, f in enumerate(keep):
        x[:, j] = rec.columns.pop(f)  # the matrix replaces the columns
    try:
        model = RobustMahalanobis().fit(x[in_train], feature_names=keep)
    except ValueError as exc:
        raise ConfigError("train", f"cannot learn normal behaviour: {exc}") from exc
    assert model.location_ is not None and model.scale_ is not None
    assert model.resolution_ is not None
    summary.scales = {
        f: (float(q), float(s))
        for f, q, s in zip(keep, model.resolution_, model.scale_, strict=True)
    }
    tracker = (
        DriftTracker(model.location_, model.scale_, tau_rows=adapt_rows) if adapt_rows else None
    )
    mv = np.full(n, np.nan)
    for lo in range(warm, n, _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, n)
        xb = x[lo:hi]
        sc = model.score(xb, tracker.location if tracker else None)
        s = np.where(np.isfinite(xb).any(axis=1), sc.score, np.nan)
        mv[lo:hi] = s
        c = np.maximum(sc.contributions, 0.0)
        total = np.maximum(c.sum(axis=1, keepdims=True), 1e-12)
        top = np.argsort(-c, axis=1)[:, :2]
        scores.top[lo:hi, : top.shape[1]] = top
        scores.share[lo:hi, : top.shape[1]] = np.take_along_axis(c / total, top, axis=1)
        if tracker is not None:
            tracker.update(xb, s)
    del x
    if tracker is not None:
        summary.drift_sigma = dict(zip(keep, tracker.offset_sigma.round(2).tolist(), strict=True))
    needed, window = persist
    mv_flag = _persist(np.nan_to_num(mv) > 1.0, window, needed)
    new = mv_flag & ~scores.flag
    names = np.array(keep, dtype=object)
    # the cell names the channels carrying over a fifth of the distance
    major = scores.share >= 0.2
    major[:, 0] = True
    for i in np.flatnonzero(new).tolist():
        chans = [names[j] for j, m in zip(scores.top[i], major[i], strict=True) if m and j >= 0]
        scores.cause[i] = scores.code("multivariate:" + "+".join(chans))
    scores.flag |= mv_flag
    scores.score = np.fmax(scores.score, mv)
    summary.detectors.append("multivariate")


def _explain(t: F64, scores: _Scores, summary: DetectSummary) -> None:
    """Per flagged run: which detector, which signals with their share, which relation."""
    scored = np.isfinite(scores.score)
    summary.rows_scored = int(scored.sum())
    summary.rows_flagged = int(scores.flag.sum())
    if scored.any():
        summary.mean_score = float(np.mean(scores.score[scored]))
    feats = summary.features
    for a, b in _runs(scores.flag):
        cause = scores.causes[int(scores.cause[a])]
        k = int(scores.hold[a])
        if cause.startswith("pressure_hold") and k >= 0 and scores.hold_test is not None:
            text = f"{cause}: " + scores.hold_test.describe(scores.holds[k], scores.hold_base)
        elif cause.startswith("seat_leak"):
            ratio = float(np.nanmedian(scores.seat_ratio[a:b])) if np.isfinite(
                scores.seat_ratio[a:b]).any() else math.nan  # fmt: skip
            text = (
                f"{cause}: leak coefficient leak/ΔP^{SeatLeakDetector().exponent:g} at "
                f"{ratio:.3g}x its training baseline (alarm at "
                f"{SeatLeakDetector().alarm_ratio:g}x)"
            )
        else:
            share: dict[str, float] = {}
            for k in range(2):
                idx, sh = scores.top[a:b, k], scores.share[a:b, k]
                for j in np.unique(idx[idx >= 0]).tolist():
                    share[feats[j]] = share.get(feats[j], 0.0) + float(sh[idx == j].sum()) / (b - a)
            ranked = sorted(share.items(), key=lambda kv: -kv[1])
            peak = float(np.nanmax(scores.score[a:b]))
            text = (
                f"{cause}: "
                + ", ".join(f"{c} {100 * s:.0f} %" for c, s in ranked if s >= 0.05)
                + f" of the distance from normal (peak {peak:.3g}x threshold)"
            )
        summary.segments.append(Segment(float(t[a]), float(t[b - 1]), b - a, cause, text))


def _write_scored(
    output: Path,
    rec: Recording,
    order: Any,
    warm: int,
    scores: _Scores,
    summary: DetectSummary,
    progress: Callable[[int, int], None] | None,
) -> None:
    """The input rows in input order, cells untouched, plus the three output columns."""
    n = rec.rows
    out_score = np.full(n, np.nan, dtype=np.float32)
    out_flag = np.zeros(n, dtype=bool)
    out_cause = np.full(n, -1, dtype=np.int16)  # -1: invalid time
    out_score[order], out_flag[order], out_cause[order] = scores.score, scores.flag, scores.cause
    causes = [*scores.causes, "invalid_time"]
    if warm:
        out_cause[order[:warm]] = len(causes)
        causes.append("warmup")
    output.parent.mkdir(parents=True, exist_ok=True)
    width = len(rec.header)
    rows = iter_rows(rec.path, rec.delimiter, progress)
    next(rows)
    with open(output, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=rec.delimiter, lineterminator="\n")
        w.writerow([*rec.header, *OUTPUT_COLUMNS])
        for i, (_, row) in enumerate(rows):
            s = float(out_score[i])
            w.writerow(
                [*row[:width], f"{s:.4g}" if math.isfinite(s) else "", int(out_flag[i]),
                 causes[out_cause[i]]]
            )  # fmt: skip
