from __future__ import annotations

import dataclasses
from collections.abc import Collection

import numpy as np
import pytest

from analytics import (
    DetectionService,
    Detector,
    DeviceTable,
    SampleBatch,
    SeatLeakDetector,
    SensorFaultDetector,
    Verdicts,
)
from sealscope.errors import ConfigError, StoreUnavailable
from sealscope.memory_alerts import MemoryAlertStore
from sealscope.registry import Device
from sealscope.wire import Sample
from tests.analytics.streams import C0, C_ALLOW, VALVE, Stream, valve_stream

HEALTHY = dataclasses.replace(VALVE, device_id="ACME-V-0001")
LEAKY = dataclasses.replace(VALVE, device_id="ACME-V-0002")
PUMP = Device(device_id="ACME-P-0001", kind="pump", manufacturer="acme", model="CP")


def samples(stream: Stream, lo: int, hi: int, *, ms: bool = False) -> list[Sample]:
    return [
        Sample(
            t=round(stream.t_s[i] * 1000) if ms else float(stream.t_s[i]),
            p_in_kpa=float(stream.p_in_kpa[i]),
            p_out_kpa=float(stream.p_out_kpa[i]),
            leak_mm3s=float(stream.leak_mm3s[i]),
            position_pct=float(stream.position_pct[i]),
        )
        for i in range(lo, min(hi, len(stream)))
    ]


def fleet(n: int = 30 * 24, seed: int = 0) -> dict[Device, Stream]:
    rng = np.random.default_rng(seed)
    c = np.full(n, C0)
    c[10 * 24 : 20 * 24] = 10 * C0  # leaks for ten days, then the seat is flushed
    return {
        HEALTHY: valve_stream(rng, C0, n, spike_rate=0.01),
        LEAKY: valve_stream(rng, c, n),
        PUMP: valve_stream(rng, 50 * C0, n),  # pump seal leakage is not a seat leak
    }


def run_days(service: DetectionService, streams: dict[Device, Stream], days: range) -> list:
    changes = []
    for day in days:
        for device, stream in streams.items():
            # Two uplinks a day, twelve samples each; the second in milliseconds.
            service.observe(device, samples(stream, day * 24, day * 24 + 12))
            service.observe(device, samples(stream, day * 24 + 12, day * 24 + 24, ms=True))
        changes += service.flush()
    return changes


def test_service_raises_one_alert_per_device_and_cause_then_clears():
    alerts = MemoryAlertStore()
    service = DetectionService(alerts=alerts, state_path=None)
    streams = fleet()
    changes = run_days(service, streams, range(30))

    assert [(c.device_id, c.action) for c in changes] == [
        (LEAKY.device_id, "raised"),
        (LEAKY.device_id, "cleared"),
    ]
    assert alerts.calls == [
        ("raise_alert", LEAKY.device_id, "seat_leak"),
        ("clear", LEAKY.device_id, "seat_leak"),
    ]
    (alert,) = alerts.list()
    assert alert.device_id == LEAKY.device_id and alert.cause == "seat_leak"
    assert alert.category == "maintenance_required" and alert.status == "resolved"
    t_leak = streams[LEAKY].t_s[10 * 24]
    assert t_leak < alert.opened_at < t_leak + 12 * 3600
    assert alert.resolved_at is not None and alert.resolved_at > streams[LEAKY].t_s[20 * 24]
    assert "x its commissioning baseline" in alert.summary
    assert alert.summary.endswith("schedule seat inspection")
    assert alert.evidence["signal"].startswith("leak_mm3s")
    assert alert.evidence["ratio"] > 3 and alert.evidence["baseline_c"] == pytest.approx(C0, 0.1)
    # since: the onset the CUSUM dates, the first sample of the leak (daily flushes: the
    # alert opens at the sample that raised it, a few hours later)
    assert alert.evidence["since"] == t_leak < alert.opened_at
    counters = service.counters
    assert counters["alerts_raised"] == 1 and counters["alerts_cleared"] == 1
    assert counters["devices"] == 3 and counters["flushes"] == 30
    assert counters["samples_observed"] == counters["samples_flushed"] == 3 * 30 * 24
    assert counters["samples_pending"] == 0 and counters["late_samples"] == 0


def test_service_escalates_the_same_alert_to_out_of_specification():
    rng = np.random.default_rng(3)
    n = 60 * 24
    c = C0 * np.exp(np.log(2 * C_ALLOW / C0) * np.clip(np.arange(n) - 72, 0, None) / n)
    alerts = MemoryAlertStore()
    service = DetectionService(alerts=alerts, state_path=None)
    changes = run_days(service, {LEAKY: valve_stream(rng, c, n)}, range(60))
    # raised, escalated once when the trend puts the class limit under 30 days away, then
    # out of specification once it is crossed: three calls on one alert
    assert [(c.action, c.category, c.severity) for c in changes] == [
        ("raised", "maintenance_required", 2),
        ("updated", "maintenance_required", 3),
        ("updated", "out_of_specification", 4),
    ]
    assert changes[1].evidence["rul_s"] > 0 and "days" in changes[1].evidence["rul"]
    assert "reaches the class limit in" in changes[1].summary
    (alert,) = alerts.list()
    assert alert.category == "out_of_specification" and alert.status == "open"
    assert alert.severity == 4
    assert "exceeds the rate D limit of 5 mm³/s for DN50" in alert.summary
    assert alert.evidence["leakage_class"] == "D"
    assert alert.evidence["allowable_mm3s"] == pytest.approx(5.0)


