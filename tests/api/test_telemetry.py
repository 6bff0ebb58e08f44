"""/api/v1/devices/{id}/telemetry: raw and bucketed reads, time parsing, and refusals."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from composition.api import create_app
from sealscope.config import Settings
from sealscope.errors import StoreUnavailable
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage import Point, Series, TelemetryQuery
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.wire import SAMPLE_FIELDS

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
URL = "/api/v1/devices/ACME-P-0001/telemetry"


class RecordingStore(MemoryTelemetryStore):
    """The memory store, remembering the queries it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[TelemetryQuery] = []

    async def query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        self.queries.append(q)
        return await super().query(q)


class DownStore(MemoryTelemetryStore):
    def __init__(self, retry_after_s: float | None) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s

    async def query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        raise StoreUnavailable("influxdb: connection refused", retry_after_s=self.retry_after_s)


SERIES = Series("pump", (("device_id", "ACME-P-0001"), ("model", "CP-1")))
# (offset from T0 in ms, p_in_kpa)
SAMPLES = [(0, 100.0), (250, 101.0), (30_000, 110.0), (59_999, 120.0), (60_000, 200.0)]


def _points(samples: Sequence[tuple[int, float]]) -> list[Point]:
    return [
        Point(SERIES, (T0 * 1000 + ms) * 1_000_000, {"p_in_kpa": v, "temp_c": 20.0})
        for ms, v in samples
    ]


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def client(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    store: RecordingStore,
    authenticator: Any,
    admin_key: str,
) -> Any:
    registry.add(Device("ACME-P-0001", "pump", "acme", "CP-1"))
    app = create_app(
        settings, telemetry_store=store, registry=registry, authenticator=authenticator
    )
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as c:
        yield c


async def test_telemetry_raw_points_exact(client: TestClient, store: RecordingStore) -> None:
    await store.write(_points(SAMPLES))
    response = client.get(
        URL, params={"field": "p_in_kpa", "start": T0, "stop": T0 + 60}
    )  # stop is exclusive: the sample at T0+60 s is left out
    assert response.status_code == 200, response.text
    assert response.json() == {
        "device_id": "ACME-P-0001",
        "field": "p_in_kpa",
        "every_s": None,
        "points": [
            {"t": "2023-11-14T22:13:20.000Z", "t_ms": 1_700_000_000_000, "value": 100.0},
            {"t": "2023-11-14T22:13:20.250Z", "t_ms": 1_700_000_000_250, "value": 101.0},
            {"t": "2023-11-14T22:13:50.000Z", "t_ms": 1_700_000_030_000, "value": 110.0},
            {"t": "2023-11-14T22:14:19.999Z", "t_ms": 1_700_000_059_999, "value": 120.0},
        ],
    }
    (q,) = store.queries
    assert q == TelemetryQuery(
        device_id="ACME-P-0001",
        measurement="pump",  # the device's kind, from the registry
        field="p_in_kpa",
        start_ns=T0 * 1_000_000_000,
        stop_ns=(T0 + 60) * 1_000_000_000,
        every_s=None,
        limit=10_000,
    )


