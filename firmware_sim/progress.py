"""Progress of a long simulation run on stderr: a live ``rich`` bar, or plain log lines.

On a terminal, a ``rich`` progress display is redrawn at most ``min_interval_s`` apart
(refreshed from ``update``, no background thread); into a file or pipe a plain line is
written every ``log_interval_s`` instead, and once at the end, so logs stay readable.
Both show the rounds done, the simulated time reached, devices, samples generated and
their rate, and messages the far end acknowledged.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from firmware_sim.report import SimReport

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
        self._live: tuple[Progress, TaskID] | None = None  # started on the first redraw

    def _fields(self, report: SimReport, event_t: float) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rounds = f"round {report.rounds}"
        if self.total_rounds:
            rounds += f"/{self.total_rounds}"
        return {
            "rounds": rounds,
            "sim": datetime.fromtimestamp(event_t, UTC).strftime("%Y-%m-%d %H:%M"),
            "devices": f"{report.devices} devices",
            "samples": f"{_si(report.samples_generated)} samples "
            f"({_si(report.samples_generated / elapsed)}/s)",
            "acked": f"{_si(report.copies_acked)} msgs acked",
        }

    def line(self, report: SimReport, event_t: float) -> str:
        """The plain line written into files and pipes."""
        f = self._fields(report, event_t)
        head = f["rounds"]
        if self.total_rounds:
            frac = min(report.rounds / self.total_rounds, 1.0)
            head += f" ({frac * 100:.0f}%)"
        return " | ".join((head, f"sim {f['sim']}", f["devices"], f["samples"], f["acked"]))

    def update(self, report: SimReport, event_t: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._every_s:
            return
        self._last = now
        if not self._is_tty:
            self.stream.write(self.line(report, event_t) + "\n")
            self.stream.flush()
            return
        fields = self._fields(report, event_t)
        if self._live is None:
            self._live = self._start_live(report.rounds, fields)
        progress, task = self._live
        progress.update(task, completed=report.rounds, **fields)
        progress.refresh()

    def _start_live(self, rounds: int, fields: dict[str, Any]) -> tuple[Progress, TaskID]:
        console = Console(file=self.stream, force_terminal=True)
        progress = Progress(
            TextColumn("{task.fields[rounds]}", markup=False),
            BarColumn(bar_width=self.width),
            TaskProgressColumn(),
            TextColumn(
                "sim {task.fields[sim]} | {task.fields[devices]} | {task.fields[samples]}"
                " | {task.fields[acked]}",
                markup=False,
            ),
            TimeRemainingColumn(),
            console=console,
            auto_refresh=False,  # redrawn from update(): no thread outlives the run
            redirect_stdout=False,
            redirect_stderr=False,
        )
        task = progress.add_task("sim", total=self.total_rounds, completed=rounds, **fields)
        progress.start()
        return progress, task

    def close(self, report: SimReport, event_t: float) -> None:
        self.update(report, event_t, force=True)
        if self._live is not None:
            self._live[0].stop()  # leaves the last frame on screen and the cursor shown
            self._live = None
