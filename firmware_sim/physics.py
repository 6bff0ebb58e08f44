"""One sample slot of valve and pump physics, vectorised over the devices of a kind.

Valves: line pressure follows the site's demand cycle (pressure sags at peak demand) with
transients (water hammer); valves open and close on a daily schedule or at random
(operator and process demand), and on commands (a self-test stroke). Each actuation needs a
torque = (seat/packing torque) x friction wear + ΔP load torque; the actuator's motor
current follows the torque, its stroke slows under load, and above its rating it stalls
(torque switch trip): the valve does not move and the device raises an actuation fault.
A closed valve leaks through its seat Q = C·ΔPⁿ (C grows when the seat degrades), read by
a sensor with log-normal noise, a small zero noise and 0.001 mm³/s resolution.

Pumps: variable-speed centrifugal pumps following demand (affinity laws: flow ∝ n,
head ∝ n², power ∝ n³), stopping now and then; the mechanical seal leaks C·p_chamberⁿ
(more when its faces wear), faces run warmer and vibration rises as it degrades.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from firmware_sim.spec import FleetSpec

__all__ = ["PhysicalFleet", "demand", "pump_slot", "required_torque_nm", "valve_slot"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


class PhysicalFleet(Protocol):
    """The device arrays the physics reads (and the few it moves: valve positions, pump
    running, pending stroke tests), one slot per device; ``FleetState`` provides them."""

    spec: FleetSpec
    valve_idx: I64
    pump_idx: I64
    site_of: I64
    site_noise: F64
    dn: I64
    p_nom_kpa: F64
    temp_base_c: F64
    leak_n: F64
    leak_c0: F64
    # valves and their actuators
    is_open: B
    open_pct: F64
    target_pct: F64
    is_scheduled: B
    sched_open_h: F64
    sched_len_h: F64
    stroke_test_pending: B
    seat_torque_nm: F64
    dp_friction: F64
    rated_torque_nm: F64
    motor_idle_a: F64
    motor_rated_a: F64
    stroke_nominal_s: F64
    # pumps
    is_running: B
    n_nom_rpm: F64
    q_nom_m3h: F64
    dp_nom_kpa: F64
    p_suction_kpa: F64
    vib_base_mms: F64
    motor_nom_a: F64

    def leak_coeff_at(self, t: F64, idx: I64) -> F64: ...

    def friction_multiplier(self, t: F64, idx: I64) -> F64: ...


UTC_OFFSET_S = 8 * 3600  # the simulated sites keep China Standard Time


def demand(t: F64) -> F64:
    """Water demand in [0, 1] by local hour: morning and evening peaks, quiet nights."""
    hour = ((t + UTC_OFFSET_S) % 86_400.0) / 3600.0
    d = (
        0.5
        + 0.3 * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
        + 0.15 * np.sin(4 * np.pi * (hour - 7.0) / 24.0)
    )
    return np.clip(d, 0.0, 1.0)


def _seasonal_c(t: F64) -> F64:
    day = (t / 86_400.0) % 365.25
    return 6.0 * np.sin(2 * np.pi * (day - 110.0) / 365.25)


def required_torque_nm(
    fleet: PhysicalFleet, v: npt.NDArray[np.int64], dp_kpa: F64, wear: F64
) -> F64:
    """Breakaway torque of valves ``v`` against ``dp_kpa`` with friction multiplier ``wear``."""
    d_m = fleet.dn[v] / 1000.0
    load_n = dp_kpa * 1000.0 * np.pi / 4.0 * d_m**2
    return fleet.seat_torque_nm[v] * wear + fleet.dp_friction[v] * wear * load_n * d_m


def valve_slot(
    fleet: PhysicalFleet,
    cols: dict[str, F64],
    j: int,
    t: F64,
    rng: np.random.Generator,
    events: list[tuple[int, int, str, str]],
) -> None:
    """Fill column ``j`` of the valve rows of ``cols``; append (device, slot, kind, detail)
    for actuation faults."""
    v = fleet.valve_idx
    k = v.size
    if not k:
        return
    tv = t[v]
    spec = fleet.spec
    d = demand(tv)
    site = fleet.site_of[v]
    p_line = fleet.p_nom_kpa[v] * (1.0 - 0.25 * d) * (1.0 + 0.02 * fleet.site_noise[site])
    p_line = p_line * (1.0 + rng.normal(0.0, 0.005, k))
    if spec.transients_per_day > 0:
        rate = spec.transients_per_day * spec.sample_interval_s / 86_400.0
        hammer = rng.random(k) < min(rate, 1.0)
        p_line = p_line + hammer * fleet.p_nom_kpa[v] * rng.uniform(0.1, 0.6, k)

    # open/close: schedule, random demand, commanded stroke tests
    was_open = fleet.is_open[v]
    u = rng.random(k)
    random_next = np.where(was_open, u > 0.25, u < 0.03)
    hour = ((tv + UTC_OFFSET_S) % 86_400.0) / 3600.0
    in_window = ((hour - fleet.sched_open_h[v]) % 24.0) < fleet.sched_len_h[v]
    want_open = np.where(fleet.is_scheduled[v], in_window, random_next)
    wants_move = want_open != was_open
    stroke_test = fleet.stroke_test_pending[v]
    fleet.stroke_test_pending[v] = False
    actuating = wants_move | stroke_test

    # actuation physics at the ΔP the stroke starts against
    dp_act = np.where(was_open, 0.3 * p_line, p_line)
    wear = fleet.friction_multiplier(tv, v)
    torque_req = required_torque_nm(fleet, v, dp_act, wear)
    rated = fleet.rated_torque_nm[v]
    stalls = actuating & (torque_req > rated)
    moves = wants_move & ~stalls
    now_open = np.where(moves, want_open, was_open)
    opening = moves & now_open
    fleet.open_pct[v] = np.where(opening, fleet.target_pct[v], fleet.open_pct[v])
    fleet.is_open[v] = now_open

    load = np.minimum(torque_req / rated, 1.05)
    torque = np.minimum(torque_req, 1.05 * rated) * (1.0 + rng.normal(0.0, 0.03, k))
    motor = fleet.motor_idle_a[v] + (fleet.motor_rated_a[v] - fleet.motor_idle_a[v]) * load
    motor = motor * (1.0 + rng.normal(0.0, 0.02, k))
    stroke = fleet.stroke_nominal_s[v] * (1.0 + 0.25 * load) * (1.0 + rng.normal(0.0, 0.02, k))
    reported = actuating
    cols["stroke_s"][v[reported], j] = np.where(stalls, np.nan, stroke)[reported]
    cols["torque_nm"][v[reported], j] = torque[reported]
    cols["motor_a"][v[reported], j] = motor[reported]
    for i in v[stalls].tolist():
        events.append((i, j, "actuation_fault", "actuator stalled: torque switch tripped"))

    p_out_open = p_line - np.minimum(
        5.0 * (100.0 / np.maximum(fleet.open_pct[v], 1.0)) ** 2, 0.5 * p_line
    )
    p_out_open = p_out_open + rng.normal(0.0, 1.0, k)
    p_out_closed = np.abs(rng.normal(2.0, 1.5, k))  # downstream side drained
    p_out = np.where(now_open, p_out_open, p_out_closed)
    dp = np.maximum(p_line - p_out, 0.0)

    c = fleet.leak_coeff_at(tv, v)
    leak = c * dp ** fleet.leak_n[v] * np.exp(rng.normal(0.0, 0.08, k))
    leak = np.maximum(leak + rng.normal(0.0, 0.0005, k), 0.0)
    cols["p_in_kpa"][v, j] = p_line
    cols["p_out_kpa"][v, j] = p_out
    cols["position_pct"][v, j] = np.where(now_open, fleet.open_pct[v], 0.0)
    cols["leak_mm3s"][v, j] = np.where(now_open, np.nan, leak)
    temp = fleet.temp_base_c[v] + _seasonal_c(tv) + 3.0 * (d - 0.5) + rng.normal(0.0, 0.2, k)
    cols["temp_c"][v, j] = temp


def pump_slot(
    fleet: PhysicalFleet, cols: dict[str, F64], j: int, t: F64, rng: np.random.Generator
) -> None:
    p = fleet.pump_idx
    k = p.size
    if not k:
        return
    tp = t[p]
    d = demand(tp)
    was_running = fleet.is_running[p]
    u = rng.random(k)
    running = np.where(was_running, u > 0.01, u < 0.15)
    fleet.is_running[p] = running

    ratio = running * (0.7 + 0.3 * d) * (1.0 + rng.normal(0.0, 0.003, k))
    speed = fleet.n_nom_rpm[p] * ratio
    flow = np.maximum(fleet.q_nom_m3h[p] * ratio * (1.0 + rng.normal(0.0, 0.02, k)), 0.0)
    p_in = fleet.p_suction_kpa[p] * (1.0 - 0.1 * ratio) + rng.normal(0.0, 2.0, k)
    head = (
        fleet.dp_nom_kpa[p]
        * ratio**2
        * (1.15 - 0.15 * (flow / (fleet.q_nom_m3h[p] * np.maximum(ratio, 1e-6))) ** 2)
    )
    p_out = p_in + head + rng.normal(0.0, 3.0, k)
    chamber = np.maximum(p_in + 0.3 * (p_out - p_in), 0.0)
    c = fleet.leak_coeff_at(tp, p)
    wear = np.log(c / fleet.leak_c0[p]) / np.log(fleet.spec.degrade_factor + 1e-9)
    wear = np.clip(np.nan_to_num(wear), 0.0, 1.0)
    leak = c * chamber ** fleet.leak_n[p] * np.where(running, 1.0, 0.3)
    leak = leak * np.exp(rng.normal(0.0, 0.1, k))
    vib = np.where(
        running,
        fleet.vib_base_mms[p] * ratio**2 * (1.0 + 0.6 * wear) * np.exp(rng.normal(0.0, 0.08, k)),
        np.abs(rng.normal(0.05, 0.02, k)),
    )
    temp = fleet.temp_base_c[p] + _seasonal_c(tp) + (6.0 + 8.0 * wear) * ratio
    temp = temp + rng.normal(0.0, 0.2, k)
    motor = np.where(running, fleet.motor_nom_a[p] * ratio**3 * (1 + rng.normal(0.0, 0.02, k)), 0.0)
    cols["p_in_kpa"][p, j] = p_in
    cols["p_out_kpa"][p, j] = p_out
    cols["flow_m3h"][p, j] = flow
    cols["speed_rpm"][p, j] = speed
    cols["leak_mm3s"][p, j] = leak
    cols["vib_mms"][p, j] = vib
    cols["temp_c"][p, j] = temp
    cols["motor_a"][p, j] = np.maximum(motor, 0.0)
