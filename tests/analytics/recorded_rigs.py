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
