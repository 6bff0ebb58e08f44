"""The physics of a whole round, compiled (numba): ``FleetSpec(engine="compiled")``.

The same model as ``physics`` (read its docstring for the physics), computed device by
device over all sample slots of a round in one compiled loop instead of one numpy pass
per slot and per quantity. Per sample it writes every field of the round's block (NaN
where a device does not measure it), already at sensor resolution, and it draws only
the noise a reading uses: an open valve's seat leak, a still actuator's torque or a
stopped pump's motor current cost no draw. Draws come from the fleet's own
``numpy.random.Generator`` (SFC64) through numba's port of numpy's samplers (the same
ziggurat normal), so the noise has the same distributions as the numpy engine's but
not the same stream: a seed gives other (equally likely) readings than with
``engine="numpy"``. ``tests/firmware_sim/test_engines.py`` holds the two engines to the
same statistics.

The radio's retries run here too (``transmit``), message by message, drawing only for
the attempts a message makes, and so do the modem's readings on waking (``wake_modem``).
Sensor faults and alarms stay in numpy: they touch few devices per round.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from firmware_sim import radio
from firmware_sim.encoding import DECIMALS
from firmware_sim.physics import UTC_OFFSET_S

__all__ = ["FIELD_ORDER", "round_physics", "rows_of", "wake_modem"]

F64 = npt.NDArray[np.float64]

# the block's field axis; the kernel's indices below follow it
FIELD_ORDER: Final = (
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
    "vib_mms",
    "flow_m3h",
    "speed_rpm",
)
_P_IN, _P_OUT, _LEAK, _POS, _STROKE, _TORQUE, _MOTOR, _TEMP = range(8)
_BATTERY, _RSRP, _SINR, _VIB, _FLOW, _SPEED = range(8, 14)
# 10**decimals per field, in FIELD_ORDER: the readings leave the kernel at sensor resolution
_SCALE: Final = np.array([10.0 ** DECIMALS[name] for name in FIELD_ORDER])
# The kernels compile with numpy's error model: a float division by zero gives inf or NaN
# instead of a check and a raise at every division (~14 % of the physics' time); no
# divisor here can be zero (scales, spans, rated torques and flows are positive).
_NAN = math.nan
_TAU = 2.0 * math.pi


@numba.njit(cache=True, inline="always")
def _cycles(t: float) -> tuple[float, float, float, float, float, float]:
    """sin and cos of the three cycles at ``t``: demand's daily and half-daily terms
    (``physics.demand``) and the season (``physics._seasonal_c``); a round steps them on
    by rotation (``_rotate``) instead of calling sin again at every slot."""
    local = (t + UTC_OFFSET_S) / 86_400.0
    a = _TAU * local - _TAU * 9.0 / 24.0
    b = 2.0 * _TAU * local - 2.0 * _TAU * 7.0 / 24.0
    c = _TAU * (t / 86_400.0 - 110.0) / 365.25
    return math.sin(a), math.cos(a), math.sin(b), math.cos(b), math.sin(c), math.cos(c)


@numba.njit(cache=True, inline="always")
def _rotate(sin: float, cos: float, sin_d: float, cos_d: float) -> tuple[float, float]:
    return sin * cos_d + cos * sin_d, cos * cos_d - sin * sin_d


@numba.njit(cache=True, inline="always")
def _demand(sin_day: float, sin_half: float) -> float:
    return min(max(0.5 + 0.3 * sin_day + 0.15 * sin_half, 0.0), 1.0)


@numba.njit(cache=True, inline="always")
def _progress(t: float, onset: float, span: float) -> float:
    return min(max((t - onset) / span, 0.0), 1.0)


@numba.njit(cache=True, inline="always")
def _leak_coeff(
    t: float, c0: float, mode: int, onset: float, span: float, step: float, log_df: float
) -> float:
    """``wear.Wear.leak_coeff_at`` for one device and time."""
    if (mode == 1 or mode == 2) and t >= onset:
        return c0 * math.exp(log_df * _progress(t, onset, span)) if mode == 1 else c0 * step
    return c0


@numba.njit(cache=True, inline="always")
def _power_law(c: float, x: float, n: float, log_noise: float) -> float:
    # c * x**n * exp(log_noise) in one exp; x**n is 0 at x = 0
    return c * math.exp(n * math.log(x) + log_noise) if x > 0.0 else 0.0


@numba.njit(cache=True, inline="always")
def _quantise(x: float, scale: float) -> float:
    # numpy's round(x, d): rint(x * 10**d) / 10**d, NaN through
    return np.rint(x * scale) / scale


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _valves(
    rng: Any,
    times: F64,
    out: F64,
    stalled: npt.NDArray[np.bool_],
    scale: F64,
    step: F64,
    valve_idx: npt.NDArray[np.int64],
    site_of: npt.NDArray[np.int64],
    site_noise: F64,
    p_nom: F64,
    hammer_p: float,
    is_open: npt.NDArray[np.bool_],
    open_pct: F64,
    target_pct: F64,
    is_scheduled: npt.NDArray[np.bool_],
    sched_open_h: F64,
    sched_len_h: F64,
    stroke_test_pending: npt.NDArray[np.bool_],
    seat_torque: F64,
    dp_friction: F64,
    dn: npt.NDArray[np.int64],
    rated_torque: F64,
    motor_idle: F64,
    motor_rated: F64,
    stroke_nominal: F64,
    temp_base: F64,
    leak_c0: F64,
    leak_n: F64,
    mode: npt.NDArray[np.int8],
    onset_t: F64,
    span_s: F64,
    step_factor: F64,
    degrade_factor: float,
    friction_factor: float,
) -> None:
    s = times.shape[1]
    log_df = math.log(degrade_factor)
    for i in valve_idx:
        p_site = p_nom[i] * (1.0 + 0.02 * site_noise[site_of[i]])
        d_m = dn[i] / 1000.0
        area_arm = 1000.0 * math.pi / 4.0 * d_m * d_m * d_m  # load torque per kPa of ΔP
        s1, c1, s2, c2, s3, c3 = _cycles(times[i, 0])
        since = 0.0
        for j in range(s):
            t = times[i, j]
            if j:
                s1, c1 = _rotate(s1, c1, step[0], step[1])
                s2, c2 = _rotate(s2, c2, step[2], step[3])
                s3, c3 = _rotate(s3, c3, step[4], step[5])
            d = _demand(s1, s2)
            p_line = p_site * (1.0 - 0.25 * d) * (1.0 + 0.005 * rng.standard_normal())
            if hammer_p > 0.0 and rng.random() < hammer_p:
                p_line += p_nom[i] * rng.uniform(0.1, 0.6)

            was_open = is_open[i]
            if is_scheduled[i]:
                # hours since the schedule's daily opening, stepped on instead of two
                # float modulos per sample
                if j:
                    since += (t - times[i, j - 1]) / 3600.0
                    if since >= 24.0:
                        since -= 24.0
                else:
                    since = ((t + UTC_OFFSET_S) / 3600.0 - sched_open_h[i]) % 24.0
                want_open = since < sched_len_h[i]
            else:
                u = rng.random()
                want_open = u > 0.25 if was_open else u < 0.03
            wants_move = want_open != was_open
            actuating = wants_move or stroke_test_pending[i]
            stroke_test_pending[i] = False
            stall = False
            torque = motor = stroke = _NAN
            if actuating:
                wear = 1.0
                if mode[i] == 3 and t >= onset_t[i]:
                    wear += (friction_factor - 1.0) * _progress(t, onset_t[i], span_s[i])
                dp_act = 0.3 * p_line if was_open else p_line
                required = seat_torque[i] * wear + dp_friction[i] * wear * dp_act * area_arm
                rated = rated_torque[i]
                stall = required > rated
                load = min(required / rated, 1.05)
                torque = min(required, 1.05 * rated) * (1.0 + 0.03 * rng.standard_normal())
                motor = motor_idle[i] + (motor_rated[i] - motor_idle[i]) * load
                motor *= 1.0 + 0.02 * rng.standard_normal()
                if not stall:
                    stroke = stroke_nominal[i] * (1.0 + 0.25 * load)
                    stroke *= 1.0 + 0.02 * rng.standard_normal()
            now_open = want_open if wants_move and not stall else was_open
            if wants_move and not stall and now_open:
                open_pct[i] = target_pct[i]
            is_open[i] = now_open
            stalled[i, j] = stall

            if now_open:
                drop = min(5.0 * (100.0 / max(open_pct[i], 1.0)) ** 2, 0.5 * p_line)
                p_out = p_line - drop + rng.standard_normal()
                leak = _NAN
            else:
                p_out = abs(2.0 + 1.5 * rng.standard_normal())  # downstream side drained
                dp = max(p_line - p_out, 0.0)
                c = _leak_coeff(
                    t, leak_c0[i], mode[i], onset_t[i], span_s[i], step_factor[i], log_df
                )
                leak = _power_law(c, dp, leak_n[i], 0.08 * rng.standard_normal())
                leak = max(leak + 0.0005 * rng.standard_normal(), 0.0)
            temp = temp_base[i] + 6.0 * s3 + 3.0 * (d - 0.5) + 0.2 * rng.standard_normal()

            out[_P_IN, i, j] = min(max(_quantise(p_line, scale[_P_IN]), -101.3), 99_999.0)
            out[_P_OUT, i, j] = _quantise(p_out, scale[_P_OUT])
            out[_LEAK, i, j] = max(_quantise(leak, scale[_LEAK]), 0.0) if leak == leak else leak
            out[_POS, i, j] = _quantise(open_pct[i] if now_open else 0.0, scale[_POS])
            out[_STROKE, i, j] = _quantise(stroke, scale[_STROKE])
            out[_TORQUE, i, j] = _quantise(torque, scale[_TORQUE])
            out[_MOTOR, i, j] = _quantise(motor, scale[_MOTOR])
            out[_TEMP, i, j] = _quantise(temp, scale[_TEMP])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pumps(
    rng: Any,
    times: F64,
    out: F64,
    scale: F64,
    step: F64,
    pump_idx: npt.NDArray[np.int64],
    is_running: npt.NDArray[np.bool_],
    n_nom: F64,
    q_nom: F64,
    dp_nom: F64,
    p_suction: F64,
    vib_base: F64,
    motor_nom: F64,
    temp_base: F64,
    leak_c0: F64,
    leak_n: F64,
    mode: npt.NDArray[np.int8],
    onset_t: F64,
    span_s: F64,
    step_factor: F64,
    degrade_factor: float,
) -> None:
    s = times.shape[1]
    log_df = math.log(degrade_factor)
    wear_unit = math.log(degrade_factor + 1e-9)
    for i in pump_idx:
        s1, c1, s2, c2, s3, c3 = _cycles(times[i, 0])
        for j in range(s):
            t = times[i, j]
            if j:
                s1, c1 = _rotate(s1, c1, step[0], step[1])
                s2, c2 = _rotate(s2, c2, step[2], step[3])
                s3, c3 = _rotate(s3, c3, step[4], step[5])
            d = _demand(s1, s2)
            u = rng.random()
            running = u > 0.01 if is_running[i] else u < 0.15
            is_running[i] = running
            ratio = 0.0
            flow = 0.0
            if running:
                ratio = (0.7 + 0.3 * d) * (1.0 + 0.003 * rng.standard_normal())
                flow = max(q_nom[i] * ratio * (1.0 + 0.02 * rng.standard_normal()), 0.0)
            speed = n_nom[i] * ratio
            p_in = p_suction[i] * (1.0 - 0.1 * ratio) + 2.0 * rng.standard_normal()
            rel = flow / (q_nom[i] * max(ratio, 1e-6))
            head = dp_nom[i] * ratio * ratio * (1.15 - 0.15 * rel * rel)
            p_out = p_in + head + 3.0 * rng.standard_normal()
            chamber = max(p_in + 0.3 * (p_out - p_in), 0.0)
            c0 = leak_c0[i]
            c = _leak_coeff(t, c0, mode[i], onset_t[i], span_s[i], step_factor[i], log_df)
            wear = 0.0 if c == c0 else min(max(math.log(c / c0) / wear_unit, 0.0), 1.0)
            leak = _power_law(
                c * (1.0 if running else 0.3), chamber, leak_n[i], 0.1 * rng.standard_normal()
            )
            if running:
                vib = vib_base[i] * ratio * ratio * (1.0 + 0.6 * wear)
                vib *= math.exp(0.08 * rng.standard_normal())
                motor = motor_nom[i] * ratio * ratio * ratio * (1.0 + 0.02 * rng.standard_normal())
            else:
                vib = abs(0.05 + 0.02 * rng.standard_normal())
                motor = 0.0
            temp = temp_base[i] + 6.0 * s3 + (6.0 + 8.0 * wear) * ratio
            temp += 0.2 * rng.standard_normal()

            out[_P_IN, i, j] = min(max(_quantise(p_in, scale[_P_IN]), -101.3), 99_999.0)
            out[_P_OUT, i, j] = _quantise(p_out, scale[_P_OUT])
            out[_LEAK, i, j] = max(_quantise(leak, scale[_LEAK]), 0.0)
            out[_MOTOR, i, j] = _quantise(max(motor, 0.0), scale[_MOTOR])
            out[_TEMP, i, j] = _quantise(temp, scale[_TEMP])
            out[_VIB, i, j] = _quantise(vib, scale[_VIB])
            out[_FLOW, i, j] = _quantise(flow, scale[_FLOW])
            out[_SPEED, i, j] = _quantise(speed, scale[_SPEED])


def _block(state: Any, shape: tuple[int, int, int]) -> F64:
    """The round's block: last round's again if nothing refers to it any more. A fresh
    block of 100,000 devices is ~130 MB of new pages, whose faults cost more than the
    physics written into them. A fresh block starts as NaN, the fields a device's kind
    does not measure; the kernel writes the others every round, and the modem's fields on
    the last slot are written for every device after it (``transmission.wake_modem``), so
    a reused block holds no reading of an earlier round."""
    return _spare(state, "_kernel_block", shape, np.nan)


def _spare(state: Any, name: str, shape: tuple[int, ...], fill: float) -> F64:
    """``state.<name>`` again if it has ``shape`` and no batch holds a view of it, else a
    fresh array of ``fill`` kept there for the next round."""
    spare = getattr(state, name, None)
    # referenced only by the state and by getrefcount's argument: no batch holds a view
    if spare is not None and spare.shape == shape and sys.getrefcount(spare) == 3:
        return spare
    fresh = np.full(shape, fill)
    setattr(state, name, fresh)
    return fresh


def rows_of(state: Any, cols: dict[str, F64], device: npt.NDArray[np.intp]) -> dict[str, F64]:
    """The round's readings of ``device`` only (a batch leaves out devices whose battery
    is flat), gathered in one compiled pass into a second block kept for the next round
    like the first: numpy's ``cols[name][device]`` per field allocates ~70 MB a round at
    50,000 devices and cost a quarter of the round once the first batteries ran flat."""
    block = state._kernel_block
    if any(cols[name].base is not block for name in FIELD_ORDER):
        raise ValueError("rows_of takes the readings of this round's block")
    rows = _spare(state, "_kernel_rows", block.shape, np.nan)  # every row in use is written
    _gather_rows(block, np.ascontiguousarray(device, dtype=np.intp), rows)
    return {name: rows[f, : device.size] for f, name in enumerate(FIELD_ORDER)}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gather_rows(block: F64, device: npt.NDArray[np.intp], out: F64) -> None:
    for f in range(block.shape[0]):
        for k in range(device.size):
            row = device[k]
            for j in range(block.shape[2]):  # element by element: a slice costs more here
                out[f, k, j] = block[f, row, j]


def round_physics(state: Any, times: F64) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Every device's readings at ``times`` (devices x slots) as one block, fields along
    the first axis (``FIELD_ORDER``), at sensor resolution; and where a valve's actuator
    stalled. Moves the valve, pump and stroke-test state on, as ``physics`` does."""
    spec, wear = state.spec, state.wear
    n, s = times.shape
    block = _block(state, (len(FIELD_ORDER), n, s))
    stalled = np.zeros((n, s), dtype=np.bool_)
    rate = spec.transients_per_day * spec.sample_interval_s / 86_400.0
    times = np.ascontiguousarray(times)
    # the cycles' angles advance this much from one sample slot to the next
    dt = spec.sample_interval_s
    angles = (_TAU * dt / 86_400.0, 2.0 * _TAU * dt / 86_400.0, _TAU * dt / 86_400.0 / 365.25)
    step = np.array([f(a) for a in angles for f in (math.sin, math.cos)])
    _valves(
        state.physics_rng,
        times,
        block,
        stalled,
        _SCALE,
        step,
        state.valve_idx,
        state.site_of,
        state.site_noise,
        state.p_nom_kpa,
        min(rate, 1.0),
        state.is_open,
        state.open_pct,
        state.target_pct,
        state.is_scheduled,
        state.sched_open_h,
        state.sched_len_h,
        state.stroke_test_pending,
        state.seat_torque_nm,
        state.dp_friction,
        state.dn,
        state.rated_torque_nm,
        state.motor_idle_a,
        state.motor_rated_a,
        state.stroke_nominal_s,
        state.temp_base_c,
        state.leak_c0,
        state.leak_n,
        wear.mode,
        wear.onset_t,
        wear.degrade_span_s,
        wear.step_factor,
        float(wear.degrade_factor),
        float(wear.friction_factor),
    )
    _pumps(
        state.physics_rng,
        times,
        block,
        _SCALE,
        step,
        state.pump_idx,
        state.is_running,
        state.n_nom_rpm,
        state.q_nom_m3h,
        state.dp_nom_kpa,
        state.p_suction_kpa,
        state.vib_base_mms,
        state.motor_nom_a,
        state.temp_base_c,
        state.leak_c0,
        state.leak_n,
        wear.mode,
        wear.onset_t,
        wear.degrade_span_s,
        wear.step_factor,
        float(wear.degrade_factor),
    )
    return block, stalled


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _leak_trips(
    leak: F64,
    limit: F64,
    over_prev: npt.NDArray[np.bool_],
    latched: npt.NDArray[np.bool_],
    trips: npt.NDArray[np.bool_],
) -> None:
    for i in range(leak.shape[0]):
        prev, on, lim = over_prev[i], latched[i], limit[i]
        for j in range(leak.shape[1]):
            x = leak[i, j]
            if x != x:
                continue  # not measured: the firmware's memory of the last reading stays
            over = x > lim
            if over and prev and not on:
                trips[i, j] = on = True
            if x < 0.8 * lim:
                on = False
            prev = over
        over_prev[i], latched[i] = prev, on