async def test_telemetry_downsampled_means(client: TestClient, store: RecordingStore) -> None:
    await store.write(_points(SAMPLES))
    # T0 is 20 s into its minute, so 1-minute buckets start at T0-20 s, T0+40 s, T0+100 s
    response = client.get(
        URL, params={"field": "p_in_kpa", "start": T0 - 20, "stop": T0 + 120, "every": "1m"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["every_s"] == 60
    assert [(p["t"], p["value"]) for p in body["points"]] == [
        ("2023-11-14T22:13:00.000Z", (100.0 + 101.0 + 110.0) / 3),
        ("2023-11-14T22:14:00.000Z", (120.0 + 200.0) / 2),
    ]
    assert store.queries[-1].every_s == 60


@pytest.mark.parametrize(
    ("every", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86_400), ("90", 90), ("2H", 7200)],
)
def test_telemetry_every_formats(
    client: TestClient, store: RecordingStore, every: str, seconds: int
) -> None:
    response = client.get(URL, params={"field": "temp_c", "every": every})
    assert response.status_code == 200, response.text
    assert response.json()["every_s"] == seconds
    assert store.queries[-1].every_s == seconds


@pytest.mark.parametrize(
    "start",
    [
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20",  # naive means UTC
        "2023-11-14T22:13:20.000+00:00",
        "2023-11-15T06:13:20+08:00",
        "2023-11-15T06:13:20 08:00",  # the '+' a client forgot to encode
        "1700000000",
        "1700000000.0",
    ],
)
def test_telemetry_start_accepts_iso_and_unix_seconds(
    client: TestClient, store: RecordingStore, start: str
) -> None:
    response = client.get(URL, params={"field": "temp_c", "start": start, "stop": T0 + 1})
    assert response.status_code == 200, response.text
    assert store.queries[-1].start_ns == T0 * 1_000_000_000


def test_telemetry_fractional_unix_seconds_are_exact(
    client: TestClient, store: RecordingStore
) -> None:
    client.get(URL, params={"field": "temp_c", "start": "1700000000.123", "stop": T0 + 1})
    assert store.queries[-1].start_ns == 1_700_000_000_123_000_000


def test_telemetry_defaults_to_the_last_24_hours(client: TestClient, store: RecordingStore) -> None:
    before = time.time_ns()
    assert client.get(URL, params={"field": "temp_c"}).status_code == 200
    after = time.time_ns()
    q = store.queries[-1]
    assert before <= q.stop_ns <= after
    assert q.stop_ns - q.start_ns == 24 * 3600 * 1_000_000_000
    assert q.every_s is None


async def test_telemetry_limit_caps_points(client: TestClient, store: RecordingStore) -> None:
    await store.write(_points(SAMPLES))
    response = client.get(
        URL, params={"field": "p_in_kpa", "start": T0, "stop": T0 + 100, "limit": 2}
    )
    assert [p["value"] for p in response.json()["points"]] == [100.0, 101.0]
    assert store.queries[-1].limit == 2


def test_telemetry_unknown_field_names_the_allowed_ones(
    client: TestClient, store: RecordingStore, assert_error: Any
) -> None:
    body = assert_error(client.get(URL, params={"field": "pressure"}), 422, "validation_error")
    assert body["detail"][0]["loc"] == ["query", "field"]
    for name in SAMPLE_FIELDS:
        assert f"'{name}'" in body["detail"][0]["msg"]
    assert "query.field" in body["message"]
    assert store.queries == []


def test_telemetry_field_is_required(client: TestClient, assert_error: Any) -> None:
    body = assert_error(client.get(URL), 422, "validation_error")
    assert body["detail"][0]["loc"] == ["query", "field"]
    assert body["detail"][0]["type"] == "missing"


@pytest.mark.parametrize("every", ["0", "0s", "5x", "-5m", "1.5h", "m"])
def test_telemetry_bad_every_is_422(
    client: TestClient, store: RecordingStore, assert_error: Any, every: str
) -> None:
    body = assert_error(
        client.get(URL, params={"field": "temp_c", "every": every}), 422, "validation_error"
    )
    assert body["detail"][0]["loc"] == ["query", "every"]
    assert body["detail"][0]["input"] == every
    assert store.queries == []


@pytest.mark.parametrize("param", ["start", "stop"])
def test_telemetry_unparseable_time_is_422(
    client: TestClient, assert_error: Any, param: str
) -> None:
    body = assert_error(
        client.get(URL, params={"field": "temp_c", param: "yesterday"}), 422, "validation_error"
    )
    assert body["detail"][0]["loc"] == ["query", param]
    assert "ISO 8601" in body["detail"][0]["msg"]


@pytest.mark.parametrize("stop", [T0, T0 - 60])
def test_telemetry_stop_not_after_start_is_422(
    client: TestClient, store: RecordingStore, assert_error: Any, stop: int
) -> None:
    body = assert_error(
        client.get(URL, params={"field": "temp_c", "start": T0, "stop": stop}),
        422,
        "validation_error",
    )
    assert body["detail"][0]["loc"] == ["query", "stop"]
    assert "later than start" in body["message"]
    assert store.queries == []


def test_telemetry_unknown_device_is_404(
    client: TestClient, store: RecordingStore, assert_error: Any
) -> None:
    body = assert_error(
        client.get("/api/v1/devices/NOPE-0001/telemetry", params={"field": "temp_c"}),
        404,
        "not_found",
    )
    assert "NOPE-0001" in body["message"]
    assert store.queries == []


@pytest.mark.parametrize(("retry_after_s", "header"), [(6.2, "7"), (None, "5"), (0.1, "1")])
def test_telemetry_store_down_is_503_with_retry_after(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    authenticator: Any,
    admin_key: str,
    assert_error: Any,
    retry_after_s: float | None,
    header: str,
) -> None:
    registry.add(Device("ACME-P-0001", "pump", "acme", "CP-1"))
    app = create_app(
        settings,
        telemetry_store=DownStore(retry_after_s),
        registry=registry,
        authenticator=authenticator,
    )
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as client:
        response = client.get(URL, params={"field": "temp_c"})
    body = assert_error(response, 503, "store_unavailable")
    assert response.headers["retry-after"] == header
    assert "connection refused" in body["message"]
