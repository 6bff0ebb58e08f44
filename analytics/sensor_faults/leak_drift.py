"""Leak-sensor drift: an offset does not scale with pressure, a leak does.

The zero of a leak sensor drifting (an additive offset ``b``) reads as a growing leak,
but a real seat or seal leak scales with pressure (Q = C·ΔPⁿ) and an offset does not.
So the *elasticity* of the reading, ``β = d log Q / d log P`` (P: ΔP across a closed
valve, or the mean of p_in and p_out of a running pump), is fitted per block of
``block`` such samples (least squares of log Q on log P and time, so a leak growing
within the block does not bend the slope) and compared with its commissioning value
``β0`` (the first ``commission_blocks`` blocks). When the level of the reading has risen
by a ratio ``R`` (from the same blocks), a real leak keeps ``β = β0``; an offset dilutes
it to ``β0 / R`` (``b / Q = 1 - 1/R``). Each block adds the log-likelihood ratio of the
two (clipped to ``llr_clip``, less ``llr_k``) to a CUSUM; above ``h`` the leak sensor is
drifting (it falls back when the evidence sum returns to zero). With ``R`` near 1 the
hypotheses coincide and nothing accrues, so a healthy device cannot raise it by noise; a
device whose reading never responded to pressure at commissioning (``β0`` not clearly
positive) is not judged. The fit takes only readings the other screens trust (no
outlier of the leak, no outlier of a spiking pressure gauge, no stuck or missing leak
sensor, no drifting pressure pair). Its readings are withheld like a drifting pair's.
NAMUR NE 107: ``out_of_specification``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final

import numpy as np

from analytics.base import F64, I64, SampleBatch
from analytics.sensor_faults.pressure_drift import PRESSURES
from analytics.sensor_faults.screen import (
    DRIFTING,
    MISSING,
    SPIKING,
    Bool,
    Spec,
    State,
    Step,
    count_dtype,
)

__all__ = ["LeakDriftScreen"]

RESIDUAL = 2  # ``drift_residual`` evidence value, after the pressure pair's two
RESIDUAL_NAME = "leak_mm3s elasticity to pressure"
# the entries of X'X kept (row, column): the upper triangle without the sample count
_XTX_UPPER: Final = ((0, 0, 1, 1, 2), (1, 2, 1, 2, 2))


class LeakDriftScreen:
    name: ClassVar[str] = "leak_drift"
    code: ClassVar[int] = DRIFTING
    signals: ClassVar[tuple[str, ...]] = ("leak_mm3s",)
    residual: ClassVar[tuple[int, ...]] = (RESIDUAL,)

    def __init__(
        self,
        *,
        channels: tuple[str, ...],
        closed_max_pct: float = 2.0,
        block: int = 576,
        commission_blocks: int = 3,
        min_dp_kpa: float = 100.0,
        min_speed_rpm: float = 100.0,
        min_mm3s: float = 1e-3,
        h: float = 6.0,
        llr_k: float = 0.1,
        llr_clip: float = 4.0,
        se_floor: float = 0.02,
    ) -> None:
        if block < 12 or commission_blocks < 1:
            raise ValueError("need leak_block >= 12 and leak_commission_blocks >= 1")
        if h <= 0 or llr_k < 0 or llr_clip <= 0 or se_floor <= 0:
            raise ValueError("need leak_h, leak_llr_clip, leak_se_floor > 0, leak_llr_k >= 0")
        self.closed_max_pct = closed_max_pct
        self.block = block
        self.commission_blocks = commission_blocks
        self.min_dp_kpa = min_dp_kpa
        self.min_speed_rpm = min_speed_rpm
        self.min_mm3s = min_mm3s
        self.h = h
        self.llr_k = llr_k
        self.llr_clip = llr_clip
        self.se_floor = se_floor
        # -1: no leak channel screened, nothing to judge
        self.channel = channels.index("leak_mm3s") if "leak_mm3s" in channels else -1
        # the readings a leak fit rests on: the leak and the pressures
        self._fit_ix = [channels.index(c) for c in ("leak_mm3s", *PRESSURES) if c in channels]

    def state_spec(self) -> Spec:
        f64, f32 = np.dtype(np.float64), np.dtype(np.float32)
        return {
            # the current block's sums of [1, log P - lk_u0, days] x log Q (of the
            # symmetric X'X only the entries _XTX_UPPER, its corner is lk_n), the
            # commissioning elasticity and level, and the evidence CUSUM
            "lk_xtx": (f64, (len(_XTX_UPPER[0]),), 0.0),
            "lk_xty": (f64, (3,), 0.0),
            "lk_yy": (f64, (), 0.0),
            "lk_n": (count_dtype(self.block), (), 0),
            "lk_t0": (f64, (), 0.0),
            "lk_u0": (f64, (), 0.0),
            # fitted, up to commission_blocks
            "lk_blocks": (count_dtype(self.commission_blocks), (), 0),
            # commissioned: the elasticity, its SE and the level. While commissioning
            # they hold the sums that give them (of beta/SE², of 1/SE², of the blocks'
            # mean log Q), and lk_cu that of their mean log P: a byte saved is 100 kB.
            "lk_beta0": (f64, (), 0.0),
            "lk_se0": (f64, (), 0.0),
            "lk_level0": (f64, (), 0.0),
            "lk_cu": (f64, (), 0.0),
            "lk_beta": (f32, (), 0.0),  # newest block, shown only
            "lk_ratio": (f32, (), 0.0),  # shown only
            "lk_cusum": (f64, (), 0.0),
            "lk_start": (f64, (), 0.0),
            "lk_on": (np.dtype(np.bool_), (), False),
            "lk_since": (f64, (), 0.0),
        }

    def prepare(self, batch: SampleBatch) -> np.ndarray:
        """log leak and log pressure, on a closed valve under pressure or a running pump
        (NaN: the sample says nothing about the leak sensor)."""
        pos, speed = batch.signal("position_pct"), batch.signal("speed_rpm")
        p_in, p_out = batch.signal("p_in_kpa"), batch.signal("p_out_kpa")
        dp = p_in - p_out
        flow = batch.signal("flow_m3h")
        running = np.where(np.isnan(speed), ~(flow <= 0), speed >= self.min_speed_rpm)
        closed = (pos <= self.closed_max_pct) & (dp >= self.min_dp_kpa)
        with np.errstate(invalid="ignore", divide="ignore"):
            press = np.where(closed, dp, np.where(running, 0.5 * (p_in + p_out), np.nan))
            lq = np.log(batch.signal("leak_mm3s"))
            lp = np.log(press)
        lk = np.stack([lq, lp], axis=1)
        lk[~(np.isfinite(lk).all(axis=1) & (lq >= math.log(self.min_mm3s)))] = np.nan
        return lk

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> None:
        if self.channel < 0:
            return
        assert inputs is not None
        j = self.channel
        # a fit only on readings the screen trusts: no outlier of the leak or the
        # pressures, no stuck or missing leak sensor, no drifting pressure pair
        # (a water hammer is a pressure outlier but a fine lever for the fit: only a
        # spiking pressure gauge's outliers are left out)
        use = np.isfinite(inputs[:, 0]) & ~st.outliers[:, j]
        use &= ~(st.outliers & (st.latched == SPIKING))[:, self._fit_ix].any(axis=1)
        use &= (st.latched[:, j] < MISSING) & ~st.pair_drift
        n_use = int(use.sum())
        if n_use == len(use):  # every row of the step: views of the state, not gathers
            self._add(s, st.slots, st.t, inputs)
        elif 2 * n_use > len(use):  # most rows: views, the others masked out
            self._add(s, st.slots, st.t, inputs, use)
        elif n_use:
            self._add(s, np.flatnonzero(use), st.t[use], inputs[use])

    def _add(self, s: State, slots: I64 | slice, t: F64, lk: F64, use: Bool | None = None) -> None:
        """Add one (log Q, log P) sample to each slot's block (rows of ``s``: indices, or
        the leading block, of which only ``use`` when given); judge the blocks completed.
        A row left out adds an exact 0.0 to its sums, so they are as if it was not seen."""

        def only(a: np.ndarray) -> np.ndarray:
            if use is None:
                return a
            return np.where(use if a.ndim == 1 else use[:, None], a, 0.0)

        first = s["lk_n"][slots] == 0
        if use is not None:
            first &= use
        s["lk_t0"][slots] = np.where(first, t, s["lk_t0"][slots])
        s["lk_u0"][slots] = np.where(first, lk[:, 1], s["lk_u0"][slots])
        f = np.stack(
            [
                np.ones(len(t)),
                lk[:, 1] - s["lk_u0"][slots],
                (t - s["lk_t0"][slots]) / 86_400.0,
            ],
            axis=1,
        )
        y = lk[:, 0]
        s["lk_xtx"][slots] += only(f[:, _XTX_UPPER[0]] * f[:, _XTX_UPPER[1]])
        s["lk_xty"][slots] += only(f * y[:, None])
        s["lk_yy"][slots] += only(y * y)
        s["lk_n"][slots] += 1 if use is None else use
        full = s["lk_n"][slots] >= self.block
        if full.any():
            rows = np.arange(len(t))[slots] if isinstance(slots, slice) else slots
            self._block_done(s, rows[full], t[full])

    def _block_done(self, s: State, slots: I64, t: F64) -> None:
        n = s["lk_n"][slots].astype(np.float64)
        xty = s["lk_xty"][slots]
        xtx = np.empty((len(slots), 3, 3))
        xtx[:, 0, 0] = n
        xtx[:, _XTX_UPPER[0], _XTX_UPPER[1]] = s["lk_xtx"][slots]
        xtx[:, _XTX_UPPER[1], _XTX_UPPER[0]] = s["lk_xtx"][slots]
        # a touch of ridge on log P and time: a block without pressure spread gets a
        # slope of 0 with a huge standard error, not a singular solve
        reg = np.zeros((3, 3))
        reg[1, 1] = reg[2, 2] = 1e-9
        a = xtx + reg * n[:, None, None]
        inv = np.linalg.inv(a)
        coef = np.einsum("ijk,ik->ij", inv, xty)
        rss = s["lk_yy"][slots] - 2 * np.einsum("ij,ij->i", coef, xty)
        rss += np.einsum("ij,ijk,ik->i", coef, xtx, coef)
        s2 = np.maximum(rss, 0.0) / np.maximum(n - 3, 1.0)
        beta = coef[:, 1]
        se = np.sqrt(s2 * np.maximum(inv[:, 1, 1], 0.0))
        se = np.maximum(se, self.se_floor)
        y_mean = xty[:, 0] / n
        u_mean = xtx[:, 0, 1] / n + s["lk_u0"][slots]
        for key in ("lk_xtx", "lk_xty", "lk_yy", "lk_n"):
            s[key][slots] = 0
        s["lk_beta"][slots] = beta
        k = s["lk_blocks"][slots]
        comm = k < self.commission_blocks
        if comm.any():
            cs = slots[comm]
            w = 1.0 / se[comm] ** 2
            s["lk_se0"][cs] += w
            s["lk_beta0"][cs] += w * beta[comm]
            s["lk_level0"][cs] += y_mean[comm]
            s["lk_cu"][cs] += u_mean[comm]
            s["lk_blocks"][cs] += 1
            fin = cs[s["lk_blocks"][cs] == self.commission_blocks]
            if len(fin):
                cw = s["lk_se0"][fin]
                b0 = s["lk_beta0"][fin] / cw
                m = float(self.commission_blocks)
                s["lk_beta0"][fin] = b0
                s["lk_se0"][fin] = 1.0 / np.sqrt(cw)
                s["lk_level0"][fin] = (s["lk_level0"][fin] - b0 * s["lk_cu"][fin]) / m
        live = ~comm
        if not live.any():
            return
        ls, lt = slots[live], t[live]
        b0, se0 = s["lk_beta0"][ls], s["lk_se0"][ls]
        log_r = y_mean[live] - b0 * u_mean[live] - s["lk_level0"][ls]
        ratio = np.exp(np.clip(log_r, -30.0, 30.0))
        s["lk_ratio"][ls] = ratio
        # judged only where the commissioning reading clearly responded to pressure
        judged = (b0 > 0.1) & (b0 > 3.0 * se0)
        var = se[live] ** 2 + se0**2
        b = beta[live]
        llr = ((b - b0) ** 2 - (b - b0 / ratio) ** 2) / (2.0 * var)
        llr = np.where(judged, np.clip(llr, -self.llr_clip, self.llr_clip), 0.0)
        cus = s["lk_cusum"][ls]
        new = np.maximum(cus + llr - self.llr_k, 0.0)
        s["lk_start"][ls] = np.where((cus <= 0) & (new > 0), lt, s["lk_start"][ls])
        on = s["lk_on"][ls]
        rose = ~on & (new > self.h)
        fell = on & (new <= 0)
        on2 = (on | rose) & ~fell
        s["lk_cusum"][ls] = np.where(on2, np.minimum(new, self.h), new)
        s["lk_on"][ls] = on2
        s["lk_since"][ls] = np.where(rose, s["lk_start"][ls], np.where(on2, s["lk_since"][ls], 0))

    def on(self, s: State, slots: I64 | slice) -> Bool:
        return s["lk_on"][slots]

    def since(self, s: State, slots: I64 | slice) -> F64:
        return s["lk_since"][slots]

    def withheld(self, s: State, st: Step) -> Bool:
        out = np.zeros(st.present.shape, dtype=bool)
        if self.channel >= 0:
            j = self.channel
            out[:, j] = s["lk_on"][st.slots] & st.present[:, j]
        return out

    def explain(self, s: State, rows: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        # the reading's level over commissioning, and its elasticity to pressure now
        # (newest block) and at commissioning
        return s["lk_cusum"][rows] / self.h, {
            "drift_residual": np.where(shown, RESIDUAL, np.nan).astype(float),
            "leak_ratio": np.where(shown, s["lk_ratio"][rows], np.nan),
            "leak_elasticity": np.where(shown, s["lk_beta"][rows], np.nan),
            "leak_elasticity_baseline": np.where(shown, s["lk_beta0"][rows], np.nan),
            "leak_evidence": np.where(shown, s["lk_cusum"][rows], np.nan),
        }

    def describe(self, e: dict[str, Any], since: str) -> str:
        return (
            f"Leak sensor drifts: leak_mm3s reads {e['leak_ratio']:.1f}x its commissioning "
            f"level but follows pressure with elasticity {e['leak_elasticity']:.2f} "
            f"(commissioning {e['leak_elasticity_baseline']:.2f}), an offset rather than "
            f"a leak, since {since}: recalibrate the leak sensor; seal checks on its "
            "readings are held"
        )
