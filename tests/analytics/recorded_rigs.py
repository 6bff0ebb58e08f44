"""Recorded-style test-loop data, built from physics, written as a rig's CSV export.

A centrifugal pump loop at 1 Hz (after descriptions of public pump test rigs: suction
and discharge transmitters in bar with 0.1 bar steps, a flow meter with integer l/min
output, motor current, casing vibration, fluid and casing temperature that warm a couple
of degrees over a run), and a valve with its actuator on a seat-test bench (leak rate
through the closed seat going with ΔP^0.5, actuator current and gearbox vibration).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

T0 = 1_717_200_000.0
PUMP_HEADER = ["time", "p_suction_bar", "p_discharge_bar", "flow_lmin", "motor_a", "vib_mms",
               "fluid_c", "casing_c"]  # fmt: skip


def pump_loop(
    n: int = 20_000,
    *,
    seed: int = 0,
    drift_c: float = 2.0,
    fault: tuple[int, int] | None = None,
    discharge_drop_bar: float = 0.0,
    warmup_rows: int = 0,
) -> np.ndarray:
    """Columns as PUMP_HEADER (time in epoch s). ``fault``: bearing damage (vibration and
    current up); ``discharge_drop_bar`` over ``fault`` instead: a worn impeller's head
    loss seen only by the quantised discharge transmitter."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    load = 0.8 + 0.1 * np.sin(2 * np.pi * i / 900) + rng.normal(0, 0.01, n)
    flow = 200 * load + rng.normal(0, 0.6, n)
    p_dis = 6.0 + 2.0 * load + rng.normal(0, 0.03, n)
    p_suc = 1.0 + rng.normal(0, 0.02, n)
    motor = 20 + 12 * load + rng.normal(0, 0.15, n)
    vib = 1.8 + 0.6 * load + rng.normal(0, 0.08, n)
    fluid = 35 + drift_c * i / n + rng.normal(0, 0.02, n)
    casing = 30 + 0.8 * drift_c * i / n + rng.normal(0, 0.02, n)
    if fault is not None:
        lo, hi = fault
        if discharge_drop_bar:
            p_dis[lo:hi] -= discharge_drop_bar
        else:
            vib[lo:hi] *= 1.6
            motor[lo:hi] += 1.5
    if warmup_rows:
        settle = np.exp(-i / (warmup_rows / 4))
        fluid = fluid - (fluid - 0.0) * settle  # the PT100 reads 0 until it is on
        flow = flow * (1 - settle)  # the meter's filter settling
    return np.column_stack([
        T0 + i, np.round(p_suc, 1), np.round(p_dis, 1), np.round(flow), motor.round(2),
        vib.round(3), fluid.round(2), casing.round(2),
    ])  # fmt: skip


VALVE_HEADER = ["time", "P1_bar", "P2_bar", "leak_mlmin", "position", "motor_a", "vib_mms",
                "temp_c"]  # fmt: skip


