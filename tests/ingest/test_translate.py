from __future__ import annotations

import json

import pytest

from ingest.translate import DeviceCache, translate
from sealscope.errors import (
    MalformedMessage,
    NotFound,
    PayloadTooLarge,
    TopicRejected,
    UnknownDevice,
    UnknownSchemaVersion,
)
from sealscope.registry import Device

T0 = 1_763_800_000


class _Registry:
    """Just enough of DeviceRegistry for the cache; counts lookups."""

    def __init__(self, *devices: Device) -> None:
        self.devices = {d.device_id: d for d in devices}
        self.lookups = 0

    def get(self, device_id: str) -> Device:
        self.lookups += 1
        try:
            return self.devices[device_id]
        except KeyError:
            raise NotFound("device", device_id) from None


VALVE = Device(
    device_id="ACME-V-000001",
    kind="valve",
    manufacturer="ACME",
    model="GV-100",
    batch="B7",
    site="plant-1",
    region="zj-wenzhou",
    dn=100,
    pn=16,
    leakage_class="D",
)


def _telemetry(*samples: dict[str, float]) -> bytes:
    return json.dumps({"v": 1, "seq": 1, "samples": list(samples)}).encode()


def test_translate_enriches_points_with_registry_tags() -> None:
    cache = DeviceCache(_Registry(VALVE))  # type: ignore[arg-type]
    out = translate(
        "sealscope/v1/dev/ACME-V-000001/telemetry",
        _telemetry({"t": T0, "p_in_kpa": 800.0, "leak_mm3s": 0.5}, {"t": T0 + 60}),
        cache,
    )
    assert out is not None
    assert len(out.points) == 1  # the sample with no readings yields no point...
    assert out.no_readings == "sample 1 has no readings; the other 1 is stored"
    point = out.points[0]
    assert point.series.measurement == "valve"
    assert dict(point.series.tags)["batch"] == "B7"
    assert point.fields == {"p_in_kpa": 800.0, "leak_mm3s": 0.5}
    assert point.t_ns == T0 * 1_000_000_000


def test_translate_caches_registry_lookups() -> None:
    registry = _Registry(VALVE)
    cache = DeviceCache(registry)  # type: ignore[arg-type]
    for _ in range(5):
        translate(
            "sealscope/v1/dev/ACME-V-000001/telemetry", _telemetry({"t": T0, "temp_c": 9}), cache
        )
    assert registry.lookups == 1


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        ("sealscope/v1/dev/ACME-V-000001/telemetry", b"{oops", MalformedMessage),
        ("sealscope/v1/dev/ACME-V-000001/telemetry", b'{"v":9,"seq":1}', UnknownSchemaVersion),
        ("sealscope/v1/dev/NOBODY-1/telemetry", _telemetry({"t": T0}), UnknownDevice),
        ("sealscope/v1/oops/ACME-V-000001/telemetry", _telemetry({"t": T0}), TopicRejected),
    ],
)
def test_translate_rejects_with_the_right_reason(topic: str, payload: bytes, error: type) -> None:
    cache = DeviceCache(_Registry(VALVE))  # type: ignore[arg-type]
    with pytest.raises(error) as info:
        translate(topic, payload, cache)
    assert info.value.reason


def test_translate_state_and_event() -> None:
    cache = DeviceCache(_Registry(VALVE))  # type: ignore[arg-type]
    state = translate(
        "sealscope/v1/dev/ACME-V-000001/state",
        json.dumps({"v": 1, "t": T0, "fw": "2.1.0", "battery_v": 3.55}).encode(),
        cache,
    )
    assert state is not None and state.state is not None
    assert state.points[0].fields == {"battery_v": 3.55}
    event = translate(
        "sealscope/v1/dev/ACME-V-000001/event",
        json.dumps(
            {"v": 1, "seq": 4, "t": T0, "kind": "leak_alarm", "reading": {"t": T0, "leak_mm3s": 40}}
        ).encode(),
        cache,
    )
    assert event is not None and event.event is not None
    assert event.points[0].fields == {"leak_mm3s": 40.0}


def test_translate_rejects_telemetry_without_any_reading() -> None:
    cache = DeviceCache(_Registry(VALVE))  # type: ignore[arg-type]
    topic = "sealscope/v1/dev/ACME-V-000001/telemetry"
    with pytest.raises(MalformedMessage) as info:
        translate(topic, _telemetry({"t": T0}), cache)
    assert (info.value.reason, info.value.field) == ("sample 0 has no readings", "samples")
    with pytest.raises(MalformedMessage, match=r"^samples 0, 1, 2 have no readings$"):
        translate(topic, _telemetry(*({"t": T0 + i} for i in range(3))), cache)
    many = _telemetry(*({"t": T0 + i} for i in range(12)), {"t": T0 + 20, "temp_c": 3})
    out = translate(topic, many, cache)
    assert out is not None and len(out.points) == 1
    assert out.no_readings == (
        "samples 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more have no readings; the other 1 is stored"
    )


def test_translate_keeps_an_event_whose_reading_is_empty() -> None:
    cache = DeviceCache(_Registry(VALVE))  # type: ignore[arg-type]
    event = {"v": 1, "seq": 4, "t": T0, "kind": "leak_alarm", "reading": {"t": T0}}
    out = translate("sealscope/v1/dev/ACME-V-000001/event", json.dumps(event).encode(), cache)
    assert out is not None and out.event is not None and out.points == []
    assert out.no_readings == "reading has no values besides t; the event is kept"


def test_translate_applies_the_payload_bound() -> None:
    cache = DeviceCache(_Registry(VALVE))  # type: ignore[arg-type]
    payload = _telemetry(*({"t": T0 + i, "temp_c": 1} for i in range(100)))
    with pytest.raises(PayloadTooLarge, match=f"^payload {len(payload)} bytes > 1024$"):
        translate(
            "sealscope/v1/dev/ACME-V-000001/telemetry", payload, cache, max_payload_bytes=1024
        )
