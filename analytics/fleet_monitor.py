"""The detection process's view of the fleet: per-device detectors plus fleet risk.

``FleetMonitor`` stands where ingest expects its ``Detection`` (observe, flush, save):
every sample goes to the ``DetectionService`` and extends its device's exposure in
``FleetRisk``; every seal alert the service raises is a fleet-risk event; the risk table
is re-evaluated and its alerts applied every ``apply_every_s`` of wall time (the exact
tests cost O(groups), not O(samples), but there is no point running them per batch).

Each save also writes the risk table to a ``RiskStore``, so an API process that does not
run the detectors serves the table the detection process last saved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from analytics.fleet_risk import FleetRisk
from analytics.service import AlertChange, DetectionService
from sealscope.alerts import AlertStore
from sealscope.config import Settings
from sealscope.registry import Device
from sealscope.risk import JsonFileRiskStore, RiskStore, RiskTable
from sealscope.wire import Sample

__all__ = ["FleetMonitor"]

log = logging.getLogger(__name__)


class FleetMonitor:
    def __init__(
        self,
        *,
        detection: DetectionService,
        risk: FleetRisk,
        alerts: AlertStore,
        risk_path: Path | None,
        risk_store: RiskStore | None = None,
        apply_every_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if apply_every_s <= 0:
            raise ValueError("apply_every_s must be > 0")
        self.detection = detection
        self.risk = risk
        self._alerts = alerts
        self._risk_path = risk_path
        self._risk_store = risk_store
        self._apply_every_s = apply_every_s
        self._clock = clock
        self._last_apply = clock()
        # the API reads the table from its own thread while ingest feeds the monitor
        self._lock = threading.Lock()
        if risk_path is not None and risk_path.exists():
            risk.load(risk_path)
            log.info("fleet risk: %d devices restored from %s", risk.device_count, risk_path)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        detection: DetectionService,
        alerts: AlertStore,
        **overrides: Any,
    ) -> FleetMonitor:
        """What ``up`` and ``ingest`` run: risk state and the shared table under
        ``settings.data_dir``, re-evaluated every ``settings.risk_every_s``."""
        kwargs: dict[str, Any] = {
            "detection": detection,
            "risk": FleetRisk(),
            "alerts": alerts,
            "risk_path": settings.fleet_risk_state_path,
            "risk_store": JsonFileRiskStore(settings.risk_table_path),
            "apply_every_s": settings.risk_every_s,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def observe(self, device: Device, samples: Sequence[Sample]) -> None:
        self.detection.observe(device, samples)
        with self._lock:
            self.risk.observe(device, samples)

    def flush(self) -> list[AlertChange]:
        changes = self.detection.flush()
        with self._lock:
            self.risk.record_changes(changes)
            if self._clock() - self._last_apply >= self._apply_every_s:
                self.apply()
        return changes

    def apply(self) -> list[Any]:
        """Evaluate the risk table now and raise, update or clear its alerts."""
        self._last_apply = self._clock()
        self.risk.observe_detectors(self.detection)
        changes = self.risk.apply(self._alerts)
        for c in changes:
            log.info("fleet risk: %s %s (%s)", c.key, c.action, c.strength)
        return changes

    def table(self) -> RiskTable:
        with self._lock:
            return self.risk.table()

    def save(self) -> None:
        self.detection.save()
        with self._lock:
            if self._risk_path is not None:
                self.risk.save(self._risk_path)
            if self._risk_store is not None:
                self._risk_store.save(self.risk.table())
