"""From a spooled MQTT message to points: route by topic, decode, enrich from the registry.

A sample with only ``t`` carries nothing to store. A telemetry message whose samples all
are like that is rejected ("sample 0 has no readings"); in a message that also has readings
the readings are stored and ``Translated.no_readings`` says which samples were empty, for a
dead letter of its own. An event's empty ``reading`` likewise: the event is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from sealscope import wire
from sealscope.errors import MalformedMessage, NotFound, UnknownDevice
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
    no_readings: str | None = None  # which samples carried only ``t`` (nothing stored of them)


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


def _sample_points(
    series: Series, readings: list[dict[str, float]]
) -> tuple[list[Point], list[int]]:
    """Points of the samples with readings, and the indices of those with only ``t``."""
    points = []
    empty = []
    time_to_ns = wire.time_to_ns
    for i, fields in enumerate(readings):
        t = fields.pop("t")
        if fields:
            points.append(Point(series, time_to_ns(t), fields))
        else:
            empty.append(i)
    return points, empty


def _samples_phrase(indices: list[int]) -> str:
    if len(indices) == 1:
        return f"sample {indices[0]} has"
    shown = ", ".join(map(str, indices[:10]))
    more = f" and {len(indices) - 10} more" if len(indices) > 10 else ""
    return f"samples {shown}{more} have"


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


def translate(
    topic: str,
    payload: bytes,
    devices: DeviceCache,
    *,
    max_payload_bytes: int = wire.MAX_PAYLOAD_BYTES,
) -> Translated | None:
    """Points for one message, or None for kinds ingest does not store (``cmd``).

    Raises a ``MessageRejected`` subclass for anything unusable.
    """
    where = _parse_topic(topic)
    device_id = where.device_id
    if where.kind == "cmd":
        return None
    device, series = devices.lookup(device_id)
    if where.kind == "telemetry":
        telemetry, readings = wire.decode_telemetry_readings(
            payload, device_id=device_id, max_bytes=max_payload_bytes
        )
        points, empty = _sample_points(series, readings)
        no_readings = None
        if empty:
            no_readings = f"{_samples_phrase(empty)} no readings"
            if not points:
                raise MalformedMessage(no_readings, device_id=device_id, field="samples")
            stored = len(readings) - len(empty)
            no_readings += f"; the other {stored} " + ("are stored" if stored > 1 else "is stored")
        return Translated(device, points, telemetry=telemetry, no_readings=no_readings)
    if where.kind == "event":
        event = wire.decode_event(payload, device_id=device_id, max_bytes=max_payload_bytes)
        if event.reading is None:
            return Translated(device, [], event=event)
        points, empty = _sample_points(series, [_to_builtins(event.reading)])
        no_readings = "reading has no values besides t; the event is kept" if empty else None
        return Translated(device, points, event=event, no_readings=no_readings)
    state = wire.decode_state(payload, device_id=device_id, max_bytes=max_payload_bytes)
    fields = {
        name: value
        for name in ("battery_v", "rsrp_dbm", "sinr_db")
        if (value := getattr(state, name)) is not None
    }
    points = [Point(series, wire.time_to_ns(state.t), fields)] if fields else []
    return Translated(device, points, state=state)
