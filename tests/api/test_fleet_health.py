"""Fleet health and the device page's data, over real SQLite state and the stores' newest
readings (``latest``) in memory and in SQLite."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from analytics.service import DetectionService
from sealscope import iso5208, wire
from sealscope.accounts import Authenticator, Remit, Site
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage import Point, Series
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.storage.sqlite import SqliteTelemetryStore

NOW = time.time()
VALVE = Device(
    "ACME-V-000001", "valve", "ACME", "BV-50", site="north", region="R1", dn=50, pn=16,
    leakage_class="D", batch="B1", firmware="2.0",
)  # fmt: skip
DEVICES = (
    VALVE,
    Device("ACME-V-000002", "valve", "ACME", "BV-50", site="north", region="R1"),  # maint.
    Device("ACME-V-000003", "valve", "ACME", "BV-80", site="south", region="R2"),  # out of spec
    Device("PUMPCO-P-000004", "pump", "PumpCo", "P-80", site="north", region="R1"),  # silent
    Device("PUMPCO-P-000005", "pump", "PumpCo", "P-80", site="south", region="R2"),  # no data
    Device("ACME-V-000006", "valve", "ACME", "BV-50", site="north", region="R1"),  # failure
)
ORDER = [
    "ACME-V-000006",
    "PUMPCO-P-000004",
    "PUMPCO-P-000005",
    "ACME-V-000003",
    "ACME-V-000002",
    "ACME-V-000001",
]


def _point(d: Device, t_s: float, **fields: float) -> Point:
    return Point(Series(d.kind, d.tags), int(t_s * 1e9), fields)


def _valve_readings(n: int = 120) -> list[wire.Sample]:
    """Closed under 500 kPa, leaking 0.4 mm³/s; every 10th sample open (no seat reading),
    every 6th a stroke."""
    out = []
    for k in range(n):
        f: dict[str, float] = {
            "t": NOW - (n - k) * 600.0,
            "p_in_kpa": 600.0,
            "p_out_kpa": 100.0,
            "leak_mm3s": 0.4,
            "position_pct": 100.0 if k % 10 == 0 else 0.0,
        }
        if k % 6 == 0:
            f.update(stroke_s=12.0, torque_nm=90.0)
        out.append(wire.Sample(**f))  # type: ignore[arg-type]
    return out


def _sample_points(d: Device, samples: list[wire.Sample]) -> list[Point]:
    return [
        _point(
            d,
            float(s.t),  # type: ignore[arg-type]
            **{f: v for f in wire.SAMPLE_FIELDS if (v := getattr(s, f)) is not None},
        )
        for s in samples
    ]


@pytest.fixture
def fleet(
    registry: SqliteDeviceRegistry, alerts: SqliteAlertStore, telemetry: MemoryTelemetryStore
) -> None:
    registry.upsert_many(DEVICES)
    common: dict[str, Any] = {"summary": "s", "evidence": {}, "t": NOW - 60}
    alerts.raise_alert(
        device_id=DEVICES[1].device_id, cause="seat_leak", category="maintenance_required",
        severity=2, **common,
    )  # fmt: skip
    oos = alerts.raise_alert(
        device_id=DEVICES[2].device_id, cause="seat_leak", category="out_of_specification",
        severity=4, **common,
    )  # fmt: skip
    alerts.acknowledge(oos.id, actor="t")  # acknowledged still counts
    gone = alerts.raise_alert(
        device_id=DEVICES[0].device_id, cause="seat_leak", category="failure",
        severity=5, **common,
    )  # fmt: skip
    alerts.resolve(gone.id, actor="t")  # resolved does not
    alerts.raise_alert(
        device_id=DEVICES[5].device_id, cause="sensor_fault", category="failure",
        severity=5, **common,
    )  # fmt: skip
    # a fleet risk alert names a group, not a device
    alerts.raise_alert(
        device_id="batch:B1", cause="fleet_risk", category="maintenance_required",
        severity=3, **common,
    )  # fmt: skip
    points = _sample_points(VALVE, _valve_readings())
    points.append(_point(VALVE, NOW - 30, battery_v=3.55, rsrp_dbm=-91.0, sinr_db=6.5))
    for d in (DEVICES[1], DEVICES[2], DEVICES[5]):
        points.append(_point(d, NOW - 120, battery_v=3.4))
    points.append(_point(DEVICES[3], NOW - 3 * 86_400, battery_v=3.1))  # silent 3 days
    asyncio.run(telemetry.write(points))


def _key(authenticator: Authenticator, kind: str, **org: Any) -> dict[str, str]:
    store = authenticator.store
    made = store.create_org(name=f"{kind} {len(org)}", kind=kind, **org)  # type: ignore[arg-type]
    if kind == "operator":
        store.put_site(Site("north", made.id, "R1"))
    key, _ = authenticator.create_key(made.id, name="k")
    return {"Authorization": f"Bearer {key}"}


def test_fleet_health_status_order_and_vitals(client: TestClient, fleet: None) -> None:
    body = client.get("/api/v1/fleet/health").json()
    rows = body["data"]
    assert [r["device_id"] for r in rows] == ORDER
    by_id = {r["device_id"]: r for r in rows}
    assert [by_id[d]["status"] for d in ORDER] == [
        "failure",
        "failure",
        "function_check",
        "out_of_specification",
        "maintenance_required",
        "ok",
    ]
    assert by_id["PUMPCO-P-000004"]["reasons"] == ["silent"]
    assert by_id["PUMPCO-P-000005"]["reasons"] == ["no_data"]
    assert by_id["PUMPCO-P-000005"]["last_seen"] is None
    assert by_id["ACME-V-000006"]["reasons"] == ["sensor_fault"]
    ok = by_id[VALVE.device_id]
    assert (ok["battery_v"], ok["rsrp_dbm"], ok["sinr_db"], ok["open_alerts"]) == (
        3.55,
        -91.0,
        6.5,
        0,
    )
    assert abs(_iso_s(ok["last_seen"]) - (NOW - 30)) < 0.01
    assert body["counts"] == {
        "failure": 2,
        "function_check": 1,
        "out_of_specification": 1,
        "maintenance_required": 1,
        "ok": 1,
    }
    assert body["total"] == 6 and body["vitals_known"] is True
    # a longer patience: three days of silence is no longer a failure
    relaxed = client.get("/api/v1/fleet/health", params={"stale_after_h": 100}).json()
    assert {r["device_id"]: r["status"] for r in relaxed["data"]}["PUMPCO-P-000004"] == "ok"


def _iso_s(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_fleet_health_filters_and_pages(client: TestClient, fleet: None) -> None:
    def ids(**params: Any) -> list[str]:
        return [
            r["device_id"] for r in client.get("/api/v1/fleet/health", params=params).json()["data"]
        ]

    assert ids(kind="pump") == ["PUMPCO-P-000004", "PUMPCO-P-000005"]
    assert ids(site="south") == ["PUMPCO-P-000005", "ACME-V-000003"]
    assert ids(status=["ok", "failure"]) == [ORDER[0], ORDER[1], ORDER[5]]
    assert ids(limit=2, offset=1) == ORDER[1:3]
    page = client.get("/api/v1/fleet/health", params={"status": "failure", "limit": 1}).json()
    assert page["total"] == 2 and len(page["data"]) == 1
    assert page["counts"]["ok"] == 1  # counts ignore the status filter
    # one page at a time (as the page fetches after its first screen) is the same order
    assert [x for k in range(len(ORDER)) for x in ids(limit=1, offset=k)] == ORDER
    assert ids(offset=len(ORDER)) == []
    # the site filter's choices: every site in scope, also when one is chosen
    south = client.get("/api/v1/fleet/health", params={"site": "south", "limit": 1}).json()
    assert south["sites"] == ["north", "south"] and south["total"] == 2
    assert len(south["data"]) == 1


def test_fleet_health_reads_through_the_scope(
    app: Any, client: TestClient, fleet: None, authenticator: Authenticator
) -> None:
    operator = TestClient(app, headers=_key(authenticator, "operator"))
    rows = operator.get("/api/v1/fleet/health").json()["data"]
    assert {r["site"] for r in rows} == {"north"} and len(rows) == 4
    assert operator.get("/api/v1/fleet/health").json()["sites"] == ["north"]
    maker = TestClient(app, headers=_key(authenticator, "manufacturer", manufacturer_code="PumpCo"))
    rows = maker.get("/api/v1/fleet/health").json()["data"]
    assert [(r["device_id"], r["site"]) for r in rows] == [
        ("PUMPCO-P-000004", ""),
        ("PUMPCO-P-000005", ""),
    ]
    # a site name the caller may not see filters to nothing rather than confirming it
    assert maker.get("/api/v1/fleet/health", params={"site": "north"}).json()["total"] == 0
    assert maker.get("/api/v1/fleet/health").json()["sites"] == []  # nor lists any
    mp = authenticator.store.create_org(name="mp", kind="monitoring_point")
    authenticator.store.set_remit(mp.id, Remit(frozenset({"R2"}), frozenset({"valve"})))
    key, _ = authenticator.create_key(mp.id, name="k")
    watcher = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    assert [r["device_id"] for r in watcher.get("/api/v1/fleet/health").json()["data"]] == [
        "ACME-V-000003"
    ]
    # its device page: identity, verdicts and alerts, no charts without a raw-data grant
    page = watcher.get("/api/v1/devices/ACME-V-000003/health").json()
    assert page["seal"] is None and page["actuation"] is None
    assert [a["status"] for a in page["alerts"]] == ["acknowledged"]
    assert watcher.get(f"/api/v1/devices/{VALVE.device_id}/health").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"status": "broken"},
        {"kind": "boiler"},
        {"stale_after_h": "0"},
        {"stale_after_h": "nan"},
        {"limit": "10001"},
        {"offset": "-1"},
    ],
)
def test_fleet_health_refuses_bad_input(
    client: TestClient,
    fleet: None,
    params: dict[str, str],
    assert_error: Callable[[httpx.Response, int, str], dict[str, Any]],
) -> None:
    assert_error(client.get("/api/v1/fleet/health", params=params), 422, "validation_error")


def test_device_page_seal_series_before_and_after_detection(
    client: TestClient, fleet: None, settings: Settings, alerts: SqliteAlertStore
) -> None:
    page = client.get(f"/api/v1/devices/{VALVE.device_id}/health").json()
    assert page["device"]["leakage_class"] == "D" and page["device"]["batch"] == "B1"
    assert page["health"]["status"] == "ok"
    seal = page["seal"]
    test_dp = 1.1 * 16 * 100  # ISO 5208 liquid test at 1.1 PN
    assert seal["unit"] == "mm³/s" and seal["test_dp_kpa"] == pytest.approx(test_dp)
    assert seal["limit"] == pytest.approx(
        float(iso5208.allowable_mm3s(iso5208.class_code("D"), 50))
    )
    # open samples say nothing about the seat: 12 of 120 are left out
    assert seal["readings"] == 108 and len(seal["points"]) == 108
    at_test = 0.4 / math.sqrt(500.0) * math.sqrt(test_dp)
    assert {round(v, 9) for _, v in seal["points"]} == {round(at_test, 9)}
    assert seal["baseline_source"] == "first_readings"
    assert seal["baseline"] == pytest.approx(at_test)
    assert seal["rul_s"] is None
    act = page["actuation"]
    assert act["strokes"] == 20 and set(act["dp_kpa"]) == {500.0}
    assert set(act["stroke_s"]) == {12.0} and set(act["torque_nm"]) == {90.0}
    assert page["pump"] is None and page["verdicts"] == {}

    # the detection process saves its state: the page shows its baseline and verdicts
    detection = DetectionService.from_settings(settings, alerts=alerts)
    readings = _valve_readings()
    detection.observe(VALVE, readings)
    detection.flush()
    detection.save()
    page = client.get(f"/api/v1/devices/{VALVE.device_id}/health").json()
    verdict = page["verdicts"]["seat_leak"]
    assert verdict["status"] == "normal"
    assert page["seal"]["baseline_source"] == "detector"
    assert page["seal"]["baseline"] == pytest.approx(
        verdict["evidence"]["baseline_c"] * math.sqrt(test_dp), rel=1e-3
    )
    assert page["seal"]["status"] == "normal"


def test_device_page_pump_window_and_refusals(
    app: Any,
    client: TestClient,
    fleet: None,
    telemetry: MemoryTelemetryStore,
    authenticator: Authenticator,
    assert_error: Callable[[httpx.Response, int, str], dict[str, Any]],
) -> None:
    pump = DEVICES[3]
    asyncio.run(
        telemetry.write(
            [
                _point(pump, NOW - 4 * 86_400 + 3600 * k, vib_mms=2.0 + k, temp_c=40.0)
                for k in range(3)
            ]
        )
    )
    page = client.get(f"/api/v1/devices/{pump.device_id}/health", params={"days": 7}).json()
    assert page["seal"] is None and page["actuation"] is None
    assert [v for _, v in page["pump"]["vib_mms"]] == [2.0, 3.0, 4.0]
    assert page["pump"]["leak_mm3s"] == []
    # centred on a moment long before: nothing in that window
    old = client.get(
        f"/api/v1/devices/{pump.device_id}/health", params={"days": 1, "at": NOW - 30 * 86_400}
    ).json()
    assert old["pump"]["vib_mms"] == []
    assert_error(client.get("/api/v1/devices/NOPE-1/health"), 404, "not_found")
    for bad in ({"days": "0"}, {"days": "x"}, {"at": "-5"}):
        assert_error(
            client.get(f"/api/v1/devices/{pump.device_id}/health", params=bad),
            422,
            "validation_error",
        )
    operator = TestClient(app, headers=_key(authenticator, "operator"))
    assert operator.get("/api/v1/devices/ACME-V-000003/health").status_code == 404  # south


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(
        st.sampled_from(["site", "kind", "status", "stale_after_h", "limit", "offset"]),
        st.text(max_size=12),
        max_size=4,
    )
)
def test_fleet_health_never_fails_on_any_query(client: TestClient, query: dict[str, str]) -> None:
    response = client.get("/api/v1/fleet/health", params=query)
    assert response.status_code in (200, 422), response.text


def test_sqlite_latest_keeps_the_newest_and_backfills(tmp_path: Path) -> None:
    path = tmp_path / "t.db"

    async def run() -> None:
        store = SqliteTelemetryStore(path)
        d = DEVICES[0]
        await store.write([_point(d, 100.0, battery_v=3.5, p_in_kpa=1.0)])
        await store.write([_point(d, 50.0, battery_v=3.9, rsrp_dbm=-80.0)])  # a late replay
        latest = (await store.latest())[d.device_id]
        assert latest.t_ns == 100 * 10**9
        assert latest.values == {"battery_v": (100 * 10**9, 3.5), "rsrp_dbm": (50 * 10**9, -80.0)}
        await store.close()
        # a file written before the table existed is read once into it
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE device_latest")
        store = SqliteTelemetryStore(path)
        again = (await store.latest())[d.device_id]
        assert again == latest
        await store.close()

    asyncio.run(run())
