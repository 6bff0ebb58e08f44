"""The compiled engine simulates the same fleet as the numpy reference, statistically.

Both engines share everything drawn up front (devices, wear, sensor faults, radio), so
a seed gives the same devices, the same degradation truth and the same fault episodes;
only the physics noise comes from another stream. These tests hold the readings, the
degradation seen in them and the events they raise to the same distributions.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from firmware_sim import DeviceTruth, Fleet, FleetSpec
from sealscope.wire import SAMPLE_FIELDS

_SPEC = FleetSpec.field(
    devices=600,
    seed=21,
    weibull_scale_days=300.0,  # many onsets within the run
    degrade_span_days=(0.5, 2.0),
    sensor_faults_per_year=20.0,
    transients_per_day=12.0,
)
_ROUNDS = 24 * 4


def _run(engine: str) -> tuple[Fleet, dict[str, np.ndarray]]:
    fleet = Fleet(_SPEC.replace(engine=engine))
    n, s = _SPEC.devices, _SPEC.samples_per_uplink
    out = {name: np.full((n, _ROUNDS * s), np.nan) for name in ("t", *SAMPLE_FIELDS)}
    for r in range(_ROUNDS):
        batch = fleet.step_batch()
        cols = slice(r * s, (r + 1) * s)
        out["t"][batch.device, cols] = batch.t
        for name, column in batch.readings.items():
            out[name][batch.device, cols] = column
    return fleet, out


@pytest.fixture(scope="module")
def both() -> dict[str, tuple[Fleet, dict[str, np.ndarray]]]:
    return {engine: _run(engine) for engine in ("numpy", "compiled")}


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance of the measured values."""
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    grid = np.concatenate([a, b])
    return float(
        np.abs(
            np.searchsorted(a, grid, side="right") / a.size
            - np.searchsorted(b, grid, side="right") / b.size
        ).max()
    )


def test_same_fleet_same_truth_different_noise(both: dict) -> None:  # type: ignore[type-arg]
    (ref, r), (fast, f) = both["numpy"], both["compiled"]
    assert ref.devices == fast.devices

    # all but the battery projection, which follows the (event-dependent) radio use
    def truth(fleet: Fleet) -> list[DeviceTruth]:
        return [replace(d, battery_empty_t=None) for d in fleet.fleet_truth().devices]

    assert truth(ref) == truth(fast)
    np.testing.assert_array_equal(r["t"], f["t"])  # sampling instants and clocks
    assert not np.array_equal(r["p_in_kpa"], f["p_in_kpa"], equal_nan=True)


@pytest.mark.parametrize("name", SAMPLE_FIELDS)
def test_every_reading_has_the_same_distribution(both: dict, name: str) -> None:  # type: ignore[type-arg]
    r, f = both["numpy"][1][name], both["compiled"][1][name]
    # which readings exist (valve open/closed, actuations, pumps running) and their values
    assert np.isnan(f).mean() == pytest.approx(np.isnan(r).mean(), abs=0.01)
    # ~10^5..10^6 readings a side, but not independent (devices, valve states persist):
    # a shift of a tenth of a noise standard deviation already fails this
    assert _ks(r, f) < 0.02, name


@pytest.mark.parametrize(
    ("name", "kind", "relative"),
    [
        ("p_in_kpa", "valve", True),
        ("leak_mm3s", "valve", True),
        ("temp_c", "valve", False),
        ("temp_c", "pump", False),
        ("p_out_kpa", "pump", False),
        ("vib_mms", "pump", True),
    ],
)
def test_noise_around_each_device_is_the_same(
    both: dict,  # type: ignore[type-arg]
    name: str,
    kind: str,
    relative: bool,
) -> None:
    """Sample-to-sample noise per device (first differences; logs where the noise is
    relative): a noise level 1.5x the other engine's fails this."""
    spread = {}
    for engine, (fleet, r) in both.items():
        x = r[name][fleet.valve_idx if kind == "valve" else fleet.pump_idx]
        if relative:
            x = np.log(np.where(x > 0, x, np.nan))
        spread[engine] = float(np.nanmedian(np.abs(np.diff(x, axis=1))))
    assert spread["compiled"] == pytest.approx(spread["numpy"], rel=0.05)


