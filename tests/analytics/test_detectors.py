"""Generic checks every detector must pass (river's test_estimators, for slot-indexed state).

Add a factory to DETECTORS when a new detector lands.
"""

import io
from collections.abc import Callable

import numpy as np
import pytest

from analytics import (
    ActuationWearDetector,
    Detector,
    DeviceTable,
    MultivariateDetector,
    PumpSealDetector,
    SampleBatch,
    SeatLeakDetector,
    SensorFaultDetector,
    Verdicts,
)
from sealscope.registry import Device
from sealscope.wire import SAMPLE_FIELDS
from tests.analytics.streams import HOUR, T0

DETECTORS: list[Callable[[], Detector]] = [
    lambda: SeatLeakDetector(),
    lambda: SeatLeakDetector(baseline_samples=8, alpha=0.3, clear_samples=3, exponent=1.0),
    lambda: SeatLeakDetector(trend_every=2, trend_points=8, urgent_days=1e4),
    lambda: ActuationWearDetector(),
    lambda: ActuationWearDetector(baseline_samples=6, wear_ratio=1.5),
    lambda: PumpSealDetector(),
    lambda: PumpSealDetector(baseline_samples=12, temp_rise_c=2.0),
    lambda: SensorFaultDetector(),
    lambda: SensorFaultDetector(train_samples=24, hampel_window=5, channels=("temp_c", "p_in_kpa")),
    # each screen of the sensor-fault detector alone (tuned so it raises on this stream)
    lambda: SensorFaultDetector(screens=("stuck",)),
    lambda: SensorFaultDetector(screens=("missing",)),
    lambda: SensorFaultDetector(screens=("spiking",)),
    lambda: SensorFaultDetector(screens=("pressure_drift",), drift_kpa=5.0, drift_baseline=6),
    lambda: SensorFaultDetector(screens=("leak_drift",), leak_block=12),
    lambda: MultivariateDetector(train_samples=60, calibrate_samples=30),
    lambda: MultivariateDetector(
        train_samples=40, calibrate_samples=20, features=("p_in_kpa", "leak_mm3s", "vib_mms")
    ),
]
N_DEV = 24
N_T = 240


def devices() -> DeviceTable:
    table = DeviceTable()
    for slot in range(N_DEV):
        kind = "pump" if slot % 6 == 5 else "valve"
        table.set(
            slot,
            Device(
                device_id=f"D-{slot}",
                kind=kind,
                manufacturer="acme",
                model="M",
                dn=50 if slot % 3 else None,
                pn=16,
                leakage_class="D" if slot % 4 else "",
            ),
        )
    return table