def valve_bench(
    n: int = 6000,
    *,
    seed: int = 0,
    seal_leak_from: int | None = None,
    gear_damage_from: int | None = None,
) -> np.ndarray:
    """A closed valve held against a cycling upstream pressure; the leak through the seat
    is C ΔP^0.5. Inner-seal leak: C grows fourfold. Gear damage: the actuator's gearbox
    vibrates more and draws more current; the seat is untouched."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    p1 = 10 + 4 * np.sin(2 * np.pi * i / 600) + rng.normal(0, 0.05, n)
    p2 = 1.0 + rng.normal(0, 0.02, n)
    c = np.full(n, 0.004)
    if seal_leak_from is not None:
        c[seal_leak_from:] *= 4.0
    leak_mm3s = c * np.sqrt((p1 - p2) * 100) * np.exp(rng.normal(0, 0.1, n))
    motor = 0.8 + rng.normal(0, 0.03, n)
    vib = 0.5 + rng.normal(0, 0.04, n)
    if gear_damage_from is not None:
        motor[gear_damage_from:] *= 1.25
        vib[gear_damage_from:] *= 2.0
    temp = 22 + rng.normal(0, 0.1, n)
    return np.column_stack([
        T0 + 10 * i, p1.round(3), p2.round(3), (leak_mm3s * 0.06).round(5), np.zeros(n),
        motor.round(3), vib.round(3), temp.round(2),
    ])  # fmt: skip


def write_csv(path: Path, header: list[str], data: np.ndarray) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([f"{v:.10g}" for v in row] for row in data.tolist())
    return path


def read_flags(path: Path) -> tuple[np.ndarray, list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([int(r[-2]) for r in rows]), [r[-1] for r in rows]


HOLD_HEADER = ["time", "P1_bar", "P2_bar", "position", "gas_c", "stroke_s"]
P_ATM = 101.325


def hold_bench(
    cycles: int = 12,
    *,
    seed: int = 0,
    medium: str = "gas",
    volume_l: float = 2.0,
    bulk_mpa: float = 1500.0,
    p_kpa: float = 600.0,
    hold_s: int = 600,
    leak_mm3s: float = 5.0,
    leak_from: int | None = None,
    leak_after_mm3s: float = 150.0,
    warming_k: float = 0.0,
    drift_from: int = 0,
    slow_stroke_from: int | None = None,
) -> np.ndarray:
    """A closed-valve pressure-decay bench at 1 Hz (after public descriptions of ISO 5208 /
    EN 12266 decay tests): each cycle the valve opens, flows, closes (its stroke time in
    ``stroke_s``), the upstream volume is filled to ``p_kpa`` and blocked in, and held
    ``hold_s`` with the downstream vented. Through the seat leaks ``leak_mm3s`` at
    ``p_kpa`` (orifice: ∝ √ΔP; gas as volume at atmospheric pressure), from cycle
    ``leak_from`` on ``leak_after_mm3s``. The gas (ideal, isochoric) or liquid (bulk
    modulus ``bulk_mpa``) volume warms by ``warming_k`` per hold from cycle ``drift_from``
    on (negative: cools), after a gas's compression heating settles. Upstream
    transmitter in 0.01 bar steps, temperature in 0.01 K."""
    rng = np.random.default_rng(seed)
    v_mm3 = volume_l * 1e6
    t_all, p1_all, p2_all, pos_all, temp_all, stroke_all = [], [], [], [], [], []
    t0 = T0
    for c in range(cycles):
        stroke = 40.0 if slow_stroke_from is not None and c >= slow_stroke_from else 5.0
        stroke += rng.normal(0, 0.2)
        # open phase: stroke open, flow 60 s, stroke closed
        n_open = int(2 * stroke) + 60
        k = np.arange(n_open)
        pos = np.clip(np.minimum(k / stroke, (n_open - k) / stroke), 0, 1) * 100
        p1 = p_kpa - 20 * pos / 100
        p2 = 50 * pos / 100
        temp = np.full(n_open, 20.0)
        # the hold
        q = leak_after_mm3s if leak_from is not None and c >= leak_from else leak_mm3s
        coef = q / np.sqrt(p_kpa)
        h = np.arange(hold_s)
        warm = warming_k if c >= drift_from else 0.0
        heat = 0.3 if medium == "gas" else 0.0  # a liquid barely warms when pressurised
        th = 20.0 + heat * np.exp(-h / 15.0) + warm * h / hold_s
        p = np.empty(hold_s)
        p_g = p_kpa
        for i in range(hold_s):
            p[i] = p_g
            flow = coef * np.sqrt(max(p_g, 0.0))  # mm³/s through the seat
            dtemp = th[min(i + 1, hold_s - 1)] - th[i]
            if medium == "gas":
                p_abs = p_g + P_ATM
                p_abs += -flow * P_ATM / v_mm3 + p_abs * dtemp / (th[i] + 273.15)
                p_g = p_abs - P_ATM
            else:
                thermal = 400.0  # kPa/K of water held in a steel pipe
                p_g += -flow * bulk_mpa * 1000 / v_mm3 + thermal * dtemp
        t_all.append(t0 + np.arange(n_open + hold_s))
        p1_all.append(np.r_[p1, p])
        p2_all.append(np.r_[p2, np.zeros(hold_s)])
        pos_all.append(np.r_[pos, np.zeros(hold_s)])
        temp_all.append(np.r_[temp, th])
        stroke_all.append(np.full(n_open + hold_s, stroke))
        t0 += n_open + hold_s
    t = np.concatenate(t_all)
    n = len(t)
    p1 = np.concatenate(p1_all) + rng.normal(0, 0.3, n)
    p2 = np.concatenate(p2_all) + rng.normal(0, 0.3, n)
    temp = np.concatenate(temp_all) + rng.normal(0, 0.02, n)
    return np.column_stack([
        t, np.round(p1 / 1.0) / 100, np.round(p2 / 1.0) / 100,
        np.concatenate(pos_all).round(1), temp.round(2), np.concatenate(stroke_all).round(2),
    ])  # fmt: skip