def test_degradation_grows_alike_in_the_readings(both: dict) -> None:  # type: ignore[type-arg]
    """Per degrading valve: seat leak normalised by ΔP^n, late over early, in each engine."""
    growth = {}
    for engine, (fleet, r) in both.items():
        dp = r["p_in_kpa"] - r["p_out_kpa"]
        with np.errstate(invalid="ignore", divide="ignore"):
            coeff = r["leak_mm3s"] / dp ** fleet.leak_n[:, None]
        with warnings.catch_warnings():  # an open valve all along: no seat reading
            warnings.simplefilter("ignore", RuntimeWarning)
            early = np.nanmedian(coeff[:, :48], axis=1)
            late = np.nanmedian(coeff[:, -48:], axis=1)
        growth[engine] = late / early
    fleet = both["numpy"][0]
    worn = [
        i
        for i in fleet.valve_idx
        if fleet.mode[i] in (1, 2)
        and fleet.onset_t[i] + fleet.degrade_span_s[i] < fleet.now_t
        and fleet.onset_t[i] > fleet.spec.start_t + 4 * 3600
    ]
    healthy = [i for i in fleet.valve_idx if fleet.onset_t[i] > fleet.now_t]
    assert len(worn) >= 10
    for group, tolerance in ((worn, 0.25), (healthy, 0.05)):
        a, b = growth["numpy"][group], growth["compiled"][group]
        ok = ~np.isnan(a) & ~np.isnan(b)
        assert ok.sum() > 0.5 * len(group)
        assert np.median(b[ok]) == pytest.approx(np.median(a[ok]), rel=tolerance)
        assert np.median(np.abs(np.log(b[ok] / a[ok]))) < tolerance


def test_events_and_radio_counts_alike(both: dict) -> None:  # type: ignore[type-arg]
    ref, fast = both["numpy"][0].counts, both["compiled"][0].counts
    assert ref.samples_generated == fast.samples_generated
    for kind in set(ref.events) | set(fast.events):
        a, b = ref.events.get(kind, 0), fast.events.get(kind, 0)
        assert abs(a - b) <= 4 * np.sqrt(max(a, b, 1)) + 2, (kind, a, b)
    assert fast.messages_lost == pytest.approx(ref.messages_lost, rel=0.2, abs=20)
    assert fast.duplicate_copies == pytest.approx(ref.duplicate_copies, rel=0.2, abs=20)


@pytest.mark.parametrize("rsrp", [-100.0, -122.0, -128.0, -135.0])
def test_compiled_radio_retries_like_the_reference(rsrp: float) -> None:
    """The compiled radio draws per attempt made; at each coverage level its copies,
    transmissions and acknowledgements have the reference's distribution."""
    from firmware_sim import kernel, radio

    m, attempts_max = 40_000, 4
    level = np.full(m, rsrp)
    ref = radio.transmit(np.random.default_rng(1), level, attempts_max, is_ideal=False)
    fast = kernel.transmit(np.random.default_rng(2), level, attempts_max)
    for a, b in zip(ref, fast, strict=True):
        a, b = a.astype(np.int64), b.astype(np.int64)
        for v in range(attempts_max + 1):
            pa, pb = (a == v).mean(), (b == v).mean()
            # binomial standard error of the difference of two shares, 5 sigma
            se = np.sqrt(max(pa * (1 - pa), 1e-4) * 2 / m)
            assert abs(pa - pb) <= 5 * se, (rsrp, v, pa, pb)
    assert fast[1].min() >= 1 and fast[1].max() <= attempts_max
    assert ((fast[0] > 0) | ~fast[2]).all()  # an acknowledged message arrived at least once
