"""Sensor-fault screen on simulated fleets: silent on healthy devices, awake on broken ones.

The constructed streams of ``test_sensor_and_wear`` check each fault kind in isolation;
these run ``firmware_sim`` fleets (quantised readings, valves closed for days, pumps
stopping, radio losses and retries, wrong clocks) through ``run_eval`` with a screen
that records every fault it raises, so a false alarm shows up whenever it happens, not
only when it is still on at a flush.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics import (
    DetectionService,
    Detector,
    PumpSealDetector,
    SampleBatch,
    SeatLeakDetector,
    SensorFaultDetector,
)
from analytics.evaluation import run_eval
from analytics.sensor_health import FAULT_NAMES
from firmware_sim import Fleet, FleetSpec
from sealscope.errors import ConfigError
from sealscope.registry import Device
from tests.analytics.memory_alerts import MemoryAlertStore
from tests.analytics.streams import T0, device_table

DAY = 86_400.0
PUMP = Device(device_id="P-0", kind="pump", manufacturer="acme", model="CP", dn=80, pn=16)
# the demo fleet of `sealscope up --simulate`, as FleetSpec.field overrides
DEMO = {
    "sample_interval_s": 60.0,
    "samples_per_uplink": 10,
    "phase_spread_s": None,
    "onset_model": "window",
    "degrading_share": 0.2,
    "step_share": 0.25,
    "friction_share": 0.0,
    "leak_exponent": (0.5, 0.5),
    "transients_per_day": 4.0,
    "sensor_faults_per_year": 0.0,
    "radio": "ideal",
    "clock_drift_ppm": 0.0,
    "wrong_clock_share": 0.0,
    "local_alarms": False,
}


class RecordingScreen(SensorFaultDetector):
    """Records (slot, time, fault, channel) each time a slot's fault starts or changes."""

    def __init__(self) -> None:
        super().__init__()
        self.raised: list[tuple[int, float, str, str]] = []
        self._was = np.zeros(0, np.int8)

    def update(self, batch: SampleBatch, devices=None) -> None:  # type: ignore[no-untyped-def]
        super().update(batch, devices)
        v = self.verdicts()
        code = v.evidence["fault"].astype(np.int8)
        was = np.zeros(len(code), np.int8)
        was[: len(self._was)] = self._was[: len(code)]
        for i in np.flatnonzero(code > was).tolist():
            ch = v.evidence["channel"][i]
            name = self.channels[int(ch)] if ch >= 0 else "p_in_kpa/p_out_kpa"
            self.raised.append((i, self.last_event_s(i), FAULT_NAMES[code[i]], name))
        self._was = code


def screened_run(devices: int, days: float, seed: int, **overrides):  # type: ignore[no-untyped-def]
    made: list[RecordingScreen] = []

    def detectors() -> list[SensorFaultDetector]:
        made.append(RecordingScreen())
        return [made[-1]]

    span = overrides.get("sample_interval_s", 300.0) * overrides.get("samples_per_uplink", 12)
    report = run_eval(
        devices=devices,
        days=days,
        seeds=[seed],
        spec_overrides=dict(overrides),
        detectors=detectors,
        flush_every_s=span,  # every round, as the service's timer would
    )
    (screen,) = made
    return report.seeds[0], screen


def test_healthy_field_fleet_raises_no_sensor_fault() -> None:
    result, screen = screened_run(40, 30, 11, sensor_faults_per_year=0.0)
    assert result.samples > 40 * 30 * 250  # most of 288 samples a device-day arrive
    assert screen.raised == []
    assert result.false_alarms == 0


@pytest.mark.parametrize("start_h", [0.0, 7.5, 15.0])
def test_healthy_demo_fleet_raises_no_sensor_fault_in_its_first_day(start_h: float) -> None:
    # `sealscope up --simulate` starts 12 h back from the wall clock, at any hour of day
    result, screen = screened_run(30, 1.5, 1, start_t=T0 + start_h * 3600, **DEMO)
    assert result.samples > 30 * 1.5 * 1400
    assert screen.raised == []


