"""What a device page charts: seal health against its baseline and its ISO 5208 class limit,
actuation against ΔP, pump seal trends, and each detector's current verdict.

Nothing here decides anything: the leak coefficient of each reading is the seat-leak
detector's own (``SeatLeakDetector.log_coefficient``), the baseline, trend and remaining
time come from the detection process's saved state (``DetectionService.explain``), and the
class limit from ``sealscope.iso5208``. Before any state is saved (or for a device the
detection process has not seen), the baseline is the median of the first qualifying
readings shown, and says so (``baseline_source``).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from analytics.actuation import ActuationWearDetector
from analytics.base import SampleBatch
from analytics.pump_seal import PumpSealDetector
from analytics.seat_leak import SeatLeakDetector
from analytics.service import DetectionService, default_detectors
from sealscope import iso5208
from sealscope.alerts import AlertStore
from sealscope.config import Settings
from sealscope.errors import SealscopeError
from sealscope.registry import Device
from sealscope.storage import TelemetryQuery, TelemetryStore

__all__ = ["DetectionState", "actuation_points", "pump_series", "seal_series"]

log = logging.getLogger(__name__)

MAX_CHART_POINTS: Final = 400
MAX_SCATTER_POINTS: Final = 600
_RAW_LIMIT: Final = 100_000


class DetectionState:
    """The detection process's saved state, read again whenever its file changes."""

    def __init__(self, settings: Settings, alerts: AlertStore) -> None:
        self._settings = settings
        self._alerts = alerts
        self._path: Path = settings.detector_state_path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._service: DetectionService | None = None
        self.detectors = default_detectors(settings.detectors)

    def detector(self, cls: type[Any]) -> Any:
        return next(d for d in self.detectors if isinstance(d, cls))

    def explain(self, device_id: str) -> dict[str, dict[str, Any]]:
        """Each detector's verdict for the device; {} when no state is saved (yet)."""
        try:
            stat = self._path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._service = DetectionService(
                        alerts=self._alerts,
                        state_path=self._path,
                        detectors=default_detectors(self._settings.detectors),
                    )
                except SealscopeError as exc:
                    log.warning("device page: detector state unreadable: %s", exc)
                    self._service = None
                self._stamp = stamp
            service = self._service
            return service.explain(device_id) if service is not None else {}


