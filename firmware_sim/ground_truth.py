"""What the simulator knows and detectors must find out, computed from the fleet's state.

Per device: whether and when it starts to degrade and how, when it passes its limit
(valves: the leak at the ISO 5208 test ΔP over the class allowance, or the breakaway
torque over the actuator's rating; pumps: the seal leak over the seal limit), its batch,
its sensor faults so far, its clock error, coverage and projected battery life.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from firmware_sim import catalog, physics
from firmware_sim.state import FleetState
from firmware_sim.truth import DegradationMode, DeviceTruth, FleetTruth, SensorFault

__all__ = ["fleet_truth", "limit_crossing_t"]

F64 = npt.NDArray[np.float64]

_MODES: Final[tuple[DegradationMode, ...]] = (
    "none",
    "leak_gradual",
    "leak_step",
    "friction_gradual",
)


def limit_crossing_t(state: FleetState) -> F64:
    """When each device passes its limit: valves' leak at test ΔP over the ISO 5208
    class allowance (or friction over the actuator rating), pumps' seal leak at the
    nominal chamber pressure over the seal limit."""
    n = state.spec.devices
    chamber = state.p_suction_kpa + 0.3 * state.dp_nom_kpa
    reference = np.where(
        state.is_valve,
        state.leak_c0 * state.test_dp_kpa**state.leak_n,
        state.leak_c0 * chamber**state.leak_n,
    )
    limit = np.where(state.is_valve, state.allowable_mm3s, catalog.PUMP_SEAL_LIMIT_MM3S)
    ratio = limit / reference
    out = np.full(n, np.nan)
    f = state.spec.degrade_factor
    with np.errstate(divide="ignore", invalid="ignore"):
        gradual = state.onset_t + state.degrade_span_s * np.log(ratio) / np.log(f)
    out = np.where((state.mode == 1) & (ratio <= f), gradual, out)
    out = np.where((state.mode == 2) & (state.step_factor >= ratio), state.onset_t, out)
    everyone = np.arange(n)
    healthy = physics.required_torque_nm(state, everyone, state.p_nom_kpa, np.ones(n))
    need = state.rated_torque_nm / np.maximum(healthy, 1e-9)
    ff = state.spec.friction_factor
    friction_t = state.onset_t + state.degrade_span_s * (need - 1.0) / max(ff - 1.0, 1e-9)
    out = np.where((state.mode == 3) & (need <= ff), friction_t, out)
    return np.where(ratio <= 1.0, state.spec.start_t, out)


def _battery_empty_t(state: FleetState) -> F64:
    """Projected from the charge used so far per second of event time."""
    elapsed = max(state.now_t - state.spec.start_t, 1.0)
    rate = (state.battery_used_mah - state.battery_used0_mah) / elapsed
    with np.errstate(divide="ignore"):
        left_s = (state.spec.battery_mah - state.battery_used_mah) / rate
    return np.where(rate > 0, state.now_t + left_s, np.inf)


def fleet_truth(state: FleetState) -> FleetTruth:
    """Per-device ground truth as of ``state.now_t`` (sensor faults: those started by then)."""
    until = state.now_t
    crossing = limit_crossing_t(state)
    empty = _battery_empty_t(state) if state.uplinks_done else np.full(state.spec.devices, np.inf)
    out = []
    for i, device in enumerate(state.devices):
        valve = bool(state.is_valve[i])
        degrading = bool(state.degrading[i])
        out.append(
            DeviceTruth(
                device_id=device.device_id,
                kind=device.kind,
                is_degrading=degrading,
                onset_t=float(state.onset_t[i]) if degrading else None,
                leak_coeff_baseline=float(state.leak_c0[i]) if valve else None,
                allowable_leak_mm3s=float(state.allowable_mm3s[i]) if valve else None,
                mode=_MODES[state.mode[i]],
                batch=device.batch,
                is_bad_batch=bool(state.bad_batch[state.batch_code[i]]),
                limit_crossing_t=_finite(crossing[i]),
                leak_exponent=round(float(state.leak_n[i]), 4),
                sensor_faults=tuple(
                    # names from faults.SENSORS and FAULT_KINDS: the Literal values as str
                    SensorFault(s, k, a, b)  # type: ignore[arg-type]
                    for s, k, a, b in state.faults.episodes(i, until)
                ),
                clock_offset_s=float(state.clock_offset0_s[i]),
                clock_drift_ppm=round(float(state.clock_drift_ppm[i]), 3),
                rsrp_dbm=round(float(state.rsrp_base_dbm[i]), 1),
                battery_empty_t=_finite(empty[i]),
            )
        )
    return FleetTruth(tuple(out), until_t=until)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