def test_injected_sensor_faults_are_recognised_and_nothing_else() -> None:
    rate = {"sensor_faults_per_year": 12.0}
    result, screen = screened_run(60, 30, 5, **rate)
    fleet = Fleet(FleetSpec.field(devices=60, seed=5, **rate))
    start = fleet.spec.start_t
    until = start + 30 * DAY
    episodes = {i: fleet.faults.episodes(i, until) for i in range(60)}
    by_slot: dict[int, list[tuple[float, str, str]]] = {}
    for i, t, fault, channel in screen.raised:
        by_slot.setdefault(i, []).append((t, fault, channel))
        # every fault raised lies in an injected episode (or its trailing two days)
        assert any(
            s <= t <= (e if e is not None else until) + 2 * DAY for _, _, s, e in episodes[i]
        ), (i, t, fault, channel)
    checked = 0
    for i, eps in episodes.items():
        for sensor, kind, s, e in eps:
            end = e if e is not None else until
            if sensor != "pressure" or end - s < DAY or end > until:
                continue
            hits = [(t, f, c) for t, f, c in by_slot.get(i, []) if s <= t <= end]
            if kind in ("stuck", "dropout"):
                # the line pressure is read in every sample: a frozen or silent gauge is
                # named within hours
                want = "stuck" if kind == "stuck" else "missing"
                first = [t for t, f, c in hits if (f, c) == (want, "p_in_kpa")]
                assert first and first[0] - s <= 12 * 3600, (i, kind, hits)
                checked += 1
    assert checked >= 10
    assert result.false_alarms_by_cause.get("sensor_fault", 0) == 0


def stopping_pumps(rng: np.random.Generator, devices: int, n: int) -> SampleBatch:
    """5-min samples of pumps that run through training, then stop 2 h twice a day; a
    stopped pump's vibration sensor reads its quantised noise floor (0.04..0.06 mm/s)."""
    out = []
    k = np.arange(n)
    stopped = (k >= 288) & ((k % 144) < 24)
    for slot in range(devices):
        ratio = np.where(stopped, 0.0, 0.7 + 0.3 * rng.random(n))
        running_vib = 1.5 * ratio**2 * np.exp(rng.normal(0, 0.08, n))
        vib = np.where(stopped, np.abs(rng.normal(0.05, 0.005, n)), running_vib)
        p_in = 100 + rng.normal(0, 2, n)
        out.append(
            SampleBatch.from_arrays(
                np.full(n, slot),
                T0 + 300.0 * k,
                speed_rpm=np.round(1450 * ratio, 1),
                flow_m3h=np.round(30 * ratio, 2),
                p_in_kpa=np.round(p_in, 1),
                p_out_kpa=np.round(p_in + 400 * ratio**2 + rng.normal(0, 3, n), 1),
                leak_mm3s=np.round(
                    0.06 * np.exp(rng.normal(0, 0.1, n)) * np.where(stopped, 0.3, 1.0), 3
                ),
                temp_c=np.round(25 + 6 * ratio + rng.normal(0, 0.2, n), 1),
                vib_mms=np.round(vib, 2),
            )
        )
    return SampleBatch.concat(out)


def test_a_stopped_pump_reading_its_noise_floor_is_not_a_stuck_sensor() -> None:
    # Trained on a running pump, whose vibration never repeats: a stuck verdict resting on
    # that repeat share alone would call every quiet stop a frozen sensor.
    devices, n = 20, 14 * 288
    b = stopping_pumps(np.random.default_rng(11), devices, n)
    table = device_table([PUMP] * devices)
    det = RecordingScreen()
    for lo in range(0, n, 12):  # hourly uplinks, one flush each
        sel = np.flatnonzero((b.t_s >= T0 + 300 * lo) & (b.t_s < T0 + 300 * (lo + 12)))
        det.update(b.take(sel), table)
    assert det.raised == []

    # while a vibration sensor frozen at a running reading is named within hours
    vib = b.signal("vib_mms").copy()
    frozen = (b.slot == 3) & (b.t_s >= T0 + 300 * 2000)
    vib[frozen] = 1.23
    det = RecordingScreen()
    stuck = SampleBatch(b.slot, b.t_s, {**b.signals, "vib_mms": vib})
    for lo in range(0, 2600, 12):
        sel = np.flatnonzero((b.t_s >= T0 + 300 * lo) & (b.t_s < T0 + 300 * (lo + 12)))
        det.update(stuck.take(sel), table)
    assert [(i, f, c) for i, _, f, c in det.raised] == [(3, "stuck", "vib_mms")]
    assert det.raised[0][1] - (T0 + 300 * 2000) <= 3 * 3600


