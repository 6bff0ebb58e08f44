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

from analytics import DetectionService, SampleBatch, SensorFaultDetector
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