def slot_major(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(device, slot) of the set entries of a devices x slots mask, slot by slot and in
    device order within a slot: ``np.nonzero(mask.T)`` reversed, without its strided scan."""
    device, slot = np.divmod(np.flatnonzero(mask), mask.shape[1])
    order = np.lexsort((device, slot))
    return device[order], slot[order]


def leak_trips(state: Any, leak: F64, limit: F64) -> npt.NDArray[np.bool_]:
    """``alarms.local_events``' leak alarm, device by device: where it trips (devices x
    slots), moving the state's latch and last-reading memory on the same way."""
    trips = np.zeros(leak.shape, dtype=np.bool_)
    _leak_trips(leak, limit, state.over_limit_prev, state.alarm_latched, trips)
    return trips


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _times(first_t: F64, slot0: int, interval: float, out: F64) -> None:
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.rint((first_t[i] + (slot0 + j) * interval) * 1000.0) / 1000.0


def sample_times(state: Any) -> F64:
    """The round's true sample times, as ``sampling.take_samples`` rounds them."""
    spec = state.spec
    out = np.empty((spec.devices, spec.samples_per_uplink))
    first_t = spec.start_t + state.phase_s
    _times(first_t, state.uplinks_done * spec.samples_per_uplink, spec.sample_interval_s, out)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _clock(times: F64, drift_ppm: F64, base: F64, ref: F64, out: F64) -> None:
    for i in range(times.shape[0]):
        rate = drift_ppm[i] * 1e-6
        for j in range(times.shape[1]):
            t = times[i, j]
            out[i, j] = np.rint((t + base[i] + rate * (t - ref[i])) * 1000.0) / 1000.0


