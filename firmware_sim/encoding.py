"""Telemetry JSON bytes straight from numpy columns, without a Python object per sample.

Building a ``wire.Sample`` per reading and encoding it costs microseconds per sample, which
is most of a round at 100,000 devices. Here every sample of a group of devices becomes a
fixed-width row of ASCII in one ``uint8`` array, with a parallel "keep" mask:

* a number is written right-aligned at a fixed width (sign, integer digits, point,
  decimals), its leading zero digits and an absent sign marked "drop";
* an absent reading (NaN) drops its whole ``,"name":value`` span;
* the trailing comma after each device's last sample is dropped.

One boolean compress of the array then yields every payload back to back, and a cumulative
sum of the mask gives where each device's payload ends. The bytes are what
``msgspec.json.encode(Telemetry(...))`` would carry up to number formatting: fixed decimals
per field ("512.0", never "512" or "5.12e2"), so ``wire.decode_telemetry`` accepts them and
returns the same values as the rounded readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["DECIMALS", "encode_telemetry_rows"]

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

# Decimals each reading is reported with: the sensor resolution of the simulated devices.
DECIMALS: dict[str, int] = {
    "t": 3,
    "p_in_kpa": 1,
    "p_out_kpa": 1,
    "leak_mm3s": 3,
    "position_pct": 1,
    "stroke_s": 2,
    "torque_nm": 1,
    "motor_a": 2,
    "temp_c": 1,
    "vib_mms": 2,
    "flow_m3h": 2,
    "speed_rpm": 1,
    "battery_v": 3,
    "rsrp_dbm": 1,
    "sinr_db": 1,
}
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_DROP = 0  # marks a byte that is not part of the payload


def _ascii_table(width: int) -> npt.NDArray[np.uint8]:
    """Row k holds the ``width`` ASCII digits of k, zero-padded: a lookup instead of divisions."""
    k = np.arange(10**width)
    return np.stack(
        [(k // 10 ** (width - 1 - p)) % 10 + ord("0") for p in range(width)], axis=1
    ).astype(np.uint8)


_TABLES = {w: _ascii_table(w) for w in (1, 2, 3)}
_TABLE4 = _ascii_table(4).view("<u4").ravel()  # four ASCII digits as one 32-bit word


def _int_width(values: F64) -> int:
    """Integer digits of the largest magnitude, in whole 4-digit groups."""
    top = float(np.abs(values).max(initial=0.0)) if values.size else 0.0
    digits = max(1, len(str(round(top))))
    return 4 * -(-digits // 4)


def _number_width(int_width: int, decimals: int) -> int:
    return 1 + int_width + (1 + decimals if decimals else 0)


def _write_number(out: U8, values: F64, decimals: int, int_width: int) -> None:
    """Write ``values`` (no NaN), rounded to ``decimals``, as ASCII into ``out`` (..., width);
    bytes that must not appear (leading zeros, an absent minus sign) are set to ``_DROP``.

    ``int_width`` is a multiple of 4: the integer part is looked up four digits at a time.
    """
    scaled = np.rint(np.abs(values.ravel()) * float(_POW10[decimals])).astype(np.int64)
    int_part, frac = np.divmod(scaled, _POW10[decimals]) if decimals else (scaled, scaled)
    groups = int_width // 4
    words = np.empty((scaled.size, groups), dtype="<u4")
    rest = int_part
    for g in range(groups - 1, 0, -1):
        rest, chunk = np.divmod(rest, 10_000)
        words[:, g] = _TABLE4[chunk]
    words[:, 0] = _TABLE4[rest]
    digits = words.view(np.uint8)  # (rows, int_width), contiguous
    # leading zeros go; the units digit stays
    digits[:, :-1][int_part[:, None] < _POW10[int_width - 1 : 0 : -1]] = _DROP
    shape = out.shape[:-1]
    out[..., 0] = np.where((values < 0) & (scaled.reshape(shape) > 0), ord("-"), _DROP)
    out[..., 1 : 1 + int_width] = digits.reshape(*shape, int_width)
    if decimals:
        out[..., 1 + int_width] = ord(".")
        out[..., 2 + int_width :] = _TABLES[decimals][frac].reshape(*shape, decimals)


def encode_telemetry_rows(
    seq: npt.NDArray[np.int64],
    t: F64,
    readings: Mapping[str, F64],
    fields: Sequence[str],
) -> list[bytes]:
    """One ``Telemetry`` JSON payload per row of ``t`` (devices x samples).

    ``readings[name]`` has the shape of ``t``; NaN means "not measured" and the field is
    left out of that sample. ``fields`` fixes the key order, except that fields measured
    only on the last sample (the radio and battery readings of the wake-up) come last.
    Every sample keeps ``t``.
    """
    n, s = t.shape
    if n == 0:
        return []
    body: list[tuple[str, F64, npt.NDArray[np.bool_] | None]] = [("t", t, None)]
    tail: list[tuple[str, F64, npt.NDArray[np.bool_] | None]] = []
    for name in fields:
        column = readings.get(name)
        if column is None:
            continue
        present = ~np.isnan(column)
        if not present.any():
            continue
        if s > 1 and not present[:, :-1].any():
            last = present[:, -1]
            tail.append((name, np.where(last, column[:, -1], 0.0), None if last.all() else last))
        else:
            body.append((name, np.where(present, column, 0.0), present))

    # One template row per device: {"v":1,"seq":N,"samples":[{...},...,{...<tail>}]}
    template = bytearray(b'{"v":1,"seq":')
    seq_f = seq.astype(np.float64)
    seq_width = _int_width(seq_f)
    seq_at = len(template)
    template += b"\x00" * (1 + seq_width) + b',"samples":['
    head_len = len(template)
    record = bytearray()
    body_spans = []
    for name, values, _ in body:
        key = (f'{{"{name}":' if name == "t" else f',"{name}":').encode()
        iw = _int_width(values)
        width = _number_width(iw, DECIMALS[name])
        body_spans.append((len(record), len(record) + len(key), len(record) + len(key) + width, iw))
        record += key + b"\x00" * width
    record += b"},"
    template += bytes(record) * s
    tail_at = len(template)
    tail_spans = []
    for name, values, _ in tail:
        key = f',"{name}":'.encode()
        iw = _int_width(values)
        width = _number_width(iw, DECIMALS[name])
        at = len(template)
        tail_spans.append((at, at + len(key), at + len(key) + width, iw))
        template += key + b"\x00" * width
    template += b"}]}"

    buf = np.empty((n, len(template)), dtype=np.uint8)
    buf[...] = np.frombuffer(bytes(template), dtype=np.uint8)
    _write_number(buf[:, seq_at : seq_at + 1 + seq_width], seq_f, 0, seq_width)
    samples = buf[:, head_len:tail_at].reshape(n, s, len(record))
    for (a, b, c, iw), (name, values, is_present) in zip(body_spans, body, strict=True):
        _write_number(samples[:, :, b:c], values, DECIMALS[name], iw)
        if is_present is not None:
            samples[:, :, a:c][~is_present] = _DROP
    samples[:, s - 1, -2:] = _DROP  # the last sample closes after the tail fields
    for (a, b, c, iw), (name, values, is_present) in zip(tail_spans, tail, strict=True):
        _write_number(buf[:, b:c], values, DECIMALS[name], iw)
        if is_present is not None:
            buf[:, a:c][~is_present] = _DROP

    lengths = np.count_nonzero(buf, axis=1)
    data = buf.tobytes().translate(None, b"\x00")
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return [data[a:b] for a, b in zip(starts, ends, strict=True)]
