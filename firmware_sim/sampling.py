"""One round of samples: every device's readings at its sample slots, then its payload.

Each device samples ``samples_per_uplink`` times at its own phase; the physics fills the
columns (one array per field, devices x slots), sensor faults corrupt them, and each
reading is rounded to its sensor's resolution. ``encode_round`` turns the columns into
the telemetry JSON bytes, stamped by the device's own (drifting) clock.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from firmware_sim import faults, physics
from firmware_sim.encoding import DECIMALS, encode_telemetry_rows
from firmware_sim.state import FleetState

__all__ = [
    "ALL_FIELDS",
    "PUMP_FIELDS",
    "VALVE_FIELDS",
    "encode_round",
    "rows_with_any",
    "take_samples",
]

F64 = npt.NDArray[np.float64]

VALVE_FIELDS: Final = (
    "p_in_kpa",
    "p_out_kpa",
    "leak_mm3s",
    "position_pct",
    "stroke_s",
    "torque_nm",
    "motor_a",
    "temp_c",
    "battery_v",
    "rsrp_dbm",
    "sinr_db",
)
PUMP_FIELDS: Final = (
    "p_in_kpa",
    "p_out_kpa",
    "leak_mm3s",
    "motor_a",
    "temp_c",
    "vib_mms",
    "flow_m3h",
    "speed_rpm",
    "battery_v",
    "rsrp_dbm",
    "sinr_db",
)
ALL_FIELDS: Final = tuple(dict.fromkeys(VALVE_FIELDS + PUMP_FIELDS))
_CHUNK: Final = 8192  # devices encoded per numpy pass: bounds the temporary arrays


def take_samples(
    state: FleetState,
) -> tuple[F64, dict[str, F64], npt.NDArray[np.bool_], list[tuple[int, int, str, str]]]:
    """The next round's sample times (true event time), readings by field, which readings
    a dropped-out sensor lost, and the actuation faults (device, slot, kind, detail)."""
    spec, n, s = state.spec, state.spec.devices, state.spec.samples_per_uplink
    slot0 = state.uplinks_done * s
    if spec.engine == "compiled":
        from firmware_sim import kernel  # numba loads only for fleets that use it

        return _take_compiled(state, kernel.sample_times(state))
    first_t = spec.start_t + state.phase_s[:, None]
    times: F64 = np.asarray(  # float64 already: no copy, only numpy's stubs need telling
        np.round(first_t + (slot0 + np.arange(s)) * spec.sample_interval_s, 3), dtype=np.float64
    )
    cols: dict[str, F64] = {name: np.full((n, s), np.nan) for name in ALL_FIELDS}
    actuation: list[tuple[int, int, str, str]] = []
    for j in range(s):
        physics.valve_slot(state, cols, j, times[:, j], state.physics_rng, actuation)
        physics.pump_slot(state, cols, j, times[:, j], state.physics_rng)
    dropped = faults.apply_faults(state.faults, state.fault_rng, times, cols)
    for name in ALL_FIELDS:  # sensor resolution, and what a sensor cannot read
        np.round(cols[name], DECIMALS[name], out=cols[name])
    np.maximum(cols["leak_mm3s"], 0.0, out=cols["leak_mm3s"])
    np.clip(cols["p_in_kpa"], -101.3, 99_999.0, out=cols["p_in_kpa"])
    return times, cols, dropped, actuation


def _take_compiled(
    state: FleetState, times: F64
) -> tuple[F64, dict[str, F64], npt.NDArray[np.bool_], list[tuple[int, int, str, str]]]:
    """``take_samples`` on the compiled engine: the readings leave the kernel at sensor
    resolution; the few devices a sensor fault touched are rounded again after it."""
    from firmware_sim import kernel  # numba loads only for fleets that use it

    block, stalled = kernel.round_physics(state, times)
    cols = {name: block[f] for f, name in enumerate(kernel.FIELD_ORDER)}
    dev, slot = kernel.slot_major(stalled)  # slot by slot, valves in order: as physics does
    actuation = [
        (i, j, "actuation_fault", "actuator stalled: torque switch tripped")
        for i, j in zip(dev.tolist(), slot.tolist(), strict=True)
    ]
    plan = state.faults
    t_lo, t_hi = times[:, 0], times[:, -1]
    hit = rows_with_any((plan.start_t <= t_hi[:, None]) & (plan.end_t > t_lo[:, None]))
    dropped = np.zeros(times.shape, dtype=bool)
    if hit.size:
        part = {name: cols[name][hit] for name in ("leak_mm3s", "p_in_kpa")}
        dropped[hit] = faults.apply_faults(plan, state.fault_rng, times[hit], part, rows=hit)
        leak = np.maximum(np.round(part["leak_mm3s"], DECIMALS["leak_mm3s"]), 0.0)
        p_in = np.clip(np.round(part["p_in_kpa"], DECIMALS["p_in_kpa"]), -101.3, 99_999.0)
        cols["leak_mm3s"][hit], cols["p_in_kpa"][hit] = leak, p_in
    return times, cols, dropped, actuation


def rows_with_any(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """``np.flatnonzero(mask.any(axis=1))`` of a devices x k mask with few entries set,
    from those entries: ``any(axis=1)`` scans every device (1.4 against 0.16 ms at 50,000)."""
    return np.unique(np.flatnonzero(mask) // mask.shape[1])


def encode_round(
    state: FleetState, times: F64, cols: dict[str, F64], seq: npt.NDArray[np.int64]
) -> list[bytes]:
    """Every device's telemetry payload, with its ``seq``, in device order."""
    n = state.spec.devices
    clock = state.round_clock(times)
    payloads: list[bytes] = [b""] * n
    for idx, names in ((state.valve_idx, VALVE_FIELDS), (state.pump_idx, PUMP_FIELDS)):
        for a in range(0, idx.size, _CHUNK):
            rows = idx[a : a + _CHUNK]
            chunk = encode_telemetry_rows(
                seq[rows], clock[rows], {k: cols[k][rows] for k in names}, names
            )
            for i, p in zip(rows.tolist(), chunk, strict=True):
                payloads[i] = p
    return payloads