async def _columns(
    store: TelemetryStore, device: Device, fields: tuple[str, ...], start_ns: int, stop_ns: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Raw readings of ``fields`` aligned on event time (NaN where a reading lacks one)."""
    got: dict[str, dict[int, float]] = {}
    for f in fields:
        rows = await store.query(
            TelemetryQuery(device.device_id, device.kind, f, start_ns, stop_ns, None, _RAW_LIMIT)
        )
        got[f] = dict(rows)
    times = np.array(sorted({t for rows in got.values() for t in rows}), dtype=np.int64)
    cols = {
        f: np.array([rows.get(int(t), math.nan) for t in times], dtype=np.float64)
        for f, rows in got.items()
    }
    return times, cols


def _thin(t_ms: np.ndarray, values: np.ndarray, n: int) -> list[list[float]]:
    """At most ``n`` points: medians of equal time slices (a chart cannot show more)."""
    if len(t_ms) <= n:
        return [[float(a), float(b)] for a, b in zip(t_ms, values, strict=True)]
    edges = np.linspace(t_ms[0], t_ms[-1] + 1, n + 1)
    which = np.searchsorted(edges, t_ms, side="right") - 1
    out = []
    for k in np.unique(which):
        sel = which == k
        out.append([float(np.median(t_ms[sel])), float(np.median(values[sel]))])
    return out


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class Window:
    start_ns: int
    stop_ns: int


async def seal_series(
    store: TelemetryStore,
    device: Device,
    seat: SeatLeakDetector,
    window: Window,
    verdict: dict[str, Any] | None,
) -> dict[str, Any]:
    """A valve's seat leakage over the window, in the units its class limit is given in."""
    times, cols = await _columns(store, device, seat.signals, window.start_ns, window.stop_ns)
    batch = SampleBatch(np.zeros(len(times), np.int64), times / 1e9, cols)
    idx, logc = seat.log_coefficient(batch)
    n = seat.exponent
    code = iso5208.class_code(device.leakage_class or "")
    allowable = float(iso5208.allowable_mm3s(code, device.dn or 0))
    test_dp = float(iso5208.seat_test_dp_kpa(device.pn or 0))
    at_test = math.isfinite(test_dp)
    # at the ISO 5208 test ΔP (mm³/s) when PN is known, else the bare coefficient
    scale = test_dp**n if at_test else 1.0
    values = np.exp(logc) * scale
    t_ms = times[idx] // 1_000_000
    evidence = (verdict or {}).get("evidence") or {}
    baseline = _finite(evidence.get("baseline_c"))
    source = "detector" if baseline is not None else None
    if baseline is None and len(logc) >= 3:
        first = logc[: seat.baseline_samples]
        baseline, source = float(np.exp(np.median(first))), "first_readings"
    rul = _finite(evidence.get("rul_s"))
    current = _finite(evidence.get("current_c"))
    return {
        "unit": "mm³/s" if at_test else f"mm³/s/kPa^{n:g}",
        "quantity": "leak_at_test" if at_test else "leak_coefficient",
        "exponent": n,
        "test_dp_kpa": test_dp if at_test else None,
        "leakage_class": device.leakage_class or None,
        "dn": device.dn,
        "points": _thin(t_ms, values, MAX_CHART_POINTS),
        "readings": len(idx),
        "baseline": baseline * scale if baseline is not None else None,
        "baseline_source": source,
        "limit": allowable if at_test and math.isfinite(allowable) else None,
        "current": current * scale if current is not None else None,
        "ratio": _finite(evidence.get("ratio")),
        "growth_per_30d": _finite(evidence.get("growth_per_30d")),
        "rul_s": rul,
        "rul_late_s": _finite(evidence.get("rul_late_s")),
        "limit_eta_s": _finite(evidence.get("limit_eta_s")),
        "trend": evidence.get("rul"),
        "status": (verdict or {}).get("status"),
        "category": (verdict or {}).get("category"),
    }


async def actuation_points(
    store: TelemetryStore, device: Device, actuation: ActuationWearDetector, window: Window
) -> dict[str, Any]:
    """Each stroke's time and torque against the ΔP it worked against (newest last)."""
    fields = ("stroke_s", "torque_nm", "p_in_kpa", "p_out_kpa")
    times, cols = await _columns(store, device, fields, window.start_ns, window.stop_ns)
    stroke, torque = cols["stroke_s"], cols["torque_nm"]
    dp = cols["p_in_kpa"] - cols["p_out_kpa"]
    keep = np.flatnonzero((np.isfinite(stroke) | np.isfinite(torque)) & np.isfinite(dp))
    keep = keep[-MAX_SCATTER_POINTS:]

    def col(a: np.ndarray) -> list[float | None]:
        return [float(v) if math.isfinite(v) else None for v in a[keep]]

    return {
        "t_ms": [int(t) // 1_000_000 for t in times[keep]],
        "dp_kpa": col(dp),
        "stroke_s": col(stroke),
        "torque_nm": col(torque),
        "strokes": len(keep),
    }


async def pump_series(
    store: TelemetryStore, device: Device, pump: PumpSealDetector, window: Window
) -> dict[str, Any]:
    """Seal-chamber leakage, casing temperature and vibration as bucket means."""
    span_s = (window.stop_ns - window.start_ns) / 1e9
    every = max(60, int(span_s / MAX_CHART_POINTS))
    out: dict[str, Any] = {"every_s": every}
    for name, _ in pump.channels:
        rows = await store.query(
            TelemetryQuery(
                device.device_id, device.kind, name, window.start_ns, window.stop_ns, every
            )
        )
        out[name] = [[t // 1_000_000, v] for t, v in rows if math.isfinite(v)]
    return out
