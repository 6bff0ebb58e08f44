"""update() throughput and state memory at 100,000 devices, per detector.

Prints device-samples/s and state bytes per device; asserts no timing. Each device sends
one uplink of four samples per round; detectors are warmed up past their commissioning.
"""

import numpy as np
import pytest

from analytics import (
    ActuationWearDetector,
    MultivariateDetector,
    PumpSealDetector,
    SampleBatch,
    SensorFaultDetector,
)
from tests.analytics.streams import HOUR, T0

pytestmark = pytest.mark.bench

N_DEVICES = 100_000
PER_DEVICE = 4
# what every detector should reach on one core at this fleet size (issue 14)
TARGET_RATE = 2_000_000  # device-samples/s
TARGET_STATE = 1024  # bytes per device

CASES = {
    "actuation_wear": lambda: ActuationWearDetector(baseline_samples=6),
    "pump_seal": lambda: PumpSealDetector(baseline_samples=8),
    "sensor_fault": lambda: SensorFaultDetector(train_samples=8, drift_baseline=4),
    "anomaly": lambda: MultivariateDetector(
        train_samples=24,
        calibrate_samples=10,
        features=("p_in_kpa", "leak_mm3s", "temp_c", "vib_mms"),
    ),
}


def uplinks(rng: np.random.Generator, round_no: int) -> SampleBatch:
    n = N_DEVICES * PER_DEVICE
    slot = np.repeat(np.arange(N_DEVICES), PER_DEVICE)
    k = np.tile(np.arange(PER_DEVICE), N_DEVICES) + round_no * PER_DEVICE
    ratio = rng.uniform(0.7, 1.0, n)
    p_in = rng.uniform(300, 900, n)
    noise = np.exp(0.05 * rng.standard_normal(n))
    batch = SampleBatch.from_arrays(
        slot, T0 + HOUR * k, p_in_kpa=p_in, p_out_kpa=p_in - 5 + rng.normal(0, 1, n),
        position_pct=np.full(n, 100.0), leak_mm3s=0.2 * noise, temp_c=20 + rng.normal(0, 0.2, n),
        vib_mms=1.5 * ratio**2 * noise, speed_rpm=1450 * ratio, flow_m3h=30 * ratio,
        stroke_s=12 * noise, torque_nm=40 * noise, motor_a=0.7 * noise,
    )  # fmt: skip
    return batch.take(rng.permutation(n))


@pytest.mark.parametrize("name", list(CASES))
def test_bench_detector_update_100k_devices(benchmark, name):
    rng = np.random.default_rng(0)
    det = CASES[name]()
    for r in range(12):  # commissioning, training and calibration
        det.update(uplinks(rng, r))
    rounds = iter(range(12, 1000))

    def setup():
        return (uplinks(rng, next(rounds)),), {}

    benchmark.pedantic(det.update, setup=setup, rounds=5, iterations=1)
    state_bytes = sum(a.nbytes for a in det.state_dict().values()) / N_DEVICES
    if benchmark.stats is not None:  # None under --benchmark-disable
        mean = N_DEVICES * PER_DEVICE / benchmark.stats.stats.mean
        best = N_DEVICES * PER_DEVICE / benchmark.stats.stats.min
        verdict = "meets" if mean >= TARGET_RATE and state_bytes <= TARGET_STATE else "misses"
        print(
            f"\n{name}: {mean:,.0f} device-samples/s (best round {best:,.0f}), "
            f"{state_bytes:,.0f} state bytes/device; target {TARGET_RATE:,} device-samples/s "
            f"and <= {TARGET_STATE:,} bytes/device: {verdict} it"
        )
    assert det.late_samples == 0
    assert det.samples_seen % (N_DEVICES * PER_DEVICE) == 0