def test_state_saved_in_the_previous_layout_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    b = stopping_pumps(np.random.default_rng(2), 2, 400)
    det = SensorFaultDetector()
    det.update(b, device_table([PUMP] * 2))
    old = det.state_dict()
    # the layout before repeat counts per operating state and gap start times
    old["pair_n"] = old["pair_n"].sum(axis=2).astype(np.int32)
    old["rep_n"] = old["rep_n"].sum(axis=2).astype(np.int32)
    del old["miss_t0"], old["idle"]
    with pytest.raises(ValueError, match="state keys"):
        SensorFaultDetector().load_state_dict(old)
    old["miss_t0"], old["idle"] = det.state_dict()["miss_t0"], det.state_dict()["idle"]
    with pytest.raises(ValueError, match=r"'pair_n'.*hyper-parameters changed"):
        SensorFaultDetector().load_state_dict(old)

    # through the service: a clear configuration error, not a silent relearn
    path = tmp_path / "detectors.npz"
    service = DetectionService(
        alerts=MemoryAlertStore(), state_path=path, detectors=[SensorFaultDetector()]
    )
    service.observe(PUMP, [])
    service.save()
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update({f"detector/sensor_fault/{k}": v[:1] for k, v in old.items()})
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match="pair_n"):
        DetectionService(alerts=MemoryAlertStore(), state_path=path)


def test_service_observe_arrays_queues_what_observe_would() -> None:
    from sealscope.wire import Sample

    b = stopping_pumps(np.random.default_rng(4), 1, 300)
    by_sample = DetectionService(alerts=MemoryAlertStore(), state_path=None)
    by_sample.observe(
        PUMP,
        [
            Sample(t=float(t), **{k: float(v[i]) for k, v in b.signals.items()})
            for i, t in enumerate(b.t_s)
        ],
    )
    by_array = DetectionService(alerts=MemoryAlertStore(), state_path=None)
    by_array.observe(PUMP, [])
    by_array.observe_arrays(b.slot, b.t_s, dict(b.signals))
    assert by_array.counters["samples_pending"] == by_sample.counters["samples_pending"] == 300
    by_sample.flush()
    by_array.flush()
    for x, y in zip(by_sample.detectors, by_array.detectors, strict=True):
        for k, v in x.state_dict().items():
            np.testing.assert_array_equal(v, y.state_dict()[k], err_msg=k)
    with pytest.raises(ValueError, match="unknown slot"):
        by_array.observe_arrays(np.array([1]), np.array([T0]), {})
    with pytest.raises(ValueError, match="same length"):
        by_array.observe_arrays(np.array([0]), np.array([T0, T0]), {})


# -- leak-sensor drift: an offset does not scale with ΔP, a seat leak does ---------------

LEAKY = Device(
    device_id="V-L", kind="valve", manufacturer="acme", model="BV", dn=50, pn=10, leakage_class="D"
)


def closed_valve_days(
    rng: np.random.Generator,
    days: float,
    *,
    offset_per_day: float = 0.0,
    growth_per_day: float = 1.0,
    onset_day: float = 12.0,
) -> SampleBatch:
    """A valve closed for ``days`` under the field's demand cycle: 5-min samples, line
    pressure sagging 25 % at peak demand plus water hammer, seat leak Q = C ΔP^0.55
    (log-normal noise, zero noise, 0.001 mm³/s resolution). From ``onset_day`` the leak
    sensor's zero drifts by ``offset_per_day`` mm³/s a day, or C grows by
    ``growth_per_day`` a day (real seat wear)."""
    from firmware_sim.physics import demand

    n = int(days * 288)
    t = T0 + 300.0 * np.arange(n)
    p_in = 500.0 * (1 - 0.25 * demand(t)) * (1 + rng.normal(0, 0.005, n))
    hammer = rng.random(n) < 2 / 288
    p_in[hammer] += 500.0 * rng.uniform(0.1, 0.6, hammer.sum())
    p_out = np.abs(rng.normal(2.0, 1.5, n))
    after = np.maximum((t - T0) / DAY - onset_day, 0.0)
    c = 0.1 / 400**0.55 * growth_per_day**after
    leak = c * (p_in - p_out) ** 0.55 * np.exp(rng.normal(0, 0.08, n))
    leak = np.maximum(leak + rng.normal(0, 0.0005, n), 0.0) + offset_per_day * after
    return SampleBatch.from_arrays(
        np.zeros(n, np.int64),
        t,
        p_in_kpa=p_in,
        p_out_kpa=p_out,
        leak_mm3s=np.round(leak, 3),
        position_pct=np.zeros(n),
        temp_c=15.0 + rng.normal(0, 0.2, n),
    )


