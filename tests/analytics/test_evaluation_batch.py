"""The evaluation's columnar path (``Fleet.step_batch``) scores exactly as its JSON path."""

from __future__ import annotations

import dataclasses

import pytest

from analytics.service import default_detectors
from composition import evaluation

# wears out, faults, loses and retries uplinks, overflows its buffer, runs batteries flat
_HOSTILE = {
    "weibull_scale_days": 40.0,
    "degrade_span_days": (0.5, 2.0),
    "sensor_faults_per_year": 80.0,
    "wrong_clock_share": 0.2,
    "buffer_samples": 30,
    "max_attempts": 2,
    "battery_mah": 60.0,
}


@pytest.mark.parametrize("overrides", [_HOSTILE, {**_HOSTILE, "buffer_samples": 12}])
def test_run_seed_from_columns_scores_as_from_json(overrides: dict[str, object]) -> None:
    def run(*, via_json: bool) -> dict[str, object]:
        result, _ = evaluation._run_seed(
            devices=30,
            days=6,
            seed=11,
            spec_overrides=dict(overrides),
            detectors=default_detectors,
            flush_every_s=6 * 3600.0,
            risk_every_days=2.0,
            progress=None,
            via_json=via_json,
        )
        out = dataclasses.asdict(result)
        out.pop("elapsed_s")
        return out

    from_json = run(via_json=True)
    assert from_json["samples"] > 0 and from_json["detected"] > 0
    assert run(via_json=False) == from_json
