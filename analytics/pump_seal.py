"""Pump mechanical seal: seal-chamber leakage, temperature and vibration trends.

A mechanical seal going bad weeps more, runs hotter (dry-running faces) and shakes more
(face chatter, a bearing taking the load). All three move with the duty point, so each
is compared with its commissioning regression on shaft speed and pump head (p_out -
p_in), over running samples only (speed above ``min_speed_rpm``, or flow when there is no
speed sensor): leakage and vibration as log ratios (relevant shifts ``leak_ratio`` and
``vib_ratio``), temperature as an excess in °C (``temp_rise_c``). See
``residual.ResidualDetector`` for the change test.

Temperature has no ambient reference on these pumps, so its baseline tracks slowly
(``temp_track_days``): the seasons move a casing by a few °C over months (about 0.1 °C a
day at most), which the tracking follows with a lag of ~1.5 °C; dry-running faces heat
it within hours to days, which it does not follow.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from analytics.base import F64, CategoryCode, SampleBatch, Verdicts, fmt_time
from analytics.changepoint import change_test_params
from analytics.evidence import tidy_evidence
from analytics.params import Param, check_params
from analytics.residual import ResidualDetector

__all__ = ["PumpSealDetector"]


class PumpSealDetector(ResidualDetector):
    cause: ClassVar[str] = "pump_seal"
    signals: ClassVar[tuple[str, ...]] = (
        "leak_mm3s",
        "temp_c",
        "vib_mms",
        "speed_rpm",
        "flow_m3h",
        "p_in_kpa",
        "p_out_kpa",
    )
    kinds: ClassVar[frozenset[str]] = frozenset({"pump"})
    channels: ClassVar[tuple[tuple[str, bool], ...]] = (
        ("leak_mm3s", True),
        ("temp_c", False),
        ("vib_mms", True),
    )
    covariate_names: ClassVar[tuple[str, ...]] = ("speed_rpm", "speed_rpm²", "head")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("leak_ratio", 3.0, "(1, inf)", "x baseline",
              "rise of seal-chamber leakage the CUSUM is tuned to"),
        Param("temp_rise_c", 5.0, "(0, inf)", "°C",
              "temperature excess the CUSUM is tuned to"),
        Param("vib_ratio", 2.0, "(1, inf)", "x baseline",
              "rise of vibration the CUSUM is tuned to"),
        Param("min_speed_rpm", 100.0, "[0, inf)", "rpm",
              "speed at or above which the pump counts as running"),
        Param("baseline_samples", 48, "[6, inf)", "samples",
              "running samples that fit the commissioning regression"),
        *change_test_params(alpha=0.1, clear_samples=12),
        Param("temp_track_days", 14.0, "(0, inf]", "days",
              "time constant the temperature baseline follows (`inf`: fixed)"),
    )  # fmt: skip

    def __init__(
        self,
        *,
        leak_ratio: float = 3.0,
        temp_rise_c: float = 5.0,
        vib_ratio: float = 2.0,
        min_speed_rpm: float = 100.0,
        baseline_samples: int = 48,
        alpha: float = 0.1,
        clear_samples: int = 12,
        h_shifts: float = 2.5,
        h_sigmas: float = 8.0,
        temp_track_days: float = 14.0,
    ) -> None:
        check_params(type(self).__name__, self.PARAMS, locals())
        self.leak_ratio = leak_ratio
        self.temp_rise_c = temp_rise_c
        self.vib_ratio = vib_ratio
        self.min_speed_rpm = min_speed_rpm
        super().__init__(
            deltas=(math.log(leak_ratio), temp_rise_c, math.log(vib_ratio)),
            sigma_floors=(0.05, 0.2, 0.03),
            baseline_samples=baseline_samples,
            alpha=alpha,
            clear_samples=clear_samples,
            h_shifts=h_shifts,
            h_sigmas=h_sigmas,
            track_days=(None, temp_track_days, None),
        )

    def _qualify(self, batch: SampleBatch) -> tuple[np.ndarray, F64, F64]:
        y = np.stack([batch.signal(name) for name, _ in self.channels], axis=1)
        speed = batch.signal("speed_rpm")
        flow = batch.signal("flow_m3h")
        running = np.where(np.isnan(speed), ~(flow <= 0), speed >= self.min_speed_rpm)
        head = batch.signal("p_out_kpa") - batch.signal("p_in_kpa")
        # vibration goes with speed squared, leakage with the square root of chamber
        # pressure: a quadratic in speed plus head covers the duty range
        u = speed / 1000.0
        cov = np.stack([u, u * u, head / 1000.0], axis=1)
        # log channels need positive readings; a zero there is a reading we cannot use
        y[:, 0] = np.where(y[:, 0] > 0, y[:, 0], np.nan)
        y[:, 2] = np.where(y[:, 2] > 0, y[:, 2], np.nan)
        ok = running & np.isfinite(y).any(axis=1)
        return ok, cov, y

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        return tidy_evidence(super().evidence(v, i))

    def summary(self, v: Verdicts, i: int) -> str:
        if v.category[i] != CategoryCode.MAINTENANCE_REQUIRED:
            return "Pump seal back within its baseline"
        e = self.evidence(v, i)
        return (
            f"Pump mechanical seal: {self._worst_phrase(e)} at the same speed and head since "
            f"{fmt_time(e['since'])}: plan a seal inspection"
        )