def test_service_state_survives_save_and_a_new_instance(tmp_path):
    path = tmp_path / "state" / "detectors.npz"
    streams = fleet()

    uninterrupted = MemoryAlertStore()
    reference = DetectionService(alerts=uninterrupted, state_path=None)
    expected = run_days(reference, streams, range(30))

    alerts = MemoryAlertStore()
    before = DetectionService(alerts=alerts, state_path=path)
    got = run_days(before, streams, range(15))  # restart while the alert is open
    before.save()
    assert path.exists() and list(path.parent.iterdir()) == [path]
    after = DetectionService(alerts=alerts, state_path=path)
    assert after.slot(LEAKY.device_id) == before.slot(LEAKY.device_id)
    assert after.explain(LEAKY.device_id) == before.explain(LEAKY.device_id)
    got += run_days(after, streams, range(15, 30))

    assert [(c.device_id, c.action, c.t) for c in got] == [
        (c.device_id, c.action, c.t) for c in expected
    ]
    assert len(alerts.list()) == 1  # no second alert for the one already open
    np.testing.assert_array_equal(
        after.detectors[0].verdicts().category, reference.detectors[0].verdicts().category
    )


def test_service_retries_an_alert_the_store_refused():
    class FlakyStore(MemoryAlertStore):
        fail = True

        def raise_alert(self, **kwargs):
            if self.fail:
                self.fail = False
                raise StoreUnavailable("database is locked")
            return super().raise_alert(**kwargs)

    alerts = FlakyStore()
    service = DetectionService(alerts=alerts, state_path=None)
    changes = run_days(service, fleet(), range(12))
    assert service.counters["alert_errors"] == 1
    assert [c.action for c in changes] == ["raised"]
    assert len(alerts.list(status="open")) == 1


def test_service_refuses_state_from_other_hyper_parameters(tmp_path):
    path = tmp_path / "detectors.npz"
    service = DetectionService(alerts=MemoryAlertStore(), state_path=path)
    run_days(service, fleet(), range(3))
    service.save()
    with pytest.raises(ConfigError, match="hyper-parameters"):
        DetectionService(
            alerts=MemoryAlertStore(),
            state_path=path,
            detectors=[SeatLeakDetector(baseline_samples=12)],
        )
    path.write_bytes(b"not an npz")
    with pytest.raises(ConfigError):
        DetectionService(alerts=MemoryAlertStore(), state_path=path)


def test_service_rejects_detectors_sharing_a_cause():
    with pytest.raises(ValueError, match="distinct"):
        DetectionService(
            alerts=MemoryAlertStore(),
            state_path=None,
            detectors=[SeatLeakDetector(), SeatLeakDetector()],
        )


def test_service_flush_with_nothing_pending_is_quiet():
    alerts = MemoryAlertStore()
    service = DetectionService(alerts=alerts, state_path=None)
    assert service.flush() == []
    service.observe(HEALTHY, [])
    assert service.flush() == []
    assert service.explain(HEALTHY.device_id)["seat_leak"]["status"] == "no_data"
    assert service.explain("nobody") == {}
    assert alerts.calls == []


class LeakDistrust(Detector):
    """A gate that distrusts the leak sensors of some slots and withholds nothing."""

    cause = "leak_distrust"
    signals = ("leak_mm3s",)

    def __init__(self, slots: list[int]) -> None:
        self.slots = slots
        super().__init__()

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        pass

    def verdicts(self) -> Verdicts:
        n = self.n_slots
        zeros = np.zeros(n, np.int8)
        nan = np.full(n, np.nan)
        return Verdicts(self.cause, "leak_mm3s", zeros, zeros, zeros, nan, nan, {})

    def as_gate(self) -> LeakDistrust:
        return self

    def screen(self, batch: SampleBatch, devices: DeviceTable | None = None) -> SampleBatch:
        self.update(batch, devices)
        return batch

    def faulty(self, signals: Collection[str], n: int) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        if "leak_mm3s" in signals:
            out[[s for s in self.slots if s < n]] = True
        return out


def test_service_holds_gated_verdicts_wherever_its_gate_distrusts_their_signals():
    alerts = MemoryAlertStore()
    service = DetectionService(
        alerts=alerts, state_path=None, detectors=[LeakDistrust([1]), SeatLeakDetector()]
    )
    trusting = DetectionService(
        alerts=MemoryAlertStore(), state_path=None, detectors=[LeakDistrust([]), SeatLeakDetector()]
    )
    raised = run_days(trusting, fleet(), range(15))
    assert [(c.device_id, c.action) for c in raised] == [(LEAKY.device_id, "raised")]
    # the gate distrusting the leaky valve's (slot 1) leak sensor holds that alert back
    changes = run_days(service, fleet(), range(15))
    assert [(c.device_id, c.action) for c in changes] == []
    explained = service.explain(LEAKY.device_id)["seat_leak"]
    assert explained["category"] is None
    assert explained["held_category"] == "maintenance_required"
    assert service.explain(HEALTHY.device_id)["seat_leak"]["held_category"] is None


def test_service_refuses_two_gates():
    with pytest.raises(ValueError, match="at most one gate"):
        DetectionService(
            alerts=MemoryAlertStore(),
            state_path=None,
            detectors=[LeakDistrust([0]), SensorFaultDetector(), SeatLeakDetector()],
        )
