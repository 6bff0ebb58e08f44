"""Readings of a simulated fleet as arrays, decoded through the real wire decoders."""

from __future__ import annotations

import numpy as np

from firmware_sim import Fleet, FleetSpec
from sealscope.wire import SAMPLE_FIELDS, decode_event, decode_telemetry

NAMES = ("t", *SAMPLE_FIELDS)
# physics tests run on both: the numpy reference and the compiled kernel
ENGINES = ("numpy", "compiled")


def readings(fleet: Fleet, rounds: int) -> dict[str, np.ndarray]:
    """(devices, rounds * samples) arrays of every reading of every telemetry message the
    devices sent in ``rounds`` rounds (first copy, new samples only); NaN = absent."""
    n, s = fleet.spec.devices, fleet.spec.samples_per_uplink
    out = {name: np.full((n, rounds * s), np.nan) for name in NAMES}
    out["true_t"] = np.full((n, rounds * s), np.nan)
    for r in range(rounds):
        first = fleet.spec.start_t + fleet.phase_s + r * fleet.spec.uplink_span_s
        step = fleet.step()
        for d, kind, payload in zip(step.device.tolist(), step.kind, step.payload, strict=True):
            if kind != "telemetry":
                decode_event(payload)
                continue
            samples = decode_telemetry(payload).samples[-s:]  # the round's own samples
            for j, sample in enumerate(samples):
                col = r * s + j
                out["true_t"][d, col] = first[d] + j * fleet.spec.sample_interval_s
                for name in NAMES:
                    value = getattr(sample, name)
                    if value is not None:
                        out[name][d, col] = value
    return out


def hostile_field(devices: int) -> FleetSpec:
    """A field fleet that wears out, faults, retries, loses uplinks, overflows its buffer
    and runs batteries flat within a few dozen rounds."""
    return FleetSpec.field(
        devices=devices,
        seed=11,
        weibull_scale_days=40.0,
        degrade_span_days=(0.5, 2.0),
        sensor_faults_per_year=80.0,
        wrong_clock_share=0.2,
        buffer_samples=30,
        max_attempts=2,
        battery_mah=60.0,
    )
