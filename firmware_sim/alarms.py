"""Alarms the device firmware raises on its own readings, and their ``Event`` payloads.

A leak over the limit (the ISO 5208 class allowance for valves, the seal limit for pumps)
in two readings in a row trips a latched leak alarm, re-armed below 80 % of the limit; a
battery under 3.3 V and a sensor that stops answering are reported once. An alarm goes
out at once, before the next wake-up's telemetry, and takes its own ``seq``.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from firmware_sim import catalog
from firmware_sim.sampling import ALL_FIELDS, PUMP_FIELDS, VALVE_FIELDS, rows_with_any
from firmware_sim.state import FleetState
from sealscope.wire import SCHEMA_VERSION, Event, Sample

__all__ = ["event_payloads", "local_events"]

F64 = npt.NDArray[np.float64]
_LOW_BATTERY_V: Final = 3.3


def local_events(
    state: FleetState,
    times: F64,
    cols: dict[str, F64],
    dropped: npt.NDArray[np.bool_],
    actuation: list[tuple[int, int, str, str]],
) -> list[tuple[int, int, str, str]]:
    """Alarms the firmware raises on its own readings: (device, slot, kind, detail)."""
    s = state.spec.samples_per_uplink
    limit = np.where(state.is_valve, state.allowable_mm3s, catalog.PUMP_SEAL_LIMIT_MM3S)
    leak = cols["leak_mm3s"]
    out = list(actuation)
    if state.spec.engine == "compiled":
        from firmware_sim import kernel

        dev, slot = kernel.slot_major(kernel.leak_trips(state, leak, limit))
        for i, j in zip(dev.tolist(), slot.tolist(), strict=True):
            out.append((i, j, "leak_alarm", f"leak over {limit[i]:.3g} mm3/s twice in a row"))
    else:
        _leak_alarms(state, leak, limit, out)
    low = (state.battery_v() < _LOW_BATTERY_V) & ~state.low_battery_sent
    for i in np.flatnonzero(low).tolist():
        out.append((i, s - 1, "low_battery", "battery below 3.3 V"))
    state.low_battery_sent |= low
    # a sensor that stops answering is something the firmware does notice
    for i in rows_with_any(dropped).tolist():
        j = int(np.argmax(dropped[i]))
        live = (state.faults.start_t[i] <= times[i, j]) & (state.faults.end_t[i] > times[i, j])
        k = int(np.argmax(live))
        if not state.dropout_reported[i, k]:
            state.dropout_reported[i, k] = True
            out.append((i, j, "sensor_fault", "sensor not responding"))
    out.sort(key=lambda e: (times[e[0], e[1]], e[0]))
    return [(i, j, kind, detail) for i, j, kind, detail in out]


def _leak_alarms(
    state: FleetState, leak: F64, limit: F64, out: list[tuple[int, int, str, str]]
) -> None:
    """The leak alarm, slot by slot over the devices (the numpy engine's reference)."""
    prev = state.over_limit_prev
    for j in range(leak.shape[1]):
        over = leak[:, j] > limit
        measured = ~np.isnan(leak[:, j])
        # two readings in a row over the limit: one spike does not wake the radio
        trip = over & np.where(measured, prev, False) & ~state.alarm_latched
        for i in np.flatnonzero(trip).tolist():
            out.append((i, j, "leak_alarm", f"leak over {limit[i]:.3g} mm3/s twice in a row"))
        state.alarm_latched |= trip
        rearm = measured & (leak[:, j] < 0.8 * limit)
        state.alarm_latched &= ~rearm
        prev = np.where(measured, over, prev)
    state.over_limit_prev = prev


def event_payloads(
    state: FleetState, events: list[tuple[int, int, str, str]], times: F64, cols: dict[str, F64]
) -> list[bytes]:
    """One ``Event`` per alarm, stamped by the device clock, each taking the next ``seq``."""
    dev = np.array([e[0] for e in events], dtype=np.int64)
    slot = np.array([e[1] for e in events], dtype=np.int64)
    # clocks and readings of all the round's alarms in one numpy pass each, not per alarm
    stamps = np.round(state.device_clock(times[dev, slot], dev), 3).tolist()
    values = {k: cols[k][dev, slot].tolist() for k in ALL_FIELDS}
    is_valve = state.is_valve[dev].tolist()
    out = []
    for e, (i, _, kind, detail) in enumerate(events):
        t = stamps[e]
        names = VALVE_FIELDS if is_valve[e] else PUMP_FIELDS
        reading = {k: values[k][e] for k in names if not math.isnan(values[k][e])}
        event = Event(
            v=SCHEMA_VERSION,
            seq=int(state.seq[i]),
            t=t,
            kind=kind,  # type: ignore[arg-type]  # physics and this module raise only EVENT_KINDS
            detail=detail,
            reading=Sample(t=t, **reading),
        )
        state.seq[i] = (state.seq[i] + 1) % 2**32
        out.append(msgspec.json.encode(event))
    return out