def generic_stream(seed: int = 0) -> SampleBatch:
    """Every wire field, for N_DEV devices; a third degrade by steps, a third by drift."""
    rng = np.random.default_rng(seed)
    slot = np.repeat(np.arange(N_DEV), N_T)
    k = np.tile(np.arange(N_T), N_DEV)
    t = T0 + HOUR * k + rng.uniform(0, 60, N_DEV)[slot]  # devices wake at their own offset
    wear = np.ones(N_DEV * N_T)
    step = slot % 3 == 1
    wear[step & (k >= N_T // 2)] = 12.0
    drift = slot % 3 == 2
    wear[drift] = np.exp(4.0 * k[drift] / N_T)
    base = {name: rng.uniform(1, 50, N_DEV)[slot] for name in SAMPLE_FIELDS}
    signals = {name: base[name] * np.exp(rng.normal(0, 0.1, len(t))) for name in SAMPLE_FIELDS}
    signals["p_in_kpa"] = 600 + 150 * np.sin(k / 4.0) + rng.normal(0, 5, len(t))
    signals["p_out_kpa"] = rng.uniform(10, 30, len(t))
    signals["position_pct"] = np.where(rng.random(len(t)) < 0.2, 80.0, 0.5)
    dp = signals["p_in_kpa"] - signals["p_out_kpa"]
    for name in ("leak_mm3s", "stroke_s", "torque_nm", "motor_a", "vib_mms"):
        signals[name] = signals[name] * wear
    signals["leak_mm3s"] = 0.01 * signals["leak_mm3s"] * np.sqrt(dp)
    signals["speed_rpm"] = 1450.0 * np.exp(rng.normal(0, 0.05, len(t)))
    # Sensor faults from the middle on: a stuck temperature, a vanished vibration sensor,
    # a spiking flow meter, each on one device.
    late = k >= N_T // 2
    signals["temp_c"][(slot == 3) & late] = 21.5
    signals["vib_mms"][(slot == 6) & late] = np.nan
    spiky = (slot == 9) & late & (rng.random(len(t)) < 0.4)
    signals["flow_m3h"][spiky] *= 50.0
    return SampleBatch(slot, t, signals)


def run(det: Detector, batches: list[SampleBatch], table: DeviceTable | None) -> Verdicts:
    for b in batches:
        det.update(b, table)
    return det.verdicts()


def chunks(batch: SampleBatch, bounds: np.ndarray) -> list[SampleBatch]:
    """Split a batch at event-time bounds (each device keeps its own order)."""
    idx = np.searchsorted(bounds, batch.t_s, side="right")
    return [batch.take(np.flatnonzero(idx == j)) for j in range(len(bounds) + 1)]


def assert_same(a: Verdicts, b: Verdicts) -> None:
    assert a.cause == b.cause and a.signal == b.signal
    for name in ("status", "category", "severity", "since_s", "changed_s", "confidence"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.evidence.keys() == b.evidence.keys()
    for k in a.evidence:
        np.testing.assert_allclose(a.evidence[k], b.evidence[k], rtol=1e-12, err_msg=k)


@pytest.fixture(params=range(len(DETECTORS)), ids=lambda i: f"detector{i}")
def make(request) -> Callable[[], Detector]:
    return DETECTORS[request.param]


def test_detector_stream_is_not_trivial(make):
    v = run(make(), [generic_stream()], devices())
    assert (v.category > 0).any() and (v.category == 0).any()


def test_detector_init_holds_only_hyper_parameters(make):
    det = make()
    assert det.n_slots == 0
    assert len(det.verdicts()) == 0
    det.update(SampleBatch.empty())
    assert det.n_slots == 0


def test_detector_reset_forgets_everything(make):
    det = make()
    run(det, [generic_stream()], devices())
    det.reset()
    fresh = make()
    assert det.n_slots == 0
    assert det.state_dict().keys() == fresh.state_dict().keys()
    assert all(len(a) == 0 for a in det.state_dict().values())
    assert_same(run(det, [generic_stream()], devices()), run(fresh, [generic_stream()], devices()))


def test_detector_save_restore_continues_like_uninterrupted(make):
    table = devices()
    stream = generic_stream()
    first, second = chunks(stream, np.array([T0 + 0.45 * N_T * HOUR]))
    whole = run(make(), [first, second], table)

    det = make()
    det.update(first, table)
    buf = io.BytesIO()
    np.savez(buf, **det.state_dict())
    buf.seek(0)
    restored = make()
    with np.load(buf, allow_pickle=False) as z:
        restored.load_state_dict({k: z[k] for k in z.files})
    assert_same(restored.verdicts(), det.verdicts())
    assert_same(run(restored, [second], table), whole)


def test_detector_nan_inputs_leave_no_nan_in_state(make):
    table = devices()
    stream = generic_stream()
    rng = np.random.default_rng(1)
    # Holes in every signal, and rows where nothing was measured.
    holey = {
        k: np.where(rng.random(len(stream)) < 0.1, np.nan, v) for k, v in stream.signals.items()
    }
    det = make()
    run(det, [SampleBatch(stream.slot, stream.t_s, holey)], table)
    for name, arr in det.state_dict().items():
        if arr.dtype.kind == "f":
            assert not np.isnan(arr).any(), name

    blank = SampleBatch(
        stream.slot, stream.t_s + 1.0, {k: np.full(len(stream), np.nan) for k in holey}
    )
    clean, padded = make(), make()
    expected = run(clean, [stream], table)
    got = run(padded, [SampleBatch.concat([stream, blank])], table)
    assert_same(got, expected)
    for name, arr in padded.state_dict().items():
        if arr.dtype.kind == "f":
            assert not np.isnan(arr).any(), name


def test_detector_verdicts_ignore_chunking_and_arrival_order(make):
    table = devices()
    stream = generic_stream()
    expected = run(make(), [stream], table)
    rng = np.random.default_rng(2)
    for _ in range(3):
        cuts = np.sort(rng.uniform(T0, T0 + N_T * HOUR, rng.integers(1, 30)))
        parts = chunks(stream, cuts)
        # Within a flush rows come in any order; across devices flushes interleave freely.
        shuffled = [p.take(rng.permutation(len(p))) for p in parts]
        assert_same(run(make(), shuffled, table), expected)


def test_detector_stale_batches_are_counted_not_applied(make):
    table = devices()
    stream = generic_stream()
    first, second = chunks(stream, np.array([T0 + 0.6 * N_T * HOUR]))
    det = make()
    run(det, [first, second], table)
    before = det.state_dict()
    det.update(first, table)  # a whole old batch delivered again
    assert det.late_samples == len(first)
    for k, arr in det.state_dict().items():
        np.testing.assert_array_equal(arr, before[k], err_msg=k)
