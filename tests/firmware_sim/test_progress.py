"""Runs without a broker: speed pacing arguments, the progress output, the reconciled report."""

from __future__ import annotations

import io
import re

import pytest

from firmware_sim import Fleet, FleetSpec, MemoryTransport, ProgressBar, SimReport, run_simulation

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_run_with_progress_bar_and_speed_reports_every_round() -> None:
    fleet = Fleet(FleetSpec.field(devices=50, seed=3))
    out = io.StringIO()
    transport = MemoryTransport()
    report = await run_simulation(
        fleet=fleet, uplinks=5, transport=transport, speed=1e9, progress_bar=out
    )
    lines = out.getvalue().splitlines()
    # into a file: plain lines, the first round's at once, the final state at close
    assert lines[0].startswith("round 1/5 (20%) | sim 2026-01-01 01:00 | 50 devices | ")
    assert lines[-1].startswith(
        "round 5/5 (100%) | sim 2026-01-01 05:00 | 50 devices | 3.0k samples"
    )
    assert lines[-1].endswith(f"| {report.copies_acked} msgs acked")
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert report.rounds == 5 and report.transport == "memory"
    # what the transport carried is what the radio let through, duplicates included
    assert len(transport.sent) - 50 == report.copies_published == fleet.counts.copies_delivered
    assert report.samples_generated == fleet.counts.samples_generated == 50 * 5 * 12
    assert "duplicate copies" in report.summary()


def test_progress_bar_into_a_pipe_writes_a_line_per_log_interval_only() -> None:
    out = io.StringIO()
    bar = ProgressBar(total_rounds=None, stream=out, log_interval_s=3600.0)
    report = SimReport(devices=7)
    for rounds in range(1, 4):
        report.rounds = rounds
        bar.update(report, 1_767_225_600.0 + rounds * 3600)
    bar.close(report, 1_767_225_600.0 + 3 * 3600)
    assert out.getvalue().splitlines() == [
        "round 1 | sim 2026-01-01 01:00 | 7 devices | 0 samples (0/s) | 0 msgs acked",
        "round 3 | sim 2026-01-01 03:00 | 7 devices | 0 samples (0/s) | 0 msgs acked",
    ]


async def test_progress_bar_on_a_terminal_draws_a_live_bar_and_ends_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # room for every column on one line
    term = _Terminal()
    fleet = Fleet(FleetSpec(devices=20, seed=1))
    report = await run_simulation(
        fleet=fleet, uplinks=3, transport=MemoryTransport(), speed=1e9, progress_bar=term
    )
    text = _ANSI.sub("", term.getvalue())
    assert text.endswith("\n")
    final = text.rstrip("\n").splitlines()[-1]
    assert "round 3/3" in final and "100%" in final and "20 devices" in final
    assert "sim 2026-01-01 00:30" in final
    assert f"{report.copies_acked} msgs acked" in final
