"""FleetMonitor: seal alerts from the detectors become fleet-risk events, the risk table
is applied to the alert store on its period, and both survive a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analytics.fleet_monitor import FleetMonitor
from analytics.fleet_risk import FleetRisk
from analytics.service import AlertChange, DetectionService
from sealscope.alerts import SqliteAlertStore
from sealscope.registry import Device
from sealscope.risk import JsonFileRiskStore
from sealscope.wire import Sample

DAY = 86_400.0
T0 = 1_767_225_600.0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _ScriptedDetection(DetectionService):
    """The real service, with its flush result scripted: which devices raise seal alerts."""

    def __init__(self, alerts: SqliteAlertStore, state_path: Path) -> None:
        super().__init__(alerts=alerts, state_path=state_path)
        self.raise_next: list[tuple[str, float]] = []

    def flush(self) -> list[AlertChange]:
        super().flush()
        out = [
            AlertChange(d, "seat_leak", "raised", "maintenance_required", 2, "seal going", t)
            for d, t in self.raise_next
        ]
        self.raise_next = []
        return out


def _risk_alerts(alerts: SqliteAlertStore) -> list[Any]:
    return [a for a in alerts.list(limit=1000) if a.cause == "fleet_risk"]


def _fleet() -> list[Device]:
    return [
        Device(f"V{i:03d}", "valve", "ACME", "BV", batch="BAD" if i < 30 else f"OK-{i % 4}")
        for i in range(300)
    ]


def test_monitor_turns_seal_alerts_into_a_batch_risk_alert_and_restores(tmp_path: Path) -> None:
    alerts = SqliteAlertStore(tmp_path / "state.db")
    clock = _Clock()
    detection = _ScriptedDetection(alerts, tmp_path / "detectors.npz")
    saved = JsonFileRiskStore(tmp_path / "fleet_risk.json")
    monitor = FleetMonitor(
        detection=detection, risk=FleetRisk(), alerts=alerts,
        risk_path=tmp_path / "fleet_risk.npz", risk_store=saved, apply_every_s=3600, clock=clock,
    )  # fmt: skip
    devices = _fleet()
    for d in devices:
        monitor.observe(d, [Sample(t=T0, p_in_kpa=500.0), Sample(t=T0 + 120 * DAY)])
    # batch BAD: 10 of 30 seals go; the rest of the fleet: 3 of 270
    detection.raise_next = [(f"V{i:03d}", T0 + 60 * DAY) for i in range(0, 30, 3)]
    detection.raise_next += [("V100", T0 + 60 * DAY), ("V200", T0 + 70 * DAY)]
    detection.raise_next += [("V250", T0 + 80 * DAY)]
    monitor.flush()
    assert _risk_alerts(alerts) == []  # not applied before its period
    clock.now = 3601.0
    monitor.flush()
    opened = _risk_alerts(alerts)
    assert [a.device_id for a in opened] == ["batch:BAD"]
    assert monitor.table().events == 13
    assert saved.load() is None  # nothing saved yet: an API process answers 503
    monitor.save()
    # what a separate API process reads: the same table, through the port
    served = JsonFileRiskStore(tmp_path / "fleet_risk.json").load()
    assert served is not None
    assert [r.as_dict() for r in served.rows] == [r.as_dict() for r in monitor.table().rows]

    restored = FleetMonitor(
        detection=DetectionService(alerts=alerts, state_path=tmp_path / "detectors.npz"),
        risk=FleetRisk(), alerts=alerts, risk_path=tmp_path / "fleet_risk.npz",
    )  # fmt: skip
    table = restored.table()
    assert table.events == 13 and table.devices == 300
    row = next(r for r in table.rows if r.key == "batch:BAD")
    assert row.flagged and np.isfinite(row.q_value)
    assert restored.risk.active == monitor.risk.active
    alerts.close()
