"""Spiking: a sensor whose outliers came too often, judged in its operating state.

A Hampel filter over the last ``window`` readings taken in the same operating state
(valve position in 5 % steps, pump running or not: an opening is not a p_out spike)
marks a reading more than ``k`` robust sigmas from their median (the sigma floored by
the lower quartile of the steps in the window, so a ramp is not a spike, and by the
typical step learned in training, so a quantised sensor is not); the sensor is faulty
when the rate of such readings (EWMA, weight ``alpha``) exceeds both ``rate`` and three
times its training rate (half that to stay on). Single spikes are not a fault (the seal
detectors clip them); the outliers of a spiking sensor are withheld from the seal
detectors. NAMUR NE 107: ``maintenance_required``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from analytics.base import F64, I64, SampleBatch
from analytics.sensor_faults.screen import SPIKING, Bool, Spec, State, Step

__all__ = ["SpikeScreen"]


def _median_last(a: np.ndarray) -> np.ndarray:
    """Median along the last axis by partition (np.median sorts; this is the hot path)."""
    k = a.shape[-1]
    h = k // 2
    if k % 2:
        return np.partition(a, h, axis=-1)[..., h]
    part = np.partition(a, (h - 1, h), axis=-1)
    return 0.5 * (part[..., h - 1] + part[..., h])


class SpikeScreen:
    name: ClassVar[str] = "spiking"
    code: ClassVar[int] = SPIKING

    def __init__(
        self,
        *,
        channels: int,
        window: int = 7,
        k: float = 8.0,
        rate: float = 0.15,
        alpha: float = 0.02,
    ) -> None:
        if window < 3 or k <= 0 or not 0 < rate < 1 or not 0 < alpha <= 1:
            raise ValueError("need window >= 3, k > 0, rate in (0, 1), alpha in (0, 1]")
        self.n_channels = channels
        self.window = window
        self.k = k
        self.rate = rate
        self.alpha = alpha

    def state_spec(self) -> Spec:
        f32, i32 = np.dtype(np.float32), np.dtype(np.int32)
        c = (self.n_channels,)
        return {
            "hampel_n": (i32, c, 0),  # training readings judged
            "hampel_out_n": (i32, c, 0),  # of them outliers
            "ring": (f32, (*c, self.window), 0.0),
            "ring_n": (i32, c, 0),
            "spike_ewma": (f32, c, 0.0),
            "step_scale": (f32, c, 0.0),  # typical |step| between readings, from training
            "regime": (i32, (), -1),  # operating state of the newest sample
        }

    def prepare(self, batch: SampleBatch) -> np.ndarray:
        # Operating state: valve position in 5 % steps, pump stopped/running. A window
        # never straddles a change of it. -1 / 2: not in this sample, the previous holds.
        pos, speed = batch.signal("position_pct"), batch.signal("speed_rpm")
        pos_code = np.where(np.isfinite(pos), np.round(np.nan_to_num(pos) / 5.0), -1)
        run_code = np.where(np.isnan(speed), 2, (speed > 0).astype(np.int64))
        return np.stack([pos_code, run_code], axis=1).astype(np.int64)

    def step(self, s: State, st: Step, inputs: np.ndarray | None) -> Bool:
        assert inputs is not None
        slots, present, x32, tr = st.slots, st.present, st.x32, st.tr
        last = s["regime"][slots]
        pos_code = np.where(inputs[:, 0] >= 0, inputs[:, 0], last // 3)
        run_code = np.where(inputs[:, 1] < 2, inputs[:, 1], last % 3)
        code = (pos_code * 3 + run_code).astype(np.int32)
        moved = code != last
        s["regime"][slots] = code
        ring = s["ring"][slots]
        ring_n = np.where(moved[:, None], 0, s["ring_n"][slots])
        full = ring_n >= self.window
        med = _median_last(ring)
        mad = _median_last(np.abs(ring - med[:, :, None]))
        # The lower quartile of the steps between consecutive readings floors the scale,
        # so a sensor on a steady ramp (a daily temperature swing) is not read as spiking.
        kw = self.window
        steps = np.abs(ring - np.roll(ring, 1, axis=2))
        oldest = (ring_n % kw)[:, :, None]
        np.put_along_axis(steps, oldest, np.inf, axis=2)  # the wrap-around pair
        q = (kw - 2) // 4
        mean_step = np.partition(steps, q, axis=2)[:, :, q]
        # and the step size learned in training floors it, so a quantised sensor whose
        # window happens to hold one value is not read as spiking on its next tick
        floor = np.maximum(s["step_scale"][slots], 1e-3 * np.abs(med) + 1e-9)
        scale = np.maximum(np.maximum(1.4826 * mad, mean_step), floor)
        spike = present & full & (np.abs(x32 - med) > self.k * scale)
        judged = present & full
        s["hampel_n"][slots] += tr & judged
        s["hampel_out_n"][slots] += tr & spike
        pr, pc = np.nonzero(present)
        newest = np.take_along_axis(ring, ((ring_n - 1) % kw)[:, :, None], axis=2)[:, :, 0]
        step = np.abs(x32 - newest)
        has_prev = present & (ring_n > 0)
        sc = s["step_scale"][slots]
        learn = tr & has_prev
        # EWMA of the step, each step clipped at 5x the current estimate (spikes in
        # training do not inflate it)
        clipped = np.where(sc > 0, np.minimum(step, 5.0 * sc), step)
        s["step_scale"][slots] = np.where(learn, sc + 0.1 * (clipped - sc), sc).astype(np.float32)
        s["ring"][slots[pr], pc, ring_n[pr, pc] % self.window] = x32[pr, pc]
        s["ring_n"][slots] = np.where(present, np.minimum(ring_n + 1, 2**30), ring_n)
        ewma = s["spike_ewma"][slots]
        s["spike_ewma"][slots] = np.where(judged, ewma + self.alpha * (spike - ewma), ewma).astype(
            np.float32
        )
        st.outliers = spike

        base_rate = (s["hampel_out_n"][slots] + 1.0) / (s["hampel_n"][slots] + 2.0)
        threshold = np.maximum(self.rate, 3.0 * base_rate)
        on = np.where(st.fault == SPIKING, 0.5, 1.0)  # hysteresis
        return st.trained & (s["spike_ewma"][slots] > on * threshold)

    def withheld(self, st: Step) -> Bool:
        # Single spikes stay: every seal detector clips its increments, and withholding
        # them would also withhold the first samples of a real step.
        return st.outliers & (st.latched == SPIKING)

    def explain(self, s: State, rows: I64, channel: I64, shown: Bool) -> tuple[F64, dict[str, F64]]:
        rate = s["spike_ewma"][rows, channel].astype(np.float64)
        return rate / self.rate, {
            "spike_rate": np.where(shown, rate, np.nan),
            "spike_rate_limit": np.where(shown, self.rate, np.nan),
        }

    def describe(self, e: dict[str, Any], since: str) -> str:
        return (
            f"Sensor {e['channel']} spiking: {100 * e['spike_rate']:.0f} % outliers since "
            f"{since}: check the instrument and its cabling"
        )
