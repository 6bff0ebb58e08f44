"""Runs without a broker: speed pacing arguments, the progress bar, the reconciled report."""

from __future__ import annotations

import io

import pytest

from firmware_sim import Fleet, FleetSpec, MemoryTransport, run_simulation


async def test_run_with_progress_bar_and_speed_reports_every_round() -> None:
    fleet = Fleet(FleetSpec.field(devices=50, seed=3))
    out = io.StringIO()
    transport = MemoryTransport()
    report = await run_simulation(
        fleet=fleet, uplinks=5, transport=transport, speed=1e9, progress_bar=out
    )
    text = out.getvalue()
    assert "[########################] 100% round 5/5" in text
    assert "sim 2026-01-01" in text and "samples" in text
    assert report.rounds == 5 and report.transport == "memory"
    # what the transport carried is what the radio let through, duplicates included
    assert len(transport.sent) - 50 == report.copies_published == fleet.counts.copies_delivered
    assert report.samples_generated == fleet.counts.samples_generated == 50 * 5 * 12
    assert "duplicate copies" in report.summary()


async def test_run_refuses_a_non_positive_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        await run_simulation(
            fleet=Fleet(FleetSpec(devices=2)), uplinks=1, transport=MemoryTransport(), speed=0
        )
