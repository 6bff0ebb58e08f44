"""The vectorised JSON encoder: every payload decodes with sealscope.wire to the same values."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.encoding import DECIMALS, encode_telemetry_rows
from sealscope.wire import SAMPLE_FIELDS, Sample, decode_telemetry

# (low, high) inside the wire schema's bounds for every field
_RANGES = {
    "p_in_kpa": (-101.0, 99_999.0),
    "p_out_kpa": (-101.0, 99_999.0),
    "leak_mm3s": (0.0, 1e6),
    "position_pct": (0.0, 100.0),
    "stroke_s": (0.0, 3600.0),
    "torque_nm": (0.0, 1e5),
    "motor_a": (0.0, 9999.0),
    "temp_c": (-60.0, 400.0),
    "vib_mms": (0.0, 999.0),
    "flow_m3h": (0.0, 1e5),
    "speed_rpm": (0.0, 99_999.0),
    "battery_v": (0.0, 60.0),
    "rsrp_dbm": (-160.0, 0.0),
    "sinr_db": (-30.0, 50.0),
}


@st.composite
def _batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    n = draw(st.integers(1, 6))
    s = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t = 946_684_800.0 + rng.uniform(0, 3e9, (n, s))
    if draw(st.booleans()):
        t = np.round(t) * 1000.0  # milliseconds
    cols = {}
    for name in draw(st.lists(st.sampled_from(SAMPLE_FIELDS), unique=True)):
        lo, hi = _RANGES[name]
        scale = draw(st.sampled_from([1e-3, 1.0, 1e3, hi]))
        values = np.clip(rng.uniform(-1, 1, (n, s)) * scale, lo, hi)
        mode = draw(st.sampled_from(["all", "some", "last"]))
        if mode == "some":
            values[rng.random((n, s)) < 0.4] = np.nan
        elif mode == "last":
            values[:, :-1] = np.nan
        cols[name] = values
    seq = rng.integers(0, 2**32, n)
    return seq, t, cols, s


def _assert_rounded(value: float | None, reading: float, decimals: int) -> None:
    """``value`` is ``reading`` rounded to ``decimals``. The encoder rounds the scaled binary
    value (np.rint), Python's round the exact decimal one: a reading that sits on a tie after
    scaling may go either way, so a tie allows both neighbours, nothing else does."""
    assert value is not None
    assert value == round(value, decimals)  # no more digits than the field has
    if value != round(reading, decimals) + 0.0:
        unit = 10.0**-decimals
        slack = max(4 * float(np.spacing(abs(reading))), unit * 1e-6)  # the float's grain
        assert abs(abs(reading - value) - unit / 2) <= slack, (value, reading)


@settings(max_examples=150, deadline=None)
@given(_batches())
def test_encoded_payloads_decode_to_the_rounded_readings(
    batch: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int],
) -> None:
    seq, t, cols, s = batch
    payloads = encode_telemetry_rows(seq, t, cols, SAMPLE_FIELDS)
    assert len(payloads) == t.shape[0]
    for i, payload in enumerate(payloads):
        msg = decode_telemetry(payload)
        assert msg.seq == seq[i] and len(msg.samples) == s
        for j, sample in enumerate(msg.samples):
            _assert_rounded(sample.t, float(t[i, j]), 3)
            for name in SAMPLE_FIELDS:
                value = getattr(sample, name)
                column = cols.get(name)
                if column is None or np.isnan(column[i, j]):
                    assert value is None
                else:
                    _assert_rounded(value, float(column[i, j]), DECIMALS[name])
        assert isinstance(msg.samples[0], Sample)
        assert all(b"e" not in n.lower() for n in re.findall(rb":([^,}\[]+)", payload))


def test_encoder_never_writes_negative_zero_or_exponents() -> None:
    t = np.full((1, 3), 1_767_225_600.0)
    cols = {"temp_c": np.array([[-0.04, 1e-9, -1e-9]]), "p_in_kpa": np.array([[1e4, 5.0, 0.0]])}
    (payload,) = encode_telemetry_rows(np.array([7]), t, cols, SAMPLE_FIELDS)
    assert b"-0.0" not in payload
    assert all(b"e" not in n.lower() for n in re.findall(rb":([^,}\[]+)", payload))
    assert b'"temp_c":0.0' in payload and b'"p_in_kpa":10000.0' in payload
