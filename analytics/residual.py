"""Readings against their own baseline at a comparable operating point.

The shared machinery of the actuation-wear and pump-seal detectors. Each channel (a wire
field, taken as a log for quantities that wear multiplies, as is for temperatures) is
regressed on operating-point covariates (pressures, speed) over the device's first
``baseline_samples`` qualifying samples (``baseline.Regression``: normal-equation sums,
solved once). After that, the residual (reading minus what the baseline predicts at this
operating point) of samples inside the covariate range the commissioning saw (widened by
``range_margin`` of its span: a regression is not extrapolated) feeds a one-sided CUSUM
per channel (``changepoint.ChangeTest``) tuned to the channel's relevant shift
``delta``; the decision interval grows with the regression's residual spread. A
channel's verdict is ``maintenance_required``; the device's is the worst channel's, and
the explanation names it with every channel's current ratio (or excess) over its
baseline.

A channel may *track* (``track_days``): its baseline then follows the residual with that
time constant while the channel is not in alarm, so a slow common-mode drift that is not
wear (a casing temperature following the seasons, for want of an ambient reference) is
not read as wear, while a change faster than the time constant still is. The lag behind
a drift of slope ``g`` is about ``g * track_days``, which must stay well under ``delta``.

Subclasses say which samples qualify, which covariates describe the operating point and
which channels to watch; everything else (event time, state, save/restore) is shared.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from analytics.base import (
    F64,
    I64,
    SEVERITY_BY_CATEGORY,
    CategoryCode,
    Detector,
    DeviceTable,
    SampleBatch,
    Status,
    Verdicts,
    step_groups,
)
from analytics.baseline import Regression
from analytics.changepoint import ChangeTest

__all__ = ["ResidualDetector"]


class ResidualDetector(Detector):
    """Base: per-channel regression baseline + CUSUM on the residual."""

    # (wire field, compared in log?) per channel
    channels: ClassVar[tuple[tuple[str, bool], ...]] = ()
    covariate_names: ClassVar[tuple[str, ...]] = ()
    gated: ClassVar[bool] = True

    def __init__(
        self,
        *,
        deltas: tuple[float, ...],
        sigma_floors: tuple[float, ...],
        baseline_samples: int,
        alpha: float = 0.1,
        clear_samples: int = 6,
        h_shifts: float = 2.5,
        h_sigmas: float = 8.0,
        range_margin: float = 0.1,
        track_days: tuple[float | None, ...] | None = None,
    ) -> None:
        nc = len(self.channels)
        track = track_days if track_days is not None else (None,) * nc
        if len(track) != nc or any(d is not None and d <= 0 for d in track):
            raise ValueError(f"track_days: one positive time constant or None per channel ({nc})")
        # seconds per channel; inf: a fixed commissioning baseline
        self._track_s = np.array([math.inf if d is None else d * 86_400.0 for d in track])
        if len(deltas) != nc or len(sigma_floors) != nc:
            raise ValueError(f"need one delta and one sigma floor per channel ({nc})")
        if any(d <= 0 for d in deltas) or any(f <= 0 for f in sigma_floors):
            raise ValueError("deltas and sigma floors must be > 0")
        if baseline_samples < len(self.covariate_names) + 3:
            raise ValueError("baseline_samples too small for the covariates")
        self.deltas = tuple(float(d) for d in deltas)
        self.sigma_floors = tuple(float(f) for f in sigma_floors)
        self.baseline_samples = baseline_samples
        self.alpha = alpha
        self.clear_samples = clear_samples
        self.h_shifts = h_shifts
        self.h_sigmas = h_sigmas
        self.range_margin = range_margin
        self._delta = np.array(self.deltas)
        self._floor = np.array(self.sigma_floors)
        self._reg = Regression("reg_", 1 + len(self.covariate_names))
        self._test = ChangeTest(
            "wear_",
            h_shifts=h_shifts,
            h_sigmas=h_sigmas,
            alpha=alpha,
            clear_fraction=0.4,
            clear_samples=clear_samples,
        )
        super().__init__()

    def _state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        c = (len(self.channels),)
        k = len(self.covariate_names)
        spec: dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]] = {
            "n_seen": (np.dtype(np.int64), (), 0),
            "category": (np.dtype(np.int8), (), 0),
            "changed_t": (np.dtype(np.float64), (), 0.0),
            "last_pred": (np.dtype(np.float64), c, 0.0),  # baseline at the newest sample
            # covariate range seen in commissioning, per channel
            "cov_lo": (np.dtype(np.float64), (*c, k), 1e300),
            "cov_hi": (np.dtype(np.float64), (*c, k), -1e300),
            # tracking channels: baseline offset learned since commissioning, and when
            "track_off": (np.dtype(np.float64), c, 0.0),
            "track_t": (np.dtype(np.float64), c, 0.0),
        }
        spec.update(self._reg.spec(c))
        spec.update(self._test.spec(c))
        return spec

    # -- subclass hooks ------------------------------------------------------------------

    def _qualify(self, batch: SampleBatch) -> tuple[np.ndarray, F64, F64]:
        """(row mask, covariates (n, k) without intercept, channel values (n, C))."""
        raise NotImplementedError

    # -- learning ------------------------------------------------------------------------

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        ok, cov, y = self._qualify(batch)
        idx = np.flatnonzero(ok)
        if not len(idx):
            return
        x = np.concatenate([np.ones((len(idx), 1)), np.nan_to_num(cov[idx], nan=0.0)], axis=1)
        yv = y[idx]
        for j, (_, take_log) in enumerate(self.channels):
            if take_log:
                yv[:, j] = np.log(np.maximum(yv[:, j], 1e-6))
        slot = batch.slot[idx]
        t = batch.t_s[idx]
        for rows in step_groups(slot):
            self._step(slot[rows], t[rows], x[rows], yv[rows])

    def _step(self, slots: I64, t: F64, x: F64, y: F64) -> None:
        s = self._state
        s["n_seen"][slots] += 1
        have = np.isfinite(y)
        r, c = np.nonzero(have)
        ix = (slots[r], c)
        n = s["reg_n"][ix]
        learning = n < self.baseline_samples
        if learning.any():
            lix = (ix[0][learning], ix[1][learning])
            self._reg.accumulate(s, lix, x[r[learning]], y[r[learning], c[learning]])
            xc = x[r[learning], 1:]
            s["cov_lo"][lix] = np.minimum(s["cov_lo"][lix], xc)
            s["cov_hi"][lix] = np.maximum(s["cov_hi"][lix], xc)
            done = n[learning] == self.baseline_samples - 1
            if done.any():
                dix = (lix[0][done], lix[1][done])
                self._reg.solve(s, dix, self._floor[dix[1]])
        live = ~learning
        if live.any() and self.covariate_names:
            # Only operating points the commissioning saw (plus a margin) are comparable:
            # a regression is not to be trusted far outside the range it was fitted on.
            lo, hi = s["cov_lo"][ix], s["cov_hi"][ix]
            pad = self.range_margin * (hi - lo) + 1e-9
            xc = x[r, 1:]
            live &= ((xc >= lo - pad) & (xc <= hi + pad)).all(axis=1)
        if live.any():
            lix = (ix[0][live], ix[1][live])
            pred = self._reg.predict(s, lix, x[r[live]])
            tl = t[r[live]]
            pred = pred + self._track(lix, y[r[live], c[live]] - pred, tl)
            s["last_pred"][lix] = pred
            z = y[r[live], c[live]] - pred
            self._test.step(
                s,
                lix,
                z,
                tl,
                delta=self._delta[lix[1]],
                sigma=s["reg_sigma"][lix],
            )
        cat = np.where(
            s["wear_on"][slots].any(axis=1), CategoryCode.MAINTENANCE_REQUIRED, CategoryCode.NONE
        ).astype(np.int8)
        changed = cat != s["category"][slots]
        s["category"][slots] = cat
        s["changed_t"][slots[changed]] = t[changed]

    def _track(self, ix: tuple[I64, I64], resid: F64, t: F64) -> F64:
        """The tracking offset of elements ``ix`` (distinct), moved toward ``resid`` by the
        time elapsed since their last sample, unless the channel is in alarm (the wear it
        reports must not be learned away). Returns the offset to add to the prediction."""
        s = self._state
        tau = self._track_s[ix[1]]
        off = s["track_off"][ix]
        tracking = np.isfinite(tau)
        if not tracking.any():
            return off
        last = s["track_t"][ix]
        dt = np.where(last > 0, np.maximum(t - last, 0.0), 0.0)
        w = np.where(tracking, -np.expm1(-dt / np.where(tracking, tau, 1.0)), 0.0)
        w = np.where(s["wear_on"][ix], 0.0, w)
        new = off + w * (resid - off)
        s["track_off"][ix] = new
        s["track_t"][ix] = np.where(tracking, np.maximum(last, t), last)
        return new

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        n = self._n_slots
        s = {k: v[:n] for k, v in self._state.items()}
        cat = s["category"]
        est = s["reg_n"] >= self.baseline_samples  # (n, C)
        on = s["wear_on"]
        _, h, _ = self._test.thresholds(self._delta[None, :], s["reg_sigma"])
        # worst channel: raised first, then by how far its statistic is over threshold
        score = np.where(
            est, s["wear_cusum"] / h + np.maximum(s["wear_level"], 0) / self._delta, -1
        )
        score = score + 100.0 * on
        worst = np.argmax(score, axis=1) if n else np.zeros(0, np.int64)
        rows = np.arange(n)
        since = np.where(on, s["wear_since"], np.inf).min(axis=1)
        conf = self._test.confidence(
            s, (rows, worst), self._delta[worst], s["reg_sigma"][rows, worst]
        )
        status = np.where(
            s["n_seen"] == 0,
            Status.NO_DATA,
            np.where(
                ~est.any(axis=1), Status.LEARNING, np.where(cat > 0, Status.ALARM, Status.NORMAL)
            ),
        ).astype(np.int8)
        evidence: dict[str, F64] = {"channel": np.where(n > 0, worst, 0).astype(np.float64)}
        for j, (name, take_log) in enumerate(self.channels):
            lvl = np.where(est[:, j], s["wear_level"][:, j], np.nan)
            if take_log:
                evidence[f"{name}_ratio"] = np.exp(lvl)
                evidence[f"{name}_baseline"] = np.where(
                    est[:, j], np.exp(s["last_pred"][:, j]), np.nan
                )
            else:
                evidence[f"{name}_excess"] = lvl
                evidence[f"{name}_baseline"] = np.where(est[:, j], s["last_pred"][:, j], np.nan)
        evidence["cusum"] = np.where(est[rows, worst], s["wear_cusum"][rows, worst], np.nan)
        evidence["cusum_threshold"] = np.where(est[rows, worst], h[rows, worst], np.nan)
        evidence["samples"] = s["n_seen"].astype(np.float64)
        return Verdicts(
            cause=self.cause,
            signal=", ".join(name for name, _ in self.channels),
            status=status,
            category=cat,
            severity=SEVERITY_BY_CATEGORY[cat],
            since_s=np.where(cat > 0, since, np.nan),
            changed_s=np.where(s["changed_t"] > 0, s["changed_t"], np.nan),
            confidence=np.where(cat > 0, conf, np.nan),
            evidence=evidence,
        )

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        out = super().evidence(v, i)
        name, take_log = self.channels[int(v.evidence["channel"][i])]
        out["channel"] = name
        out["signal"] = (
            f"{name} vs its baseline at the same {', '.join(self.covariate_names)}"
            if self.covariate_names
            else name
        )
        key = f"{name}_ratio" if take_log else f"{name}_excess"
        out["value"] = out.get(key)
        return out

    def _worst_phrase(self, e: dict[str, Any]) -> str:
        name = e["channel"]
        base = e.get(f"{name}_baseline")
        if f"{name}_ratio" in e and e[f"{name}_ratio"] is not None:
            return f"{name} {e[f'{name}_ratio']:.2f}x its baseline ({base:.3g})"
        excess = e.get(f"{name}_excess")
        if excess is None or base is None or not math.isfinite(excess):
            return name
        return f"{name} {excess:+.1f} over its baseline ({base:.3g})"