def run_service(
    batch: SampleBatch, device: Device = LEAKY, actions: tuple[str, ...] = ("raised",)
) -> tuple[list[tuple[float, str, str | None]], DetectionService]:
    """Feed ``batch`` through the default detectors a six-hour flush at a time; returns
    every alert change of ``actions`` as (event time, cause, channel for a sensor fault),
    with the action prefixed to the cause when more than one action is asked for."""
    service = DetectionService(alerts=MemoryAlertStore(), state_path=None)
    service.observe(device, [])
    raised: list[tuple[float, str, str | None]] = []
    for lo in range(0, len(batch), 72):
        sl = slice(lo, lo + 72)
        service.observe_arrays(
            batch.slot[sl], batch.t_s[sl], {k: v[sl] for k, v in batch.signals.items()}
        )
        for c in service.flush():
            if c.action in actions:
                cause = c.cause if len(actions) == 1 else f"{c.action} {c.cause}"
                raised.append((c.t, cause, c.evidence.get("channel")))
    return raised, service


def alone_raises_at(batch: SampleBatch, det: Detector, device: Device = LEAKY) -> float:
    """Event time a seal detector, unscreened, first alarms on ``batch`` (inf: never)."""
    table = device_table([device])
    for lo in range(0, len(batch), 72):
        det.update(batch.take(np.arange(lo, min(lo + 72, len(batch)))), table)
        if det.verdicts().category[0] > 0:
            return det.last_event_s(0)
    return np.inf


def test_a_drifting_leak_sensor_zero_is_a_sensor_fault_not_a_seat_leak() -> None:
    # 5 % of the reading a day from day 12: unscreened, the seat check takes it for a
    # leak some two weeks in
    batch = closed_valve_days(np.random.default_rng(7), 40, offset_per_day=0.005)
    fooled = alone_raises_at(batch, SeatLeakDetector())
    assert T0 + 14 * DAY < fooled < T0 + 40 * DAY
    raised, service = run_service(batch)
    assert [(cause, ch) for _, cause, ch in raised] == [("sensor_fault", "leak_mm3s")], raised
    t, _, _ = raised[0]
    assert T0 + 12 * DAY < t < fooled
    explained = service.explain("V-L")
    assert explained["sensor_fault"]["category"] == "out_of_specification"
    info = explained["sensor_fault"]["evidence"]
    assert info["fault"] == "drifting"
    assert info["leak_ratio"] > 1.3
    assert info["leak_elasticity"] < 0.8 * info["leak_elasticity_baseline"]
    # the seat check is held, and the drifting readings are withheld from it
    assert explained["seat_leak"]["category"] is None
    assert service.detectors[0].faulty(SeatLeakDetector.signals, 1)[0]
    assert "Leak sensor drifts" in service.detectors[0].summary(service.detectors[0].verdicts(), 0)


def test_a_seat_leak_growing_with_dp_is_a_seat_leak_not_a_sensor_fault() -> None:
    # C grows 8 % a day: the same level rise as the drift, but it scales with ΔP^n
    raised, service = run_service(
        closed_valve_days(np.random.default_rng(7), 40, growth_per_day=1.08)
    )
    assert [c for _, c, _ in raised] == ["seat_leak"], raised
    assert raised[0][0] > T0 + 12 * DAY
    det = service.detectors[0]
    assert det.verdicts().category[0] == 0
    assert not det.faulty(("leak_mm3s",), 1)[0]
    assert det.state_dict()["lk_cusum"][0] == 0.0  # the evidence sum never left zero


