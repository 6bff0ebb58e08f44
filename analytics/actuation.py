"""Actuation wear: stroke time, torque and motor current against their baseline.

A valve that gets harder to move (seat and stem packing wear, deposits, a tiring
actuator) strokes slower and needs more torque and current. All three also rise with the
line and differential pressure the valve works against, so each is compared with its
commissioning regression on p_in and ΔP (``residual.ResidualDetector``): its first
``baseline_samples`` actuations learn log y = b0 + b1 p_in + b2 ΔP, after which the
residual log ratio feeds a one-sided CUSUM tuned to ``wear_ratio`` (+25 % by default).
A sample is an actuation when it carries any of stroke_s, torque_nm or motor_a (devices
report them once per stroke). A device that reports no pressures is compared against
one number; NaN covariates count as 0 consistently.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import numpy as np

from analytics.base import F64, CategoryCode, SampleBatch, Verdicts, fmt_time
from analytics.changepoint import change_test_params
from analytics.evidence import tidy_evidence
from analytics.params import Param, check_params
from analytics.residual import ResidualDetector

__all__ = ["ActuationWearDetector"]


class ActuationWearDetector(ResidualDetector):
    cause: ClassVar[str] = "actuation_wear"
    signals: ClassVar[tuple[str, ...]] = (
        "stroke_s",
        "torque_nm",
        "motor_a",
        "p_in_kpa",
        "p_out_kpa",
    )
    kinds: ClassVar[frozenset[str]] = frozenset({"valve"})
    channels: ClassVar[tuple[tuple[str, bool], ...]] = (
        ("stroke_s", True),
        ("torque_nm", True),
        ("motor_a", True),
    )
    covariate_names: ClassVar[tuple[str, ...]] = ("p_in_kpa", "differential pressure")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("wear_ratio", 1.25, "(1, inf)", "x baseline",
              "rise of stroke time, torque or current the CUSUM is tuned to"),
        Param("sigma_floor", 0.02, "(0, inf)", "log",
              "floor of the regression's residual spread"),
        Param("baseline_samples", 12, "[5, inf)", "actuations",
              "that fit the commissioning regression"),
        *change_test_params(alpha=0.2, clear_samples=4, unit="actuations"),
    )  # fmt: skip

    def __init__(
        self,
        *,
        wear_ratio: float = 1.25,
        sigma_floor: float = 0.02,
        baseline_samples: int = 12,
        alpha: float = 0.2,
        clear_samples: int = 4,
        h_shifts: float = 2.5,
        h_sigmas: float = 8.0,
    ) -> None:
        check_params(type(self).__name__, self.PARAMS, locals())
        self.wear_ratio = wear_ratio
        self.sigma_floor = sigma_floor
        d = math.log(wear_ratio)
        super().__init__(
            deltas=(d, d, d),
            sigma_floors=(sigma_floor,) * 3,
            baseline_samples=baseline_samples,
            alpha=alpha,
            clear_samples=clear_samples,
            h_shifts=h_shifts,
            h_sigmas=h_sigmas,
        )

    def _qualify(self, batch: SampleBatch) -> tuple[np.ndarray, F64, F64]:
        y = np.stack([batch.signal(name) for name, _ in self.channels], axis=1)
        p_in = batch.signal("p_in_kpa")
        dp = p_in - batch.signal("p_out_kpa")
        cov = np.stack([p_in / 1000.0, dp / 1000.0], axis=1)
        ok = np.isfinite(y).any(axis=1) & (np.nan_to_num(y, nan=1.0) > 0).all(axis=1)
        # numpy types any/all(axis=...) as "scalar or array"; over an axis of 2-D it is an array
        return cast(np.ndarray, ok), cov, y

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        return tidy_evidence(super().evidence(v, i))

    def summary(self, v: Verdicts, i: int) -> str:
        if v.category[i] != CategoryCode.MAINTENANCE_REQUIRED:
            return "Actuation back within its baseline"
        e = self.evidence(v, i)
        return (
            f"Actuation wear: {self._worst_phrase(e)} at comparable pressure since "
            f"{fmt_time(e['since'])}: inspect stem packing, seat and actuator"
        )
