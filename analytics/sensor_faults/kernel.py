"""The sensor-fault screens compiled (numba): ``SensorFaultDetector.engine == "compiled"``.

The same screens as the numpy modules next to it (read them for what each judges and
why), computed device by device, row by row in event-time order, in one compiled loop
over the batch instead of one numpy pass per screen and per sample slot. The state
arrays are the detector's own, updated in place: the format does not change.

The arithmetic follows numpy's to the bit, in numpy's dtypes (NEP 50: a Python float
meets a float32 array as a float32, hence the float32 constants below). Two steps stay in
numpy, as they are rare and lean on numpy routines (sort-based robust level, a 3x3
inverse): a pressure residual's commissioning baseline once it is full, and a leak
block's fit once it is complete. The kernel stops a device at such a row (``pause_row``,
``pause_why``) before the row's last part (the leak sensor's withheld readings and the
device's category, which a completed block may change); the caller does the numpy step
and runs the kernel again from that row (``resume``).

What may differ from numpy: the logarithms. The kernel's come from the C library, numpy's
float32 log from its own SIMD code, so the missing screen's run length (a ceiling of a
ratio of logs) and the stuck screen's run probability (compared with ``log(alpha)``) could
fall on the other side of an integer or of the threshold, if they ever landed within a
few ulps of it. Neither is kept in the state; the leak fit's logs are taken by numpy
(``LeakDriftScreen.prepare``) and passed in.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from analytics.sensor_faults.spikes import batcher

__all__ = ["PAUSE_BLOCK", "leak_pressure", "scratch", "screen_rows"]

F64 = npt.NDArray[np.float64]

# ``pause_why`` bits: a pressure residual's baseline is full (bit j), a leak block is full
PAUSE_BLOCK: Final = 4

_F0: Final = np.float32(0.0)
_F1: Final = np.float32(1.0)
_F2: Final = np.float32(2.0)
_F_HALF: Final = np.float32(0.5)
_F_5: Final = np.float32(5.0)
_F_TENTH: Final = np.float32(0.1)
_F_MAD: Final = np.float32(1.4826)
_F_REL: Final = np.float32(1e-3)
_F_ABS: Final = np.float32(1e-9)
_HALF_LOG_2PI: Final = 0.5 * math.log(2 * math.pi)
# the comparator networks of the default spike window (7) and of its steps, as constants
# of the compiled code: sorts by them unroll, their values kept in registers
_NET_7: Final = np.array(batcher(7), dtype=np.int64).reshape(-1, 2)
_NET_6: Final = np.array(batcher(6), dtype=np.int64).reshape(-1, 2)
_SPIKING, _DRIFTING, _MISSING, _STUCK = 1, 2, 3, 4


@numba.njit(cache=True, inline="always")
def _lgamma(x: float) -> float:
    """``stuck._lgamma``, one value."""
    shift = 0.0
    for i in range(8):
        shift += math.log(x + i)
    z = x + 8.0
    zi = 1.0 / z
    z2 = zi * zi
    series = zi * (1 / 12 - z2 * (1 / 360 - z2 * (1 / 1260 - z2 / 1680)))
    return (z - 0.5) * math.log(z) - z + _HALF_LOG_2PI + series - shift


@numba.njit(cache=True, inline="always")
def _stuck_log_p(rep: float, pairs: float, run: float) -> float:
    """``stuck.stuck_log_p``, one value."""
    a = rep + 1.0
    b = max(pairs - rep, 0.0) + 1.0
    return _lgamma(a + run) - _lgamma(a) - _lgamma(a + b + run) + _lgamma(a + b)


@numba.njit(cache=True, inline="always")
def _sort(a: np.ndarray, net: np.ndarray) -> None:
    """Sort ``a`` in place by the comparator network ``net`` (pairs of indices, from
    ``spikes.batcher``): no branch to mispredict, unlike an insertion sort."""
    for m in range(len(net)):
        i, j = net[m, 0], net[m, 1]
        lo, hi = a[i], a[j]
        a[i] = min(lo, hi)
        a[j] = max(lo, hi)


@numba.njit(cache=True, inline="always")
def _is_spike(
    windows: np.ndarray, w: int, d: int, c: int, x: np.float32, sc: np.float32, q: int,
    k32: np.float32, tmp: np.ndarray, dev: np.ndarray, net: np.ndarray, net_steps: np.ndarray,
) -> bool:  # fmt: skip
    """``SpikeScreen.step``'s outlier test of reading ``x`` against the window
    ``windows[d, c]`` (``w`` readings, oldest first), whose step scale is ``sc``.

    The order statistics of ``spikes.window_stats`` (median, MAD, ``q``-th smallest
    step) by sorting, which gives the same values as its comparator network; the scale is
    the largest of three floors, so a reading within ``k`` of the first floors worked out
    is no outlier whatever the others (float32 rounding is monotone): most stop there.
    """
    for i in range(w):
        tmp[i] = windows[d, c, i]
    _sort(tmp, net)
    h = w // 2
    med = tmp[h] if w % 2 else _F_HALF * (tmp[h - 1] + tmp[h])
    off = abs(x - med)
    floor = max(sc, _F_REL * abs(med) + _F_ABS)
    if not off > k32 * floor:
        return False
    for i in range(w):
        dev[i] = abs(tmp[i] - med)
    _sort(dev, net)
    mad = dev[h] if w % 2 else _F_HALF * (dev[h - 1] + dev[h])
    if not off > k32 * max(_F_MAD * mad, floor):
        return False
    for i in range(w - 1):
        tmp[i] = abs(windows[d, c, i + 1] - windows[d, c, i])
    _sort(tmp[: w - 1], net_steps)
    low = tmp[q]
    return off > k32 * max(max(_F_MAD * mad, low), floor)


@numba.njit(cache=True, inline="always")
def _spike_step(
    window: int, d: int, c: int, moved: bool, present: bool, xc: np.float32, tr: bool,
    trained: bool, fault0: int, spike_window: np.ndarray, spike_window_n: np.ndarray,
    step_scale: np.ndarray, hampel_n: np.ndarray, hampel_out_n: np.ndarray,
    spike_ewma: np.ndarray, q: int, k32: np.float32, half_rate32: np.float32,
    spike_alpha32: np.float32, rate: float, tmp: np.ndarray, dev: np.ndarray,
    net: np.ndarray, net_steps: np.ndarray,
) -> tuple[bool, bool]:  # fmt: skip
    """``SpikeScreen.step`` of channel ``c`` of device ``d``, reading ``xc``: (is it an
    outlier, is the channel spiking)."""
    kk = window // 2 + 1  # readings whose span holds the median (``_median_bounds``)
    rn = 0 if moved else spike_window_n[d, c]
    sc = step_scale[d, c]
    judged = present and rn >= window
    spike = False
    if judged:
        lo_a = spike_window[d, c, 0]
        hi_a = lo_a
        for m in range(1, kk):
            lo_a = min(lo_a, spike_window[d, c, m])
            hi_a = max(hi_a, spike_window[d, c, m])
        lo_b = spike_window[d, c, window - kk]
        hi_b = lo_b
        for m in range(window - kk + 1, window):
            lo_b = min(lo_b, spike_window[d, c, m])
            hi_b = max(hi_b, spike_window[d, c, m])
        # numpy's test (the span of x and those bounds above k x the step), and, as tight
        # and as exact, x's distance to either bound (float32 rounding is monotone): at
        # most k x the step, then so is its distance to the median, and it is no outlier
        lo_m, hi_m = max(lo_a, lo_b), min(hi_a, hi_b)
        reach = k32 * sc
        # both tests in one branch (``&``, not ``and``): it is hard to predict
        if (max(hi_m, xc) - min(lo_m, xc) > reach) & (max(abs(xc - lo_m), abs(xc - hi_m)) > reach):
            spike = _is_spike(spike_window, window, d, c, xc, sc, q, k32, tmp, dev, net, net_steps)
    if tr:
        if judged:
            hampel_n[d, c] += 1
            if spike:
                hampel_out_n[d, c] += 1
        if present and rn > 0:
            step = abs(xc - spike_window[d, c, window - 1])
            clipped = min(step, _F_5 * sc) if sc > 0 else step
            step_scale[d, c] = sc + _F_TENTH * (clipped - sc)
    if present:
        for m in range(window - 1):
            spike_window[d, c, m] = spike_window[d, c, m + 1]
        spike_window[d, c, window - 1] = xc
        rn = min(rn + 1, window)
    if rn != spike_window_n[d, c]:
        spike_window_n[d, c] = rn
    e = spike_ewma[d, c]
    if judged:
        e = e + spike_alpha32 * ((_F1 if spike else _F0) - e)
        spike_ewma[d, c] = e
    hot = False
    if e > half_rate32 and trained:
        base = (hampel_out_n[d, c] + 1.0) / (hampel_n[d, c] + 2.0)
        threshold = max(rate, 3.0 * base)
        hyst = 0.5 if fault0 == _SPIKING else 1.0
        hot = np.float64(e) > hyst * threshold
    return spike, hot


@numba.njit(cache=True, inline="always")
def _change_step(
    cusum: np.ndarray,
    start: np.ndarray,
    level: np.ndarray,
    on: np.ndarray,
    clear_n: np.ndarray,
    since: np.ndarray,
    d: int,
    col: int,
    z: float,
    t: float,
    delta: float,
    sigma: float,
    h_shifts: float,
    h_sigmas: float,
    alpha: float,
    clear_frac2: float,
    clear_samples: int,
) -> None:
    """``changepoint.ChangeTest.step`` of one element (every element valid)."""
    k = 0.5 * delta
    h = max(h_shifts * delta, h_sigmas * sigma)
    clip = max(delta, 3.0 * sigma)
    cus = cusum[d, col]
    lvl = level[d, col]
    was_on = on[d, col]
    n = clear_n[d, col]
    u = min(max(z, -clip), clip)
    new = max(cus + u - k, 0.0)
    if cus <= 0 and new > 0:
        start[d, col] = t
    lvl_new = lvl + alpha * min(max(z - lvl, -clip), clip)
    clear_level = clear_frac2 * k
    rose = not was_on and new > h
    n = n + 1 if was_on and lvl_new < clear_level else 0
    fell = was_on and n >= clear_samples
    on2 = (was_on or rose) and not fell
    if fell:
        new = 0.0
    elif on2:
        new = min(new, h)
    cusum[d, col] = new
    level[d, col] = lvl_new
    # the rest changes seldom: stores only where it does, as every line written back
    # costs memory bandwidth (bit for bit the same: none of these is ever -0.0)
    if on2 != was_on:
        on[d, col] = on2
    n = n if on2 else 0
    if n != clear_n[d, col]:
        clear_n[d, col] = n
    if rose:
        since[d, col] = start[d, col]
    elif not on2 and since[d, col] != 0.0:
        since[d, col] = 0.0


def leak_pressure(
    pos: F64, speed: F64, p_in: F64, p_out: F64, flow: F64, *,
    closed_max: float, min_dp: float, min_speed: float,
) -> F64:  # fmt: skip
    """The pressure a leak reading is fitted against (``LeakDriftScreen.prepare``'s
    ``press``: ΔP across a closed valve, a running pump's mean pressure; NaN otherwise),
    in one pass instead of a dozen; the caller takes its log with numpy's."""
    out = np.empty(len(pos))
    _leak_pressure(pos, speed, p_in, p_out, flow, closed_max, min_dp, min_speed, out)
    return out


@numba.njit(cache=True, nogil=True)
def _leak_pressure(
    pos: F64, speed: F64, p_in: F64, p_out: F64, flow: F64,
    closed_max: float, min_dp: float, min_speed: float, out: F64,
) -> None:  # fmt: skip
    for i in range(len(pos)):
        dp = p_in[i] - p_out[i]
        if pos[i] <= closed_max and dp >= min_dp:
            out[i] = dp
        elif (not flow[i] <= 0) if math.isnan(speed[i]) else speed[i] >= min_speed:
            out[i] = 0.5 * (p_in[i] + p_out[i])
        else:
            out[i] = np.nan


def scratch(n_ch: int, window: int) -> tuple[np.ndarray, ...]:
    """The work arrays ``screen_rows`` takes last: per channel flags, fault codes and
    readings, and two sort buffers of a spike window."""
    return (
        np.zeros((2, n_ch), dtype=np.bool_),
        np.zeros((3, n_ch), dtype=np.int8),
        np.zeros(n_ch, dtype=np.float32),
        np.zeros((2, max(window, 2)), dtype=np.float32),
    )


def screen_rows(*args: Any) -> None:
    """``_screen_rows``: the detector passes the batch, hyper-parameters and state arrays
    (``SensorFaultDetector._update_compiled``); typed here for mypy, which cannot see a
    dispatcher's signature."""
    _screen_rows(*args)


# Without numba's runtime (``_nrt``, a flag its typing stubs lack): the loop allocates
# nothing (``scratch``), and with it every view or array handed to an inlined helper cost
# an atomic incref and decref, a third of the time
@numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)  # type: ignore[call-overload]
def _screen_rows(
    start, stop, resume,  # per device run: first row, end (exclusive), resume a paused row
    slot, t, chans, pos, speed, p_in, p_out, lq, lp,  # the batch, sorted by (slot, t)
    on_spike, on_missing, on_stuck, on_pair, on_leak,  # which screens run
    train, clear, decay,
    min_run, log_alpha, log_alpha32, min_dur, closed_max, open_min, watch,
    window, q, k32, half_rate32, spike_alpha32, rate, net, net_steps,
    baseline, drift_kpa, h_shifts, h_sigmas, ct_alpha, ct_clear_frac2,
    block, leak_j, p_in_ch, p_out_ch, fit_ix, log_min_mm3s, cat_of_fault,
    rows_n, fault, fault_since, ok_n, category, changed_t,
    pair_n, rep_n, last_v, run_n, run_t0, idle,
    pres_n, gap_n, gap_cont_n, miss_run, miss_t0,
    hampel_n, hampel_out_n, spike_window, spike_window_n, spike_ewma, step_scale, regime,
    drift_n, drift_buf, drift_med, drift_sigma, drift_value,
    drift_cusum, drift_start, drift_level, drift_on, drift_clear_n, drift_since,
    lk_xtx, lk_xty, lk_yy, lk_n, lk_t0, lk_u0, lk_on,
    bad, pause_row, pause_why,
    flags, codes, x32, sort_buf,  # ``scratch``
):  # fmt: skip
    """Run the screens over rows ``start[r]:stop[r]`` of each device run ``r`` (see the
    module docstring), marking the readings withheld in ``bad`` (rows, channels)."""
    n_ch = len(chans)
    present, outl = flags[0], flags[1]
    fault0, now, latched = codes[0], codes[1], codes[2]
    tmp, dev = sort_buf[0], sort_buf[1]
    for r in range(len(start)):
        pause_row[r] = -1
        pause_why[r] = 0
        i = start[r]
        skip_a = resume[r]
        while i < stop[r]:
            d = slot[i]
            ti = t[i]
            if not skip_a:
                # -- the step's readings (``SensorFaultDetector._update``) ---------------
                any_p = False
                for c in range(n_ch):
                    v = chans[c][i]
                    p = math.isfinite(v)
                    present[c] = p
                    x32[c] = np.float32(v) if p else _F0
                    any_p = any_p or p
                    fault0[c] = fault[d, c]
                    now[c] = 0
                    outl[c] = False
                training = rows_n[d] < train
                if any_p and training:
                    rows_n[d] += 1
                tr = training and any_p
                trained = not training

                # -- spiking (``spikes.SpikeScreen.step``) -------------------------------
                if on_spike:
                    last = regime[d]
                    pv = pos[i]
                    pc = np.int64(np.rint(pv / 5.0)) if math.isfinite(pv) else -1
                    if pc < 0:
                        pc = last // 3
                    sv = speed[i]
                    rc = 2 if math.isnan(sv) else (1 if sv > 0 else 0)
                    if rc >= 2:
                        rc = last % 3
                    reg = np.int32(pc * 3 + rc)
                    moved = reg != last
                    if moved:
                        regime[d] = reg
                    for c in range(n_ch):
                        # the default window's length, networks and q ((7 - 2) // 4)
                        # known when compiled: its loops unroll, its sorts run in registers
                        if window == 7:
                            spike, hot = _spike_step(
                                7, d, c, moved, present[c], x32[c], tr, trained, fault0[c],
                                spike_window, spike_window_n, step_scale, hampel_n,
                                hampel_out_n, spike_ewma, 1, k32, half_rate32, spike_alpha32,
                                rate, tmp, dev, _NET_7, _NET_6,
                            )  # fmt: skip
                        else:
                            spike, hot = _spike_step(
                                window, d, c, moved, present[c], x32[c], tr, trained,
                                fault0[c], spike_window, spike_window_n, step_scale, hampel_n,
                                hampel_out_n, spike_ewma, q, k32, half_rate32, spike_alpha32,
                                rate, tmp, dev, net, net_steps,
                            )  # fmt: skip
                        outl[c] = spike
                        if hot:
                            now[c] = _SPIKING

                # -- missing (``missing.MissingScreen.step``) ----------------------------
                if on_missing:
                    for c in range(n_ch):
                        mr = miss_run[d, c]
                        was_gap = mr > 0
                        if any_p and fault0[c] == 0 and was_gap and present[c]:
                            m32 = np.float32(mr)
                            keep = decay**m32
                            gap_n[d, c] = gap_n[d, c] * keep + m32
                            gap_cont_n[d, c] = gap_cont_n[d, c] * keep + (m32 - _F1)
                        if tr and present[c]:
                            pres_n[d, c] += 1
                        if present[c]:
                            mr = 0
                        elif any_p:
                            if not was_gap:
                                miss_t0[d, c] = ti
                            mr += 1
                        if mr != miss_run[d, c]:
                            miss_run[d, c] = mr
                        if (
                            mr >= min_run
                            and trained
                            and watch[c]
                            and np.float64(pres_n[d, c]) >= 0.99 * np.float64(rows_n[d])
                        ):
                            p_cont = (gap_cont_n[d, c] + _F1) / (gap_n[d, c] + _F2)
                            need = max(np.float32(min_run), np.ceil(log_alpha32 / np.log(p_cont)))
                            if np.float64(mr) >= np.float64(need) and ti - miss_t0[d, c] >= min_dur:
                                now[c] = _MISSING

                # -- stuck (``stuck.StuckScreen.step``) ----------------------------------
                if on_stuck:
                    pv, sv = pos[i], speed[i]
                    if pv <= closed_max or sv == 0:
                        iv = 1
                    elif math.isfinite(pv) or math.isfinite(sv):
                        iv = 0
                    else:
                        iv = idle[d]
                    if iv != idle[d]:
                        idle[d] = iv
                    t_max = -np.inf
                    for c in range(n_ch):
                        last_c = last_v[d, c]
                        comparable = present[c] and run_t0[d, c] > 0 and last_c != 0
                        same = comparable and x32[c] == last_c
                        rp = run_n[d, c]
                        if any_p and fault0[c] == 0 and comparable and not same:
                            m32 = np.float32(rp)
                            # decay**1 is decay: no pow for the usual run of one
                            keep = decay if rp == 0 else decay ** (m32 + _F1)
                            pair_n[d, c, iv] = pair_n[d, c, iv] * keep + (m32 + _F1)
                            rep_n[d, c, iv] = rep_n[d, c, iv] * keep + m32
                        if present[c]:
                            if same or rp != 0:
                                run_n[d, c] = rp + 1 if same else 0
                            if not same:
                                run_t0[d, c] = ti
                            last_v[d, c] = x32[c]
                        t_max = max(t_max, run_t0[d, c])
                    if trained:
                        for c in range(n_ch):
                            rn = run_n[d, c]
                            t0 = run_t0[d, c]
                            if rn >= min_run and ti - t0 >= min_dur and t_max > t0:
                                log_p = _stuck_log_p(
                                    np.float64(rep_n[d, c, iv]),
                                    np.float64(pair_n[d, c, iv]),
                                    np.float64(rn),
                                )
                                if log_p < log_alpha:
                                    now[c] = _STUCK

                # -- the latch (``SensorFaultDetector._latch``) and withheld readings ----
                for c in range(n_ch):
                    nw = now[c]
                    f = fault0[c]
                    ok = int(ok_n[d, c])
                    if nw > 0:
                        ok = 0
                    elif present[c]:
                        ok += 1
                    if nw > f:
                        new = nw
                    elif f > 0 and ok < clear:
                        new = max(f, nw)
                    else:
                        new = np.int8(0)
                    if new > 0 and f == 0:
                        fault_since[d, c] = ti
                    elif new == 0:
                        # stored only if not already +0.0: most rows, no line made dirty
                        fs = fault_since[d, c]
                        if fs != 0.0 or math.copysign(1.0, fs) < 0.0:
                            fault_since[d, c] = 0.0
                    if new != f:
                        fault[d, c] = new
                    ok = ok if new > 0 else 0
                    if ok != ok_n[d, c]:
                        ok_n[d, c] = ok
                    latched[c] = new
                    b = False
                    if on_spike and outl[c] and new == _SPIKING:
                        b = True
                    if on_missing and new == _MISSING and present[c]:
                        b = True
                    if on_stuck and new == _STUCK and present[c]:
                        b = True
                    if b:
                        bad[i, c] = True

                # -- pressure-pair drift (``pressure_drift.PressureDriftScreen.step``) ---
                why = 0
                pair = False
                if on_pair:
                    pv, sv = pos[i], speed[i]
                    for j in range(2):
                        if j == 0:
                            res = p_in[i] - p_out[i] if pv >= open_min or sv == 0 else np.nan
                        else:
                            res = p_out[i] if pv <= closed_max else np.nan
                        if not math.isfinite(res):
                            continue
                        nd = drift_n[d, j]
                        if nd < baseline:
                            drift_buf[d, j, nd] = res
                            drift_n[d, j] = nd + 1
                            if nd == baseline - 1:
                                why |= 1 << j
                            continue
                        dv = res - drift_med[d, j]
                        drift_value[d, j] = dv
                        sigma = drift_sigma[d, j]
                        delta = max(drift_kpa, 3.0 * sigma)
                        for side in range(2):  # both directions: +dev, then -dev
                            _change_step(
                                drift_cusum, drift_start, drift_level, drift_on,
                                drift_clear_n, drift_since, d, 2 * j + side,
                                -dv if side else dv, ti, delta, sigma,
                                h_shifts, h_sigmas, ct_alpha, ct_clear_frac2, clear,
                            )  # fmt: skip
                    for col in range(4):
                        pair = pair or drift_on[d, col]
                    if pair:
                        if p_in_ch >= 0:
                            bad[i, p_in_ch] = True
                        if p_out_ch >= 0:
                            bad[i, p_out_ch] = True

                # -- leak-sensor drift (``leak_drift.LeakDriftScreen.step``, ``_add``) ---
                if on_leak and leak_j >= 0:
                    lq_i, lp_i = lq[i], lp[i]
                    use = (
                        math.isfinite(lq_i)
                        and math.isfinite(lp_i)
                        and lq_i >= log_min_mm3s
                        and not outl[leak_j]
                    )
                    for fi in fit_ix:
                        if outl[fi] and latched[fi] == _SPIKING:
                            use = False
                    use = use and latched[leak_j] < _MISSING and not pair
                    if use:
                        if lk_n[d] == 0:
                            lk_t0[d] = ti
                            lk_u0[d] = lp_i
                        f1 = lp_i - lk_u0[d]
                        f2 = (ti - lk_t0[d]) / 86_400.0
                        lk_xtx[d, 0] += f1
                        lk_xtx[d, 1] += f2
                        lk_xtx[d, 2] += f1 * f1
                        lk_xtx[d, 3] += f1 * f2
                        lk_xtx[d, 4] += f2 * f2
                        lk_xty[d, 0] += lq_i
                        lk_xty[d, 1] += f1 * lq_i
                        lk_xty[d, 2] += f2 * lq_i
                        lk_yy[d] += lq_i * lq_i
                        lk_n[d] += 1
                        if lk_n[d] >= block:
                            why |= PAUSE_BLOCK
                if why:  # numpy's turn (see the module docstring), then this row's end
                    pause_row[r] = i
                    pause_why[r] = why
                    break
            skip_a = False

            # -- the row's end: the leak sensor withheld, the device's category ----------
            code = np.int8(0)
            for c in range(n_ch):
                code = max(code, fault[d, c])
            if on_pair and code < _DRIFTING:
                for col in range(4):
                    if drift_on[d, col]:
                        code = np.int8(_DRIFTING)
            if on_leak and lk_on[d]:
                if code < _DRIFTING:
                    code = np.int8(_DRIFTING)
                if leak_j >= 0 and math.isfinite(chans[leak_j][i]):
                    bad[i, leak_j] = True
            cat = cat_of_fault[code]
            if cat != category[d]:
                category[d] = cat
                changed_t[d] = ti
            i += 1