def test_a_healthy_closed_valve_raises_nothing_and_keeps_its_leak_fit() -> None:
    raised, service = run_service(closed_valve_days(np.random.default_rng(8), 40))
    assert raised == []
    s = service.detectors[0].state_dict()
    # commissioned on its first three blocks: the elasticity is that of the seat's ΔP^0.55
    assert abs(s["lk_beta0"][0] - 0.55) < 0.1
    assert abs(s["lk_ratio"][0] - 1.0) < 0.05
    assert s["lk_cusum"][0] < 1.0


def running_pump_days(
    rng: np.random.Generator,
    days: float,
    *,
    offset_per_day: float = 0.0,
    growth_per_day: float = 1.0,
    onset_day: float = 12.0,
) -> SampleBatch:
    """A pump following demand (speed 70-100 %, head with speed squared) in 5-min samples,
    its seal leaking C·p_chamber^0.5 with p_chamber = p_in + 0.3 head; from ``onset_day``
    the leak sensor's zero drifts by ``offset_per_day`` a day, or C grows by
    ``growth_per_day`` a day."""
    from firmware_sim.physics import demand

    n = int(days * 288)
    t = T0 + 300.0 * np.arange(n)
    ratio = (0.7 + 0.3 * demand(t)) * (1 + rng.normal(0, 0.003, n))
    head = 400.0 * ratio**2
    p_in = 150.0 * (1 - 0.1 * ratio) + rng.normal(0, 2, n)
    after = np.maximum((t - T0) / DAY - onset_day, 0.0)
    c = 0.01 * growth_per_day**after
    leak = c * np.sqrt(p_in + 0.3 * head) * np.exp(rng.normal(0, 0.1, n)) + offset_per_day * after
    return SampleBatch.from_arrays(
        np.zeros(n, np.int64),
        t,
        speed_rpm=1450 * ratio,
        flow_m3h=30 * ratio * (1 + rng.normal(0, 0.02, n)),
        p_in_kpa=p_in,
        p_out_kpa=p_in + head + rng.normal(0, 3, n),
        leak_mm3s=leak,
        temp_c=20 + 6 * ratio + rng.normal(0, 0.2, n),
        vib_mms=1.5 * ratio**2 * np.exp(rng.normal(0, 0.08, n)),
    )


def test_a_drifting_pump_leak_sensor_is_a_sensor_fault_and_clears_the_pump_seal() -> None:
    # A pump's pressure lever is narrow (speed 70-100 %: the chamber pressure spans some
    # 30 %), so the elasticity evidence builds more slowly than the level rises and the
    # unscreened seal check alarms first. The screen then finds the offset, and the seal
    # alert it caused is withdrawn in the same flush; its readings stay withheld.
    batch = running_pump_days(np.random.default_rng(3), 40, offset_per_day=0.01)
    fooled = alone_raises_at(batch, PumpSealDetector(), PUMP)
    assert T0 + 14 * DAY < fooled < T0 + 40 * DAY
    changes, service = run_service(batch, PUMP, actions=("raised", "cleared"))
    causes = [(cause, ch) for _, cause, ch in changes]
    assert causes == [
        ("raised pump_seal", "leak_mm3s"),
        ("raised sensor_fault", "leak_mm3s"),
        ("cleared pump_seal", None),
    ], changes
    assert T0 + 12 * DAY < changes[1][0] < T0 + 40 * DAY
    explained = service.explain("P-0")
    # the seal check's own verdict is still an alarm, shown as held like the alert
    assert explained["pump_seal"]["category"] is None
    assert explained["pump_seal"]["held_category"] == "maintenance_required"
    assert explained["sensor_fault"]["evidence"]["fault"] == "drifting"
    assert service.detectors[0].faulty(PumpSealDetector.signals, 1)[0]


def test_a_pump_seal_leak_growing_with_pressure_is_a_pump_seal_fault() -> None:
    raised, service = run_service(
        running_pump_days(np.random.default_rng(3), 40, growth_per_day=1.08), PUMP
    )
    assert [c for _, c, _ in raised] == ["pump_seal"], raised
    assert raised[0][0] > T0 + 12 * DAY
    assert service.detectors[0].verdicts().category[0] == 0
