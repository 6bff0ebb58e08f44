"""A small valve fleet as logged batches, and what single-process detection makes of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from analytics import DetectionService, Detector, SeatLeakDetector
from sealscope import wire
from sealscope.alerts import AlertStore
from sealscope.memory_alerts import MemoryAlertStore
from sealscope.registry import Device
from tests.analytics.streams import C0, C_ALLOW, VALVE, valve_stream

Batch = tuple[Device, wire.Telemetry]

SAMPLES_PER_BATCH = 24


def fleet_batches(devices: int = 9, days: int = 20, seed: int = 0) -> list[Batch]:
    """Hourly samples, one uplink a day per device, in event-time order. Every third device
    leaks for ten days then recovers (raised, cleared); every third one after it degrades
    towards its class limit and stays there (raised, escalated)."""
    rng = np.random.default_rng(seed)
    n = days * 24
    out: list[tuple[float, str, Batch]] = []
    for k in range(devices):
        device = dataclasses.replace(VALVE, device_id=f"ACME-V-{k:04d}")
        c = np.full(n, C0)
        if k % 3 == 1:
            start = (4 + k % 5) * 24
            c[start : start + 10 * 24] = 10 * C0
        elif k % 3 == 2:
            growth = np.clip(np.arange(n) - (3 + k % 4) * 24, 0, None) / n
            c = C0 * np.exp(np.log(2 * C_ALLOW / C0) * growth)
        stream = valve_stream(rng, c, n)
        for seq, lo in enumerate(range(0, n, SAMPLES_PER_BATCH)):
            samples = [
                wire.Sample(
                    t=float(stream.t_s[i]),
                    p_in_kpa=float(stream.p_in_kpa[i]),
                    p_out_kpa=float(stream.p_out_kpa[i]),
                    leak_mm3s=float(stream.leak_mm3s[i]),
                    position_pct=float(stream.position_pct[i]),
                )
                for i in range(lo, min(lo + SAMPLES_PER_BATCH, n))
            ]
            telemetry = wire.Telemetry(v=1, seq=seq, samples=samples)
            out.append((samples[0].t, device.device_id, (device, telemetry)))
    out.sort(key=lambda x: (x[0], x[1]))
    return [b for _, _, b in out]


def seat_leak_only() -> list[Detector]:
    """A lighter detector set for tests that replay a fleet many times over."""
    return [SeatLeakDetector()]


def single_process(
    batches: list[Batch], detectors: Callable[[], Sequence[Detector]] | None = None
) -> MemoryAlertStore:
    """Single-process detection: every batch observed in event-time order, one flush each."""
    alerts = MemoryAlertStore()
    service = DetectionService(
        alerts=alerts, state_path=None, detectors=detectors() if detectors else None
    )
    for device, telemetry in sorted(batches, key=lambda b: (b[1].samples[0].t, b[0].device_id)):
        service.observe(device, telemetry.samples)
        service.flush()
    return alerts


def alert_record(store: AlertStore) -> list[tuple[Any, ...]]:
    """Every alert with its event times and the detector's actions on it, comparable."""
    out = []
    for a in store.list(limit=100_000):
        actions = tuple(e.action for e in reversed(store.events(a.id)) if e.actor == "detector")
        out.append(
            (
                a.device_id,
                a.cause,
                a.category,
                a.severity,
                a.status,
                a.opened_at,
                a.updated_at,
                a.resolved_at,
                tuple(sorted(actions)),
            )
        )
    return sorted(out)
