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


def test_degradation_levels_read_the_seat_leak_coefficient_against_its_baseline() -> None:
    from analytics.fleet_risk import degradation_levels
    from analytics.seat_leak import SeatLeakDetector
    from sealscope.memory_alerts import MemoryAlertStore

    service = DetectionService(
        alerts=MemoryAlertStore(), state_path=None, detectors=[SeatLeakDetector()]
    )
    valves = [Device(f"V{i}", "valve", "ACME", "BV", batch="B") for i in range(3)]
    for d in valves:
        service.observe(d, [])
    rng = np.random.default_rng(0)
    n = 400  # per valve: 200 at baseline, then valve 1 leaks 4x as much
    t = np.tile(T0 + np.arange(n) * 300.0, 3)
    slots = np.repeat(np.arange(3), n)
    factor = np.where((slots == 1) & (np.arange(3 * n) % n >= 200), 4.0, 1.0)
    cols = {
        "p_in_kpa": np.full(3 * n, 600.0),
        "p_out_kpa": np.full(3 * n, 100.0),
        "position_pct": np.zeros(3 * n),
        "leak_mm3s": 2.0 * factor * np.exp(rng.normal(0.0, 0.05, 3 * n)),
    }
    service.observe_arrays(slots, t, cols)
    service.flush()
    ids, level, cause, ttl = degradation_levels(service)
    assert ids == ("V0", "V1", "V2")
    assert level[1] > 0.5 * np.log(4.0)  # the smoothed level is on its way to log 4
    assert abs(level[0]) < 0.1 and abs(level[2]) < 0.1
    assert cause.tolist() == [0, 0, 0]  # seat leak
    assert ttl.shape == (3,)
    # fed to fleet risk, the leaking valve is the one clearly growing
    risk = FleetRisk(min_growth_days=0.5)
    risk.add_devices(valves)
    risk.observe_many(list(ids), np.full(3, T0), np.full(3, T0 + n * 300.0))
    risk.observe_levels(ids, np.zeros(3), cause)  # commissioned
    risk.observe_many(list(ids), np.full(3, T0), np.full(3, T0 + 2 * n * 300.0))
    risk.observe_detectors(service)
    assert risk.table().rows[0].growth_devices == 3
