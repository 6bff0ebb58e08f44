"""From a spooled MQTT message to points: route by topic, decode, enrich from the registry."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from sealscope import wire
from sealscope.errors import NotFound, UnknownDevice
from sealscope.registry import Device, DeviceRegistry
from sealscope.storage import Point, Series
from sealscope.topics import DeviceTopic, parse_device_topic

__all__ = ["DeviceCache", "Translated", "translate"]

_to_builtins = msgspec.to_builtins


@dataclass(slots=True)
class Translated:
    device: Device
    points: list[Point]
    telemetry: wire.Telemetry | None = None
    event: wire.Event | None = None
    state: wire.State | None = None


@dataclass(slots=True)
class _Entry:
    device: Device | None
    series: Series | None
    expires_s: float


@dataclass
class DeviceCache:
    """Registry lookups for the hot path; unknown ids are re-checked after ``miss_ttl_s``."""

    registry: DeviceRegistry
    miss_ttl_s: float = 5.0
    hit_ttl_s: float = 300.0
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def lookup(self, device_id: str) -> tuple[Device, Series]:
        now = time.monotonic()
        entry = self._entries.get(device_id)
        if entry is None or entry.expires_s < now:
            try:
                device = self.registry.get(device_id)
            except NotFound:
                entry = _Entry(None, None, now + self.miss_ttl_s)
            else:
                entry = _Entry(device, Series(device.kind, device.tags), now + self.hit_ttl_s)
            self._entries[device_id] = entry
        if entry.device is None or entry.series is None:
            raise UnknownDevice(device_id)
        return entry.device, entry.series


def _sample_points(series: Series, samples: list[wire.Sample]) -> list[Point]:
    points = []
    time_to_ns = wire.time_to_ns
    for s in samples:
        fields = _to_builtins(s)  # omits absent (None) readings
        t = fields.pop("t")
        if fields:
            points.append(Point(series, time_to_ns(t), fields))
    return points


_known_topics: dict[str, DeviceTopic] = {}


def _parse_topic(topic: str) -> DeviceTopic:
    """Topics repeat per device: validate each once (the regex is not free at 100k msg/s)."""
    where = _known_topics.get(topic)
    if where is None:
        where = parse_device_topic(topic)
        if len(_known_topics) > 1_000_000:
            _known_topics.clear()
        _known_topics[topic] = where
    return where


def translate(topic: str, payload: bytes, devices: DeviceCache) -> Translated | None:
    """Points for one message, or None for kinds ingest does not store (``cmd``).

    Raises a ``MessageRejected`` subclass for anything unusable.
    """
    where = _parse_topic(topic)
    device_id = where.device_id
    if where.kind == "cmd":
        return None
    device, series = devices.lookup(device_id)
    if where.kind == "telemetry":
        telemetry = wire.decode_telemetry(payload, device_id=device_id)
        return Translated(device, _sample_points(series, telemetry.samples), telemetry=telemetry)
    if where.kind == "event":
        event = wire.decode_event(payload, device_id=device_id)
        readings = [event.reading] if event.reading is not None else []
        return Translated(device, _sample_points(series, readings), event=event)
    state = wire.decode_state(payload, device_id=device_id)
    fields = {
        name: value
        for name in ("battery_v", "rsrp_dbm", "sinr_db")
        if (value := getattr(state, name)) is not None
    }
    points = [Point(series, wire.time_to_ns(state.t), fields)] if fields else []
    return Translated(device, points, state=state)
