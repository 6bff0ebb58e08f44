"""Any numeric signals: learn a device's normal from a training window, score every sample.

For assets whose sensors fit no physical model above. Normal behaviour is a location and
a covariance of the readings; a sample's squared Mahalanobis distance d² from it is its
anomaly score, and ``c_j = z_j (P z)_j`` (z the centred, scaled sample, P the inverse
correlation) splits d² into per-feature contributions that sum to it: the largest names
the cause. The threshold is the chi-square quantile ``1 - alpha`` for the number of
features, raised to what the training window itself shows (real readings have heavier
tails than a Gaussian), so about ``alpha`` of normal samples are flagged.

Two faces of the same model:

* ``RobustMahalanobis``: the array API for offline use (``sealscope detect`` on a CSV):
  ``fit(X_train)`` then ``score(X) -> MultivariateScores`` (score, d², flag, per-feature
  contributions, cause). The fit is robust: features are scaled by median/MAD, then a few
  concentration steps of the minimum covariance determinant (re-estimate from the
  ``support`` share of training rows closest to the current fit) keep faults inside the
  training window from becoming normal. NaN in training is imputed with the column
  median; in scoring a missing feature is put at the learned location, so it contributes
  nothing. Features absent from most training rows or constant in them are inactive.
* ``MultivariateDetector``: the streaming detector, per device, vectorised over devices.
  Its first ``train_samples`` samples estimate mean and covariance with a vectorised
  Welford update (missing readings contribute nothing); the next ``calibrate_samples``
  samples calibrate the threshold (inflated by the mean of the clipped d² over its
  expected value); after that every sample is scored and the clipped log score
  ``log(d² / threshold)`` feeds a CUSUM (``changepoint.ChangeTest``), so one odd sample
  is a flag in the score but only a persistent anomaly is an alert
  (``maintenance_required``, cause ``anomaly``), explained by its top features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

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
    fmt_time,
    step_groups,
)
from analytics.changepoint import ChangeTest
from analytics.evidence import tidy_evidence
from analytics.resolution import resolution, robust_scale

__all__ = ["MultivariateDetector", "MultivariateScores", "RobustMahalanobis", "chi2_quantile"]

_DEFAULT_FEATURES: Final = (
    "p_in_kpa",
    "p_out_kpa",
    "leak_mm3s",
    "temp_c",
    "vib_mms",
    "flow_m3h",
    "speed_rpm",
    "motor_a",
)


def chi2_quantile(q: float, dof: npt.ArrayLike) -> F64:
    """Chi-square quantile by the Wilson-Hilferty cube (within ~1 % for dof >= 1, q <= 0.9999)."""
    z = NormalDist().inv_cdf(q)
    k = np.maximum(np.asarray(dof, dtype=np.float64), 1.0)
    c = 2.0 / (9.0 * k)
    return k * np.maximum(1.0 - c + z * np.sqrt(c), 0.0) ** 3


@dataclass(frozen=True, slots=True)
class MultivariateScores:
    """Per row of the scored array."""

    score: F64  # d² / threshold: > 1 is flagged
    distance2: F64  # squared Mahalanobis distance
    flag: npt.NDArray[np.bool_]
    contributions: F64  # (rows, features), summing to distance2
    cause: list[str | None]  # feature with the largest contribution, None when not flagged
    threshold: float


class RobustMahalanobis:
    """Robust location/covariance model of normal rows; ``fit`` then ``score``."""

    def __init__(
        self,
        *,
        alpha: float = 1e-3,
        support: float = 0.75,
        c_steps: int = 5,
        ridge: float = 1e-3,
        min_presence: float = 0.5,
        min_variance: float = 0.05,
    ) -> None:
        if not 0 < alpha < 0.5 or not 0.5 <= support <= 1:
            raise ValueError("need 0 < alpha < 0.5 and 0.5 <= support <= 1")
        self.alpha = alpha
        self.support = support
        self.c_steps = c_steps
        self.ridge = ridge
        self.min_presence = min_presence
        self.min_variance = min_variance
        self.feature_names: list[str] = []
        self.resolution_: F64 | None = None
        self.location_: F64 | None = None
        self.scale_: F64 | None = None
        self.precision_: F64 | None = None
        self.active_: npt.NDArray[np.bool_] | None = None
        self.threshold_: float = math.nan

    def fit(
        self, x_train: npt.ArrayLike, feature_names: list[str] | None = None
    ) -> RobustMahalanobis:
        x = np.atleast_2d(np.asarray(x_train, dtype=np.float64))
        n, p = x.shape
        if n < p + 2:
            raise ValueError(f"need more training rows ({n}) than features + 1 ({p + 1})")
        self.feature_names = list(feature_names) if feature_names else [f"x{j}" for j in range(p)]
        if len(self.feature_names) != p:
            raise ValueError("one name per feature")
        present = np.isfinite(x)
        quanta = np.array([resolution(x[present[:, j], j]) for j in range(p)])
        med, scale = (np.array(a) for a in zip(
            *(robust_scale(x[present[:, j], j], quanta[j]) for j in range(p)), strict=True
        ))  # fmt: skip
        xi = np.where(present, x, med)
        active = (present.mean(axis=0) >= self.min_presence) & (scale > 1e-12 * (1 + np.abs(med)))
        if not active.any():
            raise ValueError("no feature varies in the training window")
        scale = np.where(active, scale, 1.0)
        z = np.where(active, (xi - med) / scale, 0.0)
        # No channel's variance in the concentrated subset may fall below half a quantum
        # or min_variance: a quantised channel sitting on one level there would otherwise
        # get an enormous precision and dominate every distance.
        var_floor = np.maximum((0.5 * quanta / scale) ** 2, self.min_variance)
        loc = np.zeros(p)
        cov = self._floored(np.cov(z, rowvar=False).reshape(p, p), var_floor)
        keep = np.arange(n)
        h = max(p + 2, int(self.support * n))
        for _ in range(self.c_steps):
            prec = self._invert(cov, active)
            d = z - loc
            d2 = np.einsum("ij,jk,ik->i", d, prec, d)
            new_keep = np.sort(np.argsort(d2)[:h])
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
            loc = z[keep].mean(axis=0)
            cov = self._floored(np.cov(z[keep], rowvar=False).reshape(p, p), var_floor)
        self.resolution_ = quanta
        prec = self._invert(cov, active)
        d = z - loc
        d2 = np.einsum("ij,jk,ik->i", d, prec, d)
        k = int(active.sum())
        # consistency: the median d² of all training rows should be chi-square's median
        factor = max(float(np.median(d2)) / float(chi2_quantile(0.5, k)), 1e-6)
        prec = prec / factor
        d2 = d2 / factor
        # The tail is extrapolated from the 90th percentile, which up to 10 % of faulty
        # training rows cannot move, rather than read off where those rows would sit.
        q_emp = float(np.quantile(d2, 0.9)) * float(
            chi2_quantile(1 - self.alpha, k) / chi2_quantile(0.9, k)
        )
        self.location_ = med + loc * scale
        self.scale_ = scale
        self.precision_ = prec
        self.active_ = active
        self.threshold_ = max(float(chi2_quantile(1 - self.alpha, k)), q_emp)
        return self

    @staticmethod
    def _floored(cov: F64, var_floor: F64) -> F64:
        var = np.diag(cov)
        ratio = np.where(
            var > 0, np.sqrt(np.maximum(var, var_floor) / np.where(var > 0, var, 1)), 1
        )
        # scale rows and columns, so correlations are kept while variances are floored
        out = cov * np.outer(ratio, ratio)
        np.fill_diagonal(out, np.maximum(var, var_floor))
        return out

    def _invert(self, cov: F64, active: npt.NDArray[np.bool_]) -> F64:
        p = len(cov)
        c = np.where(np.outer(active, active), cov, 0.0)
        c = c + np.diag(np.where(active, self.ridge, 1.0))
        prec = np.linalg.inv(c)
        return np.where(np.outer(active, active), prec, 0.0).reshape(p, p)

    def score(self, x: npt.ArrayLike, location: F64 | None = None) -> MultivariateScores:
        """Scores of the rows of ``x``, at ``location`` (a drifted one) or the fitted one."""
        if self.location_ is None or self.scale_ is None or self.precision_ is None:
            raise RuntimeError("fit() first")
        xa = np.atleast_2d(np.asarray(x, dtype=np.float64))
        z = (xa - (self.location_ if location is None else location)) / self.scale_
        z = np.where(np.isfinite(z) & self.active_, z, 0.0)
        pz = z @ self.precision_
        contrib = z * pz
        d2 = contrib.sum(axis=1)
        score = d2 / self.threshold_
        flag = score > 1.0
        top = np.argmax(contrib, axis=1)
        cause = [
            self.feature_names[j] if f else None
            for j, f in zip(top.tolist(), flag.tolist(), strict=True)
        ]
        return MultivariateScores(score, d2, flag, contrib, cause, self.threshold_)


class MultivariateDetector(Detector):
    cause: ClassVar[str] = "anomaly"
    signals: ClassVar[tuple[str, ...]] = _DEFAULT_FEATURES
    gated: ClassVar[bool] = True

    def __init__(
        self,
        *,
        features: tuple[str, ...] = _DEFAULT_FEATURES,
        train_samples: int = 200,
        calibrate_samples: int = 100,
        alpha: float = 1e-3,
        min_presence: float = 0.5,
        ridge: float = 1e-2,
        h_shifts: float = 2.5,
        clear_samples: int = 12,
    ) -> None:
        unknown = set(features) - set(_DEFAULT_FEATURES)
        if unknown or len(features) < 2:
            raise ValueError(f"features: at least two of {_DEFAULT_FEATURES}")
        if train_samples < 3 * len(features) or calibrate_samples < 10:
            raise ValueError("need train_samples >= 3 x features and calibrate_samples >= 10")
        self.features = tuple(features)
        self.train_samples = train_samples
        self.calibrate_samples = calibrate_samples
        self.alpha = alpha
        self.min_presence = min_presence
        self.ridge = ridge
        self.h_shifts = h_shifts
        self.clear_samples = clear_samples
        p = len(features)
        self._p = p
        self._iu = np.triu_indices(p)
        self._test = ChangeTest(
            "mv_", h_shifts=h_shifts, h_sigmas=0.0, clear_fraction=0.0, clear_samples=clear_samples
        )
        self._base_thr = float(chi2_quantile(1 - alpha, 1))
        super().__init__()

    def _state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f64, f32, i32 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int32)
        p = self._p
        tri = (p * (p + 1) // 2,)
        spec: dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]] = {
            "n": (np.dtype(np.int64), (), 0),
            "cnt": (i32, (p,), 0),
            "mean": (f64, (p,), 0.0),
            "m2": (f64, tri, 0.0),
            "sd": (f64, (p,), 1.0),
            "prec": (f32, tri, 0.0),
            "active": (np.dtype(np.bool_), (p,), False),
            "thr": (f64, (), 1.0),
            "cal_sum": (f64, (), 0.0),
            "contrib": (f32, (p,), 0.0),  # of the newest flagged sample
            "last_score": (f64, (), 0.0),
            "category": (np.dtype(np.int8), (), 0),
            "changed_t": (f64, (), 0.0),
        }
        spec.update(self._test.spec())
        return spec

    def _unpack(self, packed: np.ndarray) -> F64:
        p = self._p
        m = np.zeros((len(packed), p, p))
        m[:, self._iu[0], self._iu[1]] = packed
        m[:, self._iu[1], self._iu[0]] = packed
        return m

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        x = np.stack([batch.signal(f) for f in self.features], axis=1)
        ok = np.isfinite(x).any(axis=1)
        idx = np.flatnonzero(ok)
        if not len(idx):
            return
        x = x[idx]
        slot = batch.slot[idx]
        t = batch.t_s[idx]
        for rows in step_groups(slot):
            self._step(slot[rows], t[rows], x[rows])

    def _step(self, slots: I64, t: F64, x: F64) -> None:
        s = self._state
        n = s["n"][slots]
        s["n"][slots] = n + 1
        train = n < self.train_samples
        if train.any():
            self._learn(slots[train], x[train], n[train] + 1)
        live = ~train
        if not live.any():
            return
        ls, lt, lx = slots[live], t[live], x[live]
        d2, contrib = self._score(ls, lx)
        k = (n[live] + 1) - self.train_samples  # 1-based sample after training
        cal = k <= self.calibrate_samples
        if cal.any():
            cs = ls[cal]
            s["cal_sum"][cs] += np.minimum(d2[cal], 10.0 * s["thr"][cs])
            finish = cs[k[cal] == self.calibrate_samples]
            if len(finish):
                p_act = np.maximum(s["active"][finish].sum(axis=1), 1)
                mean_d2 = s["cal_sum"][finish] / self.calibrate_samples
                s["thr"][finish] *= np.maximum(1.0, mean_d2 / p_act)
        run = ~cal
        if not run.any():
            return
        rs, rt = ls[run], lt[run]
        score = d2[run] / s["thr"][rs]
        s["last_score"][rs] = score
        flagged = score > 1.0
        s["contrib"][rs[flagged]] = contrib[run][flagged].astype(np.float32)
        z = np.log(np.maximum(score, 1e-12))
        self._test.step(s, rs, z, rt, delta=1.0, sigma=np.zeros(len(rs)))
        cat = np.where(s["mv_on"][rs], CategoryCode.MAINTENANCE_REQUIRED, CategoryCode.NONE).astype(
            np.int8
        )
        changed = cat != s["category"][rs]
        s["category"][rs] = cat
        s["changed_t"][rs[changed]] = rt[changed]

    def _learn(self, slots: I64, x: F64, n_new: I64) -> None:
        s = self._state
        mean = s["mean"][slots]
        present = np.isfinite(x)
        xi = np.where(present, x, mean)  # a missing reading adds nothing
        delta = xi - mean
        mean = mean + delta / n_new[:, None]
        outer = delta[:, :, None] * (xi - mean)[:, None, :]
        s["m2"][slots] += outer[:, self._iu[0], self._iu[1]]
        s["mean"][slots] = mean
        s["cnt"][slots] += present
        done = n_new == self.train_samples
        if done.any():
            self._fit(slots[done])

    def _fit(self, slots: I64) -> None:
        s = self._state
        n = float(self.train_samples)
        cov = self._unpack(s["m2"][slots]) / (n - 1)
        var = np.diagonal(cov, axis1=1, axis2=2)
        mean = s["mean"][slots]
        sd = np.sqrt(np.maximum(var, 0.0))
        active = (s["cnt"][slots] >= self.min_presence * n) & (sd > 1e-9 * (1 + np.abs(mean)))
        sd = np.where(active, np.maximum(sd, 1e-6 * (1 + np.abs(mean))), 1.0)
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        both = active[:, :, None] & active[:, None, :]
        corr = np.where(both, corr, 0.0)
        eye = np.eye(self._p)[None]
        corr = corr + eye * np.where(active, self.ridge, 1.0)[:, None, :]
        prec = np.linalg.inv(corr)
        prec = np.where(both, prec, 0.0)
        s["sd"][slots] = sd
        s["active"][slots] = active
        s["prec"][slots] = prec[:, self._iu[0], self._iu[1]].astype(np.float32)
        s["thr"][slots] = chi2_quantile(1 - self.alpha, active.sum(axis=1))

    def _score(self, slots: I64, x: F64) -> tuple[F64, F64]:
        s = self._state
        z = (x - s["mean"][slots]) / s["sd"][slots]
        z = np.where(np.isfinite(z) & s["active"][slots], z, 0.0)
        prec = self._unpack(s["prec"][slots].astype(np.float64))
        contrib = z * np.einsum("ijk,ik->ij", prec, z)
        return contrib.sum(axis=1), contrib

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        n = self._n_slots
        s = {k: v[:n] for k, v in self._state.items()}
        cat = s["category"]
        trained = s["n"] >= self.train_samples + self.calibrate_samples
        status = np.where(
            s["n"] == 0,
            Status.NO_DATA,
            np.where(~trained, Status.LEARNING, np.where(cat > 0, Status.ALARM, Status.NORMAL)),
        ).astype(np.int8)
        contrib = s["contrib"].astype(np.float64)
        top = np.argmax(contrib, axis=1) if n else np.zeros(0, np.int64)
        total = np.maximum(contrib.sum(axis=1), 1e-12)
        rows = np.arange(n)
        on = cat > 0
        evidence: dict[str, F64] = {
            "score": np.where(trained, s["last_score"], np.nan),
            "level_score": np.where(trained, np.exp(s["mv_level"]), np.nan),
            "threshold_d2": np.where(trained, s["thr"], np.nan),
            "cusum": np.where(trained, s["mv_cusum"], np.nan),
            "top_feature": np.where(on, top, np.nan).astype(np.float64),
            "top_share": np.where(on, contrib[rows, top] / total, np.nan),
            "features": s["active"].sum(axis=1).astype(np.float64),
        }
        for j, name in enumerate(self.features):
            evidence[f"{name}_contribution"] = np.where(on, contrib[:, j], np.nan)
            evidence[f"{name}_mean"] = np.where(
                trained & s["active"][:, j], s["mean"][:, j], np.nan
            )
        return Verdicts(
            cause=self.cause,
            signal="Mahalanobis distance of " + ", ".join(self.features),
            status=status,
            category=cat,
            severity=SEVERITY_BY_CATEGORY[cat],
            since_s=np.where(on, s["mv_since"], np.nan),
            changed_s=np.where(s["changed_t"] > 0, s["changed_t"], np.nan),
            confidence=self._test.confidence(s, slice(0, n), 1.0, np.zeros(n)),
            evidence=evidence,
        )

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        out = super().evidence(v, i)
        top = v.evidence["top_feature"][i]
        out["top_feature"] = self.features[int(top)] if math.isfinite(top) else None
        return tidy_evidence(out)

    def summary(self, v: Verdicts, i: int) -> str:
        if v.category[i] != CategoryCode.MAINTENANCE_REQUIRED:
            return "Readings back within their learned normal"
        e = self.evidence(v, i)
        share = e.get("top_share") or 0.0
        return (
            f"Readings unlike this device's normal (score {e['level_score']:.1f}x threshold) "
            f"since {fmt_time(e['since'])}, mostly {e['top_feature']} ({100 * share:.0f} % of "
            "the distance): inspect the asset"
        )