def device_clock(state: Any, times: F64) -> F64:
    """Every device's clock at ``times`` (devices x slots), to the millisecond: the
    arithmetic of ``FleetState.device_clock`` and ``np.round(.., 3)``, in one pass."""
    out = np.empty(times.shape)
    _clock(times, state.clock_drift_ppm, state.clock_base_s, state.clock_ref_t, out)
    return out


_leg_loss = numba.njit(cache=True, inline="always")(radio.leg_loss)
_sinr_db = numba.njit(cache=True, inline="always")(radio.sinr_db)
_battery_voltage = numba.njit(cache=True, inline="always")(radio.battery_voltage)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _wake(
    rng: Any,
    rsrp_base: F64,
    used_fraction: F64,
    rsrp_out: F64,
    sinr_out: F64,
    battery_out: F64,
    j: int,
    scale: F64,
) -> None:
    rsrp_lo, rsrp_hi = radio.RSRP_RANGE_DBM
    sinr_lo, sinr_hi = radio.SINR_RANGE_DB
    for i in range(rsrp_base.size):
        rsrp = rsrp_base[i] + radio.RSRP_READ_SD_DB * rng.standard_normal()
        rsrp = min(max(rsrp, rsrp_lo), rsrp_hi)
        sinr = _sinr_db(rsrp) + radio.SINR_READ_SD_DB * rng.standard_normal()
        sinr = min(max(sinr, sinr_lo), sinr_hi)
        rsrp_out[i, j] = _quantise(rsrp, scale[_RSRP])
        sinr_out[i, j] = _quantise(sinr, scale[_SINR])
        volts = float(_battery_voltage(used_fraction[i]))
        battery_out[i, j] = _quantise(volts, scale[_BATTERY])


