"""InfluxDB line protocol encoding (measurement,tags fields timestamp-ns)."""

from __future__ import annotations

from collections.abc import Iterable

from sealscope.storage import Point, Series

__all__ = ["encode_points", "series_key"]


def series_key(series: Series) -> str:
    """``measurement,tag=value,...`` with tags sorted by key, as InfluxDB stores them."""
    return series.key


def encode_points(points: Iterable[Point]) -> str:
    """Encode points; field values are always floats so a field never changes type."""
    return "\n".join(
        [
            f"{p.series.key} {','.join([f'{k}={float(v)!r}' for k, v in p.fields.items()])}"
            f" {p.t_ns}"
            for p in points
        ]
    )
