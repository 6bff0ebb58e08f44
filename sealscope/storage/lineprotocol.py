"""InfluxDB line protocol encoding (measurement,tags fields timestamp-ns)."""

from __future__ import annotations

from collections.abc import Iterable

from sealscope.storage import Point, Series

__all__ = ["encode_points", "series_key"]

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})

_key_cache: dict[Series, str] = {}


def series_key(series: Series) -> str:
    """``measurement,tag=value,...`` with tags sorted by key, as InfluxDB stores them."""
    key = _key_cache.get(series)
    if key is None:
        parts = [series.measurement.translate(_MEASUREMENT_ESCAPES)]
        for name, value in sorted(series.tags):
            if value:  # InfluxDB rejects empty tag values; an absent tag is the same thing
                parts.append(f"{name.translate(_TAG_ESCAPES)}={value.translate(_TAG_ESCAPES)}")
        key = ",".join(parts)
        if len(_key_cache) > 1_000_000:
            _key_cache.clear()
        _key_cache[series] = key
    return key


def encode_points(points: Iterable[Point]) -> str:
    """Encode points; field values are always floats so a field never changes type."""
    lines = []
    key = series_key
    for p in points:
        fields = ",".join([f"{name}={float(value)!r}" for name, value in p.fields.items()])
        lines.append(f"{key(p.series)} {fields} {p.t_ns}")
    return "\n".join(lines)
