"""update() throughput at fleet scale; prints device-samples/s, asserts no timing."""

import numpy as np
import pytest

from analytics import SampleBatch, SeatLeakDetector, Status
from tests.analytics.streams import HOUR, T0

pytestmark = pytest.mark.bench

N_DEVICES = 100_000
PER_DEVICE = 4  # one NB-IoT uplink of four hourly samples per device


def uplinks(rng: np.random.Generator, round_no: int) -> SampleBatch:
    n = N_DEVICES * PER_DEVICE
    slot = np.repeat(np.arange(N_DEVICES), PER_DEVICE)
    k = np.tile(np.arange(PER_DEVICE), N_DEVICES) + round_no * PER_DEVICE
    p_in = rng.uniform(300, 900, n)
    batch = SampleBatch.from_arrays(
        slot,
        T0 + HOUR * k,
        p_in_kpa=p_in,
        p_out_kpa=np.full(n, 20.0),
        leak_mm3s=0.01 * np.sqrt(p_in - 20.0) * np.exp(0.15 * rng.standard_normal(n)),
        position_pct=np.zeros(n),
    )
    return batch.take(rng.permutation(n))  # arrival order is not device order


def test_bench_seat_leak_update_100k_devices(benchmark):
    rng = np.random.default_rng(0)
    det = SeatLeakDetector(baseline_samples=PER_DEVICE)  # commissioned after the warm-up
    det.update(uplinks(rng, 0))
    assert np.all(det.verdicts().status == Status.NORMAL)
    rounds = iter(range(1, 1000))

    def setup():
        return (uplinks(rng, next(rounds)),), {}

    benchmark.pedantic(det.update, setup=setup, rounds=5, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        rate = N_DEVICES * PER_DEVICE / benchmark.stats.stats.mean
        print(f"\nSeatLeakDetector.update: {rate:,.0f} device-samples/s at {N_DEVICES:,} devices")
    assert det.samples_seen % (N_DEVICES * PER_DEVICE) == 0
    assert det.late_samples == 0
    assert np.all(det.verdicts().category == 0)
    state_bytes = sum(a.nbytes for a in det.state_dict().values()) / N_DEVICES
    print(f"SeatLeakDetector state: {state_bytes:,.0f} bytes/device")
