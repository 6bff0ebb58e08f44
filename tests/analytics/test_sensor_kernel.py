"""The compiled sensor-fault screens (``engine="compiled"``) against the numpy reference.

A randomised fleet of valves and pumps with every sensor fault injected (stuck, missing,
spiking, a drifting pressure pair, a drifting leak-sensor zero), fed in uneven,
shuffled batches: after every batch both engines hold the same state to the bit, give
the same verdicts and withhold the same readings.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytics import SampleBatch, SensorFaultDetector
from analytics.sensor_faults import FAULT_NAMES
from tests.analytics.streams import T0

STEP_S = 300.0
N_SAMPLES = 1400
# small blocks and baselines, so leak fits and drift baselines complete many times over
PARAMS = {"leak_block": 24, "leak_commission_blocks": 2, "drift_baseline": 12}


def _device(rng: np.random.Generator, slot: int, fault: str) -> SampleBatch:
    n = N_SAMPLES
    k = np.arange(n)
    t = T0 + STEP_S * k + rng.uniform(0, 5, n)
    onset = int(rng.integers(500, 800))
    after = k >= onset
    if slot % 2:  # a pump: running, stopping now and then
        ratio = np.where((k % 97) < 10, 0.0, rng.uniform(0.7, 1.0, n))
        p_in = np.round(100 + rng.normal(0, 2, n), 1)
        p_out = np.round(p_in + 400 * ratio**2 + rng.normal(0, 3, n), 1)
        leak = 0.05 * (0.5 * (p_in + p_out)) ** 0.8 / 40 * np.exp(rng.normal(0, 0.05, n))
        signals = {
            "speed_rpm": np.round(1450 * ratio, 1),
            "flow_m3h": np.round(30 * ratio, 2),
            "vib_mms": np.round(np.where(ratio > 0, 1.5 * ratio**2, 0.05), 2)
            * np.exp(rng.normal(0, 0.05, n)),
        }
    else:  # a valve: open by day, closed by night, line pressure wandering
        closed = (k % 144) >= 72
        p_in = np.round(rng.uniform(300, 900, n), 1)
        p_out = np.where(closed, 100 + rng.normal(0, 2, n), p_in - 5 + rng.normal(0, 1, n))
        dp = p_in - p_out
        leak = np.where(closed, 0.01 * np.maximum(dp, 1) ** 0.5, np.nan)
        leak = leak * np.exp(rng.normal(0, 0.05, n))
        signals = {"position_pct": np.where(closed, 0.0, 100.0)}
    temp = np.round(20 + 3 * np.sin(k / 144 * 2 * np.pi) + rng.normal(0, 0.2, n), 1)
    leak = np.round(leak, 4)
    if fault == "stuck":
        p_in = np.where(after, p_in[onset], p_in)
    elif fault == "missing":
        temp = np.where(after, np.nan, temp)
    elif fault == "spiking":
        temp = np.where(after & (rng.random(n) < 0.3), temp + rng.choice([-40, 40], n), temp)
    elif fault == "pressure_drift":
        p_out = p_out - np.where(after, np.minimum(k - onset, 200) * 0.5, 0.0)
    elif fault == "leak_drift":
        leak = leak + np.where(after, 8 * np.nanmedian(leak), 0.0)
    # now and then a sample without one reading, or with no channel of the screen
    p_out = np.where(rng.random(n) < 0.01, np.nan, p_out)
    vib_gap = rng.random(n) < 0.01
    if "vib_mms" in signals:
        signals["vib_mms"] = np.where(vib_gap, np.nan, signals["vib_mms"])
    return SampleBatch.from_arrays(
        np.full(n, slot),
        t,
        p_in_kpa=p_in,
        p_out_kpa=p_out,
        leak_mm3s=leak,
        temp_c=temp,
        **signals,
    )


def _fleet(seed: int) -> SampleBatch:
    rng = np.random.default_rng(seed)
    faults = ("", "stuck", "missing", "spiking", "pressure_drift", "leak_drift")
    # every fault on a valve and on a pump (odd slots are pumps)
    devices = [_device(rng, slot, faults[(slot // 2) % len(faults)]) for slot in range(24)]
    return SampleBatch.concat(devices)


def _batches(b: SampleBatch, seed: int) -> list[SampleBatch]:
    """Each device's rows cut at its own random points; batch i holds chunk i of every
    device, rows shuffled: uneven runs, some devices absent from some batches."""
    rng = np.random.default_rng(seed)
    chunk = np.zeros(len(b), dtype=np.int64)
    for slot in np.unique(b.slot):
        rows = np.flatnonzero(b.slot == slot)
        cuts = np.sort(rng.integers(0, len(rows), 25))
        chunk[rows] = np.searchsorted(cuts, np.arange(len(rows)), side="right")
    out = []
    for i in range(26):
        rows = np.flatnonzero(chunk == i)
        out.append(b.take(rows[rng.permutation(len(rows))]))
    return out


def _pair(**params: object) -> tuple[SensorFaultDetector, SensorFaultDetector]:
    ref, fast = SensorFaultDetector(**params), SensorFaultDetector(**params)  # type: ignore[arg-type]
    ref.engine = "numpy"
    assert fast.engine == "compiled"  # the default
    return ref, fast


def _assert_same(ref: SensorFaultDetector, fast: SensorFaultDetector, where: str) -> None:
    a, b = ref.state_dict(), fast.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{where}: state {k}")
    va, vb = ref.verdicts(), fast.verdicts()
    for name in ("status", "category", "severity", "since_s", "changed_s", "confidence"):
        np.testing.assert_array_equal(getattr(va, name), getattr(vb, name), err_msg=name)
    for k in va.evidence:
        np.testing.assert_array_equal(va.evidence[k], vb.evidence[k], err_msg=k)


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_screens_match_the_numpy_reference_bit_for_bit(seed: int) -> None:
    ref, fast = _pair(**PARAMS)
    raised: set[tuple[str, int]] = set()
    for i, batch in enumerate(_batches(_fleet(seed), seed + 10)):
        out_ref, out_fast = ref.screen(batch), fast.screen(batch)
        for name in batch.signals:  # the gate withholds the same readings
            np.testing.assert_array_equal(out_ref.signal(name), out_fast.signal(name), name)
        np.testing.assert_array_equal(
            ref.faulty(ref.signals, ref.n_slots), fast.faulty(fast.signals, fast.n_slots)
        )
        _assert_same(ref, fast, f"batch {i}")
        ev = ref.verdicts().evidence
        for code, residual in zip(ev["fault"], ev["drift_residual"], strict=True):
            raised.add((FAULT_NAMES[int(code)], -1 if np.isnan(residual) else int(residual)))
    faults = {f for f, _ in raised}
    # the stream exercised every screen, so the comparison above means something
    assert {"stuck", "missing", "spiking", "drifting"} <= faults, raised
    assert ("drifting", 2) in raised, raised  # the leak sensor's
    assert any(f == "drifting" and r in (0, 1) for f, r in raised), raised  # the pair's


@pytest.mark.parametrize(
    "params",
    [
        {"screens": ("stuck", "spiking")},
        {"screens": ("leak_drift", "missing"), "hampel_window": 8},
        {"channels": ("p_in_kpa", "temp_c", "vib_mms"), "hampel_window": 17},
    ],
)
def test_compiled_screens_match_with_screens_off_and_other_windows(params: dict) -> None:
    ref, fast = _pair(**PARAMS, **params)
    for i, batch in enumerate(_batches(_fleet(3), 4)):
        ref.update(batch)
        fast.update(batch)
        _assert_same(ref, fast, f"batch {i}")


def test_engines_share_state_through_state_dict() -> None:
    # state saved by one engine goes on learning in the other
    batches = _batches(_fleet(4), 5)
    ref, fast = _pair(**PARAMS)
    for batch in batches[:13]:
        ref.update(batch)
    fast.load_state_dict(ref.state_dict())
    for batch in batches[13:]:
        ref.update(batch)
        fast.update(batch)
    _assert_same(ref, fast, "after the switch")
    assert (ref.verdicts().category > 0).any()
