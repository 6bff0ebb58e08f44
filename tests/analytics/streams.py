"""Seeded synthetic valve telemetry for detector and service tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics import Detector, DeviceTable, SampleBatch
from sealscope.registry import Device

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z
HOUR = 3600.0
DAY = 24 * HOUR

# DN50 PN16 rate D: allowable 5 mm3/s at 1760 kPa, i.e. C = 5 / sqrt(1760) = 0.119,
# about 12x the healthy baseline below, so degradation alarms come well before the class.
C0 = 0.01
VALVE = Device(
    device_id="V-0",
    kind="valve",
    manufacturer="acme",
    model="BV-50",
    dn=50,
    pn=16,
    leakage_class="D",
)
C_ALLOW = 5.0 / np.sqrt(1.1 * 16 * 100)


@dataclass
class Stream:
    t_s: np.ndarray
    p_in_kpa: np.ndarray
    p_out_kpa: np.ndarray
    leak_mm3s: np.ndarray
    position_pct: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)

    def batch(self, slot: int, lo: int = 0, hi: int | None = None) -> SampleBatch:
        sl = slice(lo, hi)
        return SampleBatch.from_arrays(
            np.full(len(self.t_s[sl]), slot),
            self.t_s[sl],
            p_in_kpa=self.p_in_kpa[sl],
            p_out_kpa=self.p_out_kpa[sl],
            leak_mm3s=self.leak_mm3s[sl],
            position_pct=self.position_pct[sl],
        )


def valve_stream(
    rng: np.random.Generator,
    c_true: np.ndarray | float,
    n: int,
    *,
    leak_sigma: float = 0.15,
    resolution_mm3s: float = 0.01,
    open_fraction: float = 0.0,
    spike_rate: float = 0.0,
    seasonal: float = 0.0,
    dt_s: float = HOUR,
    t0: float = T0,
) -> Stream:
    """A closed valve under a daily demand cycle with transients, sensor noise and resolution.

    ``c_true`` is the true leak coefficient, scalar or per sample.
    """
    t = t0 + dt_s * np.arange(n)
    day_phase = 2 * np.pi * (t - t0) / DAY
    p_in = 600 + 150 * np.sin(day_phase) + rng.normal(0, 6, n)
    transient = rng.random(n) < 0.03  # water hammer, pump starts
    p_in[transient] += rng.normal(0, 250, transient.sum())
    p_in = np.clip(p_in, 0, None)
    p_out = 20 + 10 * rng.random(n)
    c = np.broadcast_to(np.asarray(c_true, dtype=float), (n,)).copy()
    if seasonal:
        c *= 1 + seasonal * np.sin(2 * np.pi * (t - t0) / (30 * DAY))
    dp = np.clip(p_in - p_out, 0, None)
    leak = c * np.sqrt(dp) * np.exp(rng.normal(0, leak_sigma, n))
    if spike_rate:
        spike = rng.random(n) < spike_rate
        leak[spike] *= rng.uniform(5, 20, spike.sum())
    leak = np.round(leak / resolution_mm3s) * resolution_mm3s
    position = np.round(rng.random(n), 1)  # closed: 0..1 % by the encoder
    opened = rng.random(n) < open_fraction
    position[opened] = rng.uniform(20, 100, opened.sum())
    leak[opened] = rng.uniform(1e3, 1e5, opened.sum())  # through-flow read by the leak sensor
    return Stream(t, p_in, p_out, leak, position)


def device_table(devices: Sequence[Device]) -> DeviceTable:
    table = DeviceTable()
    for slot, device in enumerate(devices):
        table.set(slot, device)
    return table


def feed(
    detector: Detector,
    streams: Sequence[Stream],
    *,
    chunk: int = 24,
    devices: DeviceTable | None = None,
) -> list[np.ndarray]:
    """Feed every device's stream chunk by chunk; returns the category array after each."""
    n = max(len(s) for s in streams)
    history = []
    for lo in range(0, n, chunk):
        batch = SampleBatch.concat([s.batch(i, lo, lo + chunk) for i, s in enumerate(streams)])
        detector.update(batch, devices)
        history.append(np.array(detector.verdicts().category))
    return history


def first_alarm(detector: Detector, stream: Stream, devices: DeviceTable | None = None) -> int:
    """Index of the sample at which slot 0 first leaves category NONE (-1 if never)."""
    for i in range(len(stream)):
        detector.update(stream.batch(0, i, i + 1), devices)
        if detector.verdicts().category[0]:
            return i
    return -1
