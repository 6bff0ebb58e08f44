"""In-memory telemetry store for unit tests (keeps the idempotency rule of the real ones)."""

from __future__ import annotations

from collections.abc import Sequence

from sealscope.storage import VITAL_FIELDS, Latest, Point, TelemetryQuery

__all__ = ["MemoryTelemetryStore"]


class MemoryTelemetryStore:
    def __init__(self) -> None:
        # (device_id, t_ns) -> fields; a later write of the same point merges its fields
        self.points: dict[tuple[str, int], dict[str, float]] = {}
        self.batch_sizes: list[int] = []  # points per write call, in order

    async def write(self, points: Sequence[Point]) -> None:
        self.batch_sizes.append(len(points))
        for p in points:
            self.points.setdefault((p.series.device_id, p.t_ns), {}).update(p.fields)

    async def query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        rows = sorted(
            (t, f[q.field])
            for (dev, t), f in self.points.items()
            if dev == q.device_id and q.start_ns <= t < q.stop_ns and q.field in f
        )
        if q.every_s:
            every_ns = q.every_s * 1_000_000_000
            buckets: dict[int, list[float]] = {}
            for t, v in rows:
                buckets.setdefault(t - t % every_ns, []).append(v)
            rows = [(b, sum(vs) / len(vs)) for b, vs in sorted(buckets.items())]
        return rows[: q.limit]

    async def latest(self) -> dict[str, Latest]:
        out: dict[str, Latest] = {}
        for (dev, t), fields in sorted(self.points.items()):
            values = out[dev].values if dev in out else {}
            values.update({f: (t, fields[f]) for f in VITAL_FIELDS if f in fields})
            out[dev] = Latest(t, values)
        return out

    async def close(self) -> None:
        return None
