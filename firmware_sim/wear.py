"""Seat, seal and actuator wear: who degrades, from when, how, and how far by time ``t``.

``Wear.draw`` picks each device's onset and mode from the spec: ``"window"`` puts a fixed
share of the valves (weighted by their batch's hazard) into an uplink range; ``"weibull"``
takes the residual life of a Weibull device that has survived to its installation age,
with bad batches wearing out faster. Modes (``mode``): 0 none, 1 gradual leak (the leak
coefficient grows to ``degrade_factor`` x over the span), 2 a sudden step, 3 actuator
friction growing to ``friction_factor`` x (valves only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from firmware_sim import catalog
from firmware_sim.spec import FleetSpec

__all__ = ["Wear"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class Wear:
    bad_batch: npt.NDArray[np.bool_]  # per manufacturing batch code
    age_s: F64  # installation age at the start
    mode: npt.NDArray[np.int8]
    onset_t: F64  # inf: never
    degrade_span_s: F64
    step_factor: F64  # leak coefficient after a step, x baseline
    degrading: npt.NDArray[np.bool_]
    degrade_factor: float
    friction_factor: float

    @classmethod
    def draw(
        cls,
        spec: FleetSpec,
        rng: np.random.Generator,
        *,
        is_valve: npt.NDArray[np.bool_],
        valve_idx: I64,
        batch_code: I64,
    ) -> Wear:
        n = spec.devices
        n_batches = len(catalog.MAKERS) * catalog.BATCHES_PER_MAKER
        # Exactly round(share x batches) bad batches (at least one when the share is not 0),
        # the lowest draws: a realistic few percent stays a few percent on a small fleet.
        pick = rng.random(n_batches)
        n_bad = max(round(spec.bad_batch_share * n_batches), int(spec.bad_batch_share > 0))
        bad_batch = np.zeros(n_batches, dtype=bool)
        bad_batch[np.argsort(pick, kind="stable")[:n_bad]] = True
        batch_hazard = np.where(bad_batch, spec.bad_batch_hazard, 1.0) * np.exp(
            rng.normal(0.0, 0.15, n_batches)
        )
        hazard = batch_hazard[batch_code]
        mode_pick = rng.random(n)
        age_s = rng.uniform(*spec.install_age_days, n) * 86_400.0
        residual = rng.exponential(1.0, n)
        span_pick = rng.uniform(*spec.degrade_span_days, n) * 86_400.0
        window_pick = rng.uniform(*spec.onset_uplinks, n)
        step_size = rng.uniform(0.3, 1.0, n)

        if spec.onset_model == "window":
            # a fixed share of the valves, picked with their batch's hazard as weight
            count = round(valve_idx.size * spec.degrading_share)
            degrading = np.zeros(n, dtype=bool)
            if count:
                w = hazard[valve_idx] / hazard[valve_idx].sum()
                degrading[rng.choice(valve_idx, count, replace=False, p=w)] = True
            onset = np.where(degrading, spec.start_t + window_pick * spec.uplink_span_s, np.inf)
            span = np.full(n, spec.degrade_span_uplinks * spec.uplink_span_s)
        else:
            # residual life of a Weibull(beta, eta) device that has survived to its age
            beta = spec.weibull_shape
            eta = spec.weibull_scale_days * 86_400.0 / hazard ** (1.0 / beta)
            life = eta * ((age_s / eta) ** beta + residual) ** (1.0 / beta)
            onset = spec.start_t + (life - age_s)
            onset = np.where(onset <= spec.start_t + spec.horizon_days * 86_400.0, onset, np.inf)
            span = span_pick
        # mode: leak step, friction (valves), or gradual leak
        mode = np.where(np.isfinite(onset), 1, 0)
        is_step = mode_pick < spec.step_share
        is_friction = (
            is_valve
            & (mode_pick >= spec.step_share)
            & (mode_pick < spec.step_share + spec.friction_share)
        )
        mode = np.where(mode > 0, np.where(is_step, 2, np.where(is_friction, 3, 1)), 0)
        return cls(
            bad_batch=bad_batch,
            age_s=age_s,
            mode=mode.astype(np.int8),
            onset_t=np.where(mode > 0, onset, np.inf),
            degrade_span_s=span,
            step_factor=spec.degrade_factor * step_size,
            degrading=mode > 0,
            degrade_factor=spec.degrade_factor,
            friction_factor=spec.friction_factor,
        )

    def progress(self, t: F64, idx: I64) -> F64:
        """How far devices ``idx`` are from onset (0) to full degradation (1) at ``t``."""
        with np.errstate(invalid="ignore"):
            p = (t - self.onset_t[idx]) / self.degrade_span_s[idx]
        return np.where(np.isfinite(self.onset_t[idx]), np.clip(p, 0.0, 1.0), 0.0)

    def leak_coeff_at(self, t: F64, idx: I64, leak_c0: F64) -> F64:
        """True leak coefficient of devices ``idx`` at ``t``, from their baselines ``leak_c0``
        (indexed by device slot like every other array)."""
        out = leak_c0[idx]
        # before onset (most devices, most of the time) the coefficient is its baseline
        mode = self.mode[idx]
        t = np.broadcast_to(t, out.shape)
        on = np.flatnonzero(((mode == 1) | (mode == 2)) & (t >= self.onset_t[idx]))
        if on.size:
            i = idx[on]
            p = np.clip((t[on] - self.onset_t[i]) / self.degrade_span_s[i], 0.0, 1.0)
            c0 = out[on]
            gradual = c0 * self.degrade_factor**p
            out[on] = np.where(mode[on] == 1, gradual, c0 * self.step_factor[i])
        return out

    def friction_multiplier(self, t: F64, idx: I64) -> F64:
        out = np.ones(np.shape(idx))
        t = np.broadcast_to(t, out.shape)
        on = np.flatnonzero((self.mode[idx] == 3) & (t >= self.onset_t[idx]))
        if on.size:
            i = idx[on]
            p = np.clip((t[on] - self.onset_t[i]) / self.degrade_span_s[i], 0.0, 1.0)
            out[on] = 1.0 + (self.friction_factor - 1.0) * p
        return out
