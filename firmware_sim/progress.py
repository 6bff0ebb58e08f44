"""A progress bar for long simulation runs: one stderr line, rewritten in place.

On a terminal the line is redrawn at most ``min_interval_s`` apart; into a file or pipe a
plain line is written every ``log_interval_s`` instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from firmware_sim.runner import SimReport

__all__ = ["ProgressBar"]


def _si(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.1f}{unit}"
    return f"{x:.0f}"


class ProgressBar:
    def __init__(
        self,
        *,
        total_rounds: int | None,
        stream: TextIO | None = None,
        width: int = 24,
        min_interval_s: float = 0.2,
        log_interval_s: float = 10.0,
    ) -> None:
        self.total_rounds = total_rounds
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._every_s = min_interval_s if self._is_tty else log_interval_s
        self._last = -float("inf")
        self._started = time.monotonic()

    def line(self, report: SimReport, event_t: float) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        when = datetime.fromtimestamp(event_t, UTC).strftime("%Y-%m-%d %H:%M")
        rate = report.samples_generated / elapsed
        parts = []
        if self.total_rounds:
            frac = min(report.rounds / self.total_rounds, 1.0)
            filled = round(frac * self.width)
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            parts.append(
                f"[{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:3.0f}% "
                f"round {report.rounds}/{self.total_rounds}"
            )
            tail = f" eta {int(eta // 60)}:{int(eta % 60):02d}"
        else:
            parts.append(f"round {report.rounds}")
            tail = ""
        parts.append(f"sim {when}")
        parts.append(f"{_si(report.samples_generated)} samples ({_si(rate)}/s)")
        parts.append(f"{_si(report.copies_acked)} msgs acked")
        return " | ".join(parts) + tail

    def update(self, report: SimReport, event_t: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._every_s:
            return
        self._last = now
        text = self.line(report, event_t)
        if self._is_tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, report: SimReport, event_t: float) -> None:
        self.update(report, event_t, force=True)
        if self._is_tty:
            self.stream.write("\n")
            self.stream.flush()