def wake_modem(state: Any, cols: dict[str, F64]) -> None:
    """``transmission.wake_modem``'s readings in one pass over the devices, drawing each
    device's two radio readings in turn (another stream than the numpy engine's)."""
    _wake(
        state.radio_rng,
        state.rsrp_base_dbm,
        state.battery_used_mah / state.spec.battery_mah,
        cols["rsrp_dbm"],
        cols["sinr_db"],
        cols["battery_v"],
        state.spec.samples_per_uplink - 1,
        _SCALE,
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _transmit(
    rng: Any,
    rsrp_dbm: F64,
    max_attempts: int,
    copies: npt.NDArray[np.int64],
    attempts: npt.NDArray[np.int64],
    is_acked: npt.NDArray[np.bool_],
) -> None:
    for m in range(rsrp_dbm.shape[0]):
        got = 0
        made = max_attempts
        acked = False
        for a in range(max_attempts):
            loss = _leg_loss(rsrp_dbm[m] + radio.FADING_SD_DB * rng.standard_normal())
            up = rng.random() >= loss
            ack = rng.random() >= radio.ACK_LOSS_SHARE * loss
            got += up
            if up and ack:
                made, acked = a + 1, True
                break
        copies[m], attempts[m], is_acked[m] = got, made, acked


def transmit(
    rng: np.random.Generator, rsrp_dbm: F64, max_attempts: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``radio.transmit`` over the NB-IoT radio, message by message: the same leg-loss
    model and retries, drawing only for the attempts a message makes (most need one)."""
    m = rsrp_dbm.shape[0]
    copies = np.empty(m, dtype=np.int64)
    attempts = np.empty(m, dtype=np.int64)
    is_acked = np.empty(m, dtype=np.bool_)
    rsrp = np.ascontiguousarray(rsrp_dbm, dtype=np.float64)
    _transmit(rng, rsrp, max_attempts, copies, attempts, is_acked)
    return copies, attempts, is_acked
