"""The quality views over a seeded fleet: exact intervals, Kaplan-Meier ageing, the report
in JSON, CSV and PDF, the regional view, the fleet by model, uploads, and their scopes."""

from __future__ import annotations

import csv
import io
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from composition.quality import (
    MONTH_S,
    YEAR_S,
    DeviceFacts,
    ageing,
    compare,
    period_counts,
    poisson_interval,
    share_interval,
)
from sealscope.accounts import Authenticator, Remit, Site
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.registry import Device, SqliteDeviceRegistry
from tests.api.pdf_text import pdf_text

NOW = time.time()
T0 = NOW - 400 * 86_400.0  # every seeded device registered then


@pytest.fixture
def registry(settings: Settings) -> Iterator[SqliteDeviceRegistry]:
    reg = SqliteDeviceRegistry(settings.state_db, clock=lambda: T0)
    yield reg
    reg.close()


def _valves(model: str, batch: str, n: int, region: str, site: str) -> list[Device]:
    return [
        Device(f"ACME-{model}-{batch}-{i:03d}", "valve", "ACME", model, batch, site, region)
        for i in range(n)
    ]


BAD = _valves("BV50", "B1", 10, "R1", "north")  # 6 degrade
GOOD = _valves("BV50", "B2", 10, "R1", "south")  # 1 degrades
OTHER = _valves("BV80", "B3", 10, "R2", "east")  # 1 degrades
PUMPS = [
    Device(f"PUMPCO-P80-{i:03d}", "pump", "PumpCo", "P-80", "P1", "east", "R2") for i in range(10)
]


@dataclass
class Fleet:
    keys: dict[str, str]
    degraded_at: dict[str, float]


@pytest.fixture
def fleet(
    client: TestClient,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    authenticator: Authenticator,
) -> Fleet:
    registry.upsert_many([*BAD, *GOOD, *OTHER, *PUMPS])
    degraded_at: dict[str, float] = {}
    for n, d in enumerate([*BAD[:6], GOOD[0], OTHER[0], PUMPS[0]]):
        t = T0 + (2 + n % 6) * MONTH_S  # 2..7 months in service, inside the last year
        cause = "pump_seal" if d.kind == "pump" else "seat_leak"
        alerts.raise_alert(
            device_id=d.device_id,
            cause=cause,
            category="maintenance_required",
            severity=3,
            summary=f"{cause} on {d.device_id}",
            evidence={},
            t=t,
        )
        degraded_at[d.device_id] = t
    alerts.raise_alert(
        device_id=PUMPS[1].device_id,
        cause="motor_stall",
        category="failure",
        severity=5,
        summary="motor stalled",
        evidence={},
        t=NOW - 10 * 86_400.0,
    )
    store = authenticator.store
    keys = {}
    for kind, code in (("manufacturer", "ACME"), ("monitoring_point", None), ("operator", None)):
        org = store.create_org(name=kind, kind=kind, manufacturer_code=code)  # type: ignore[arg-type]
        keys[kind] = authenticator.create_key(org.id, name="k")[0]
        if kind == "monitoring_point":
            store.set_remit(org.id, Remit(frozenset({"R1"}), frozenset({"valve"})))
        if kind == "operator":
            store.put_site(Site("north", org.id, "R1"))
    return Fleet(keys, degraded_at)


def _as(app_client: TestClient, key: str) -> Callable[..., httpx.Response]:
    def get(url: str, **params: Any) -> httpx.Response:
        return app_client.get(url, params=params, headers={"Authorization": f"Bearer {key}"})

    return get


# -- statistics -----------------------------------------------------------------------------


def test_exact_intervals_match_published_values() -> None:
    # Garwood: 0 events -> [0, 3.689]; 3 events -> [0.619, 8.767] (e.g. Ulm 1990's table)
    assert poisson_interval(0) == (0.0, pytest.approx(3.6889, abs=1e-4))
    low, high = poisson_interval(3)
    assert (low, high) == (pytest.approx(0.6187, abs=1e-4), pytest.approx(8.7673, abs=1e-4))
    # Clopper-Pearson: 0/10 -> [0, 0.3085]; 5/10 -> [0.1871, 0.8129]
    assert share_interval(0, 10) == (0.0, pytest.approx(0.3085, abs=1e-4))
    assert share_interval(5, 10) == (
        pytest.approx(0.1871, abs=1e-4),
        pytest.approx(0.8129, abs=1e-4),
    )
    assert share_interval(0, 0) is None


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 17), (40, 41), (250, 10_000)])
def test_intervals_agree_with_scipy_stats(k: int, n: int) -> None:
    # the closed forms used for speed against scipy.stats' own exact routines
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert share_interval(k, n) == (
        pytest.approx(ci.low, abs=1e-9),
        pytest.approx(ci.high, abs=1e-9),
    )
    low = stats.chi2.ppf(0.025, 2 * k) / 2 if k else 0.0
    assert poisson_interval(k) == (
        pytest.approx(low),
        pytest.approx(stats.chi2.ppf(0.975, 2 * k + 2) / 2),
    )


def _facts(since: float, degraded: float | None) -> DeviceFacts:
    return DeviceFacts(
        Device(f"X-{since}-{degraded}", "valve", "X", "M", created_at=since), degraded
    )


def test_ageing_is_kaplan_meier_with_censoring() -> None:
    now = 10 * MONTH_S
    facts = [
        _facts(0.0, 0.5 * MONTH_S),  # degraded at 0.5 months
        _facts(0.0, 1.5 * MONTH_S),  # degraded at 1.5
        _facts(now - 1.2 * MONTH_S, None),  # censored at 1.2
        _facts(now - 3.5 * MONTH_S, None),  # censored at 3.5
    ]
    points = ageing(facts, now)
    # S(0.5) = 3/4; S(1.5) = 3/4 * (1 - 1/2) = 3/8: the censored device left the risk set
    assert [p.month for p in points] == [0, 1, 2, 3]
    assert [p.share for p in points] == [0.0, 0.25, 0.625, 0.625]
    assert [p.at_risk for p in points] == [4, 3, 1, 1]
    # a naive share (degraded / all) would say 0.5 at month 2: censoring is what differs
    assert ageing(facts, now, months=5)[5].share is None  # nobody observed 5 months


def test_period_counts_stop_exposure_at_the_first_degradation() -> None:
    year = YEAR_S
    facts = [_facts(0.0, 0.25 * year), _facts(0.0, None), _facts(0.5 * year, None)]
    c = period_counts(facts, 0.0, year)
    assert (c.devices, c.degraded, c.at_risk_devices) == (3, 1, 3)
    assert c.at_risk_years == pytest.approx(0.25 + 1.0 + 0.5)
    assert c.service_years == pytest.approx(2.5)
    # the degraded device's event before the period: not at risk in it
    later = period_counts(facts, 0.5 * year, year)
    assert (later.devices, later.degraded, later.at_risk_devices) == (3, 0, 2)


def test_rate_ratio_is_standardised_by_kind() -> None:
    year = YEAR_S
    group = [_facts(0.0, 0.5 * year), _facts(0.0, 0.5 * year), _facts(0.0, None)]
    peers = [_facts(0.0, None)] * 3 + [_facts(0.0, 0.5 * year)]
    c = compare(group, peers, 0.0, year)
    # group: 2 events; peers: 1 event in 3.5 device-years; expected = 2.0 * 1 / 3.5
    assert c.observed == 2
    assert c.expected == pytest.approx(2.0 / 3.5)
    assert c.rate_ratio == pytest.approx(3.5)
    low, high = poisson_interval(2)
    assert c.rate_ratio_low == pytest.approx(low * 3.5 / 2.0)
    assert c.rate_ratio_high == pytest.approx(high * 3.5 / 2.0)
    assert c.p_value is not None and 0.0 < c.p_value < 1.0


# -- the report -----------------------------------------------------------------------------


def test_report_by_model_in_json(client: TestClient, fleet: Fleet) -> None:
    r = client.get("/api/v1/reports/quality", params={"by": "model"})
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {row["group"]: row for row in body["rows"]}
    assert list(rows) == ["BV50", "BV80", "P-80"]
    bv50 = rows["BV50"]
    assert (bv50["devices"], bv50["degraded"], bv50["kinds"]) == (20, 7, ["valve"])
    # peers are the other valves only (BV80: 10 devices, 1 degraded), never the pumps
    assert (bv50["peer_devices"], bv50["failures"]) == (10, 0)
    assert bv50["degradation_rate_low"] < bv50["degradation_rate"] < bv50["degradation_rate_high"]
    assert bv50["degradation_rate_ratio"] > 1
    assert bv50["causes"] == {"seat_leak": 7}
    assert len(bv50["alerts"]) == 5  # the newest, as the evidence
    assert bv50["evidence"].startswith("7 of 20 devices degraded in the period")
    assert "同类设备" in bv50["evidence_zh"]
    pumps = rows["P-80"]
    assert (pumps["failures"], pumps["failed_devices"]) == (1, 1)
    assert pumps["degradation_rate_ratio"] is None  # no other pumps to compare with
    assert pumps["failure_rate_low"] < pumps["failure_rate"] < pumps["failure_rate_high"]


def test_report_csv_and_pdf_downloads(client: TestClient, fleet: Fleet) -> None:
    r = client.get("/api/v1/reports/quality", params={"by": "manufacturer", "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    text = r.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["group"] for row in rows] == ["ACME", "PumpCo"]
    assert rows[0]["degraded devices"] == "8" and rows[0]["devices"] == "30"
    assert rows[0]["alerts by cause"] == "seat_leak=8"
    assert float(rows[0]["degradation rate 95% low"]) < float(
        rows[0]["degradation rate /device-year"]
    )

    zh = client.get("/api/v1/reports/quality", params={"format": "csv", "lang": "zh-CN"})
    header = next(csv.reader(io.StringIO(zh.content.decode("utf-8-sig"))))
    assert header[:3] == ["维度", "分组", "起始 (UTC)"]

    pdf = client.get("/api/v1/reports/quality", params={"format": "pdf", "lang": "zh-CN"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert b"/STSong-Light" in pdf.content  # the built-in CID font, no font file embedded
    assert b"/FontFile" not in pdf.content
    text = pdf_text(pdf.content)
    assert "按制造商的现场质量报告" in text  # the title, in Chinese
    assert "ACME" in text and "PumpCo" in text and "证据" in text


@pytest.mark.parametrize(
    "params",
    [
        {"by": "site"},
        {"format": "xls"},
        {"lang": "fr"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "1900-01-01"},
        {"to": "not a date"},
        {"group": ""},
    ],
)
def test_report_refuses_bad_parameters(
    client: TestClient, fleet: Fleet, params: dict[str, str], assert_error: Any
) -> None:
    assert_error(client.get("/api/v1/reports/quality", params=params), 422, "validation_error")


def test_report_scoped_to_the_caller(client: TestClient, fleet: Fleet, assert_error: Any) -> None:
    acme = _as(client, fleet.keys["manufacturer"])
    body = acme("/api/v1/reports/quality", by="manufacturer").json()
    assert [r["group"] for r in body["rows"]] == ["ACME"]
    assert_error(
        acme("/api/v1/reports/quality", by="manufacturer", group="PumpCo"), 404, "not_found"
    )
    mp = _as(client, fleet.keys["monitoring_point"])
    rows = mp("/api/v1/reports/quality", by="model").json()["rows"]
    # the remit is R1 valves: BV80 sits in R2; BV50's figures count only its R1 devices
    assert [(r["group"], r["devices"]) for r in rows] == [("BV50", 20)]
    assert_error(_as(client, fleet.keys["operator"])("/api/v1/reports/quality"), 403, "forbidden")


# -- risk group detail ----------------------------------------------------------------------


def test_risk_group_detail_devices_worst_first_and_ageing(
    client: TestClient, fleet: Fleet, assert_error: Any
) -> None:
    r = client.get("/api/v1/risk/groups/batch/B1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["row"] is None  # no risk table saved in this app
    assert body["tally"]["devices"] == 10 and body["tally"]["degraded"] == 6
    ids = [d["device_id"] for d in body["devices"]]
    assert ids[:6] == sorted(ids[:6], key=lambda i: fleet.degraded_at[i])
    assert all(d["first_degraded_at"] is None for d in body["devices"][6:])
    ageing_ = body["ageing"]
    group, peers = ageing_["group"], ageing_["peers"]
    assert len(group) == len(peers) == ageing_["months"] + 1 == 14  # ~13.1 months in service
    assert group[-1]["share"] == pytest.approx(0.6) and peers[-1]["share"] == pytest.approx(2 / 20)
    # pumps are no peers of a valve batch
    assert peers[0]["at_risk"] == 20
    page = client.get("/api/v1/risk/groups/batch/B1", params={"limit": 3, "offset": 6}).json()
    assert [d["device_id"] for d in page["devices"]] == ids[6:9]
    assert_error(client.get("/api/v1/risk/groups/batch/NOPE"), 404, "not_found")
    assert_error(client.get("/api/v1/risk/groups/colour/red"), 422, "validation_error")


def test_risk_group_detail_hides_what_the_scope_hides(
    client: TestClient, fleet: Fleet, assert_error: Any
) -> None:
    acme = _as(client, fleet.keys["manufacturer"])
    body = acme("/api/v1/risk/groups/model/BV50").json()
    assert {d["site"] for d in body["devices"]} == {""}  # manufacturers see regions only
    assert_error(acme("/api/v1/risk/groups/model/P-80"), 404, "not_found")
    assert_error(acme("/api/v1/risk/groups/region/R1"), 404, "not_found")


# -- regions, fleet by model, uploads -------------------------------------------------------


def test_regions_with_sites_only_where_the_scope_shows_them(
    client: TestClient, fleet: Fleet
) -> None:
    rows = client.get("/api/v1/regions").json()
    regions = [(r["region"], r["site"], r["tally"]["devices"]) for r in rows["data"]]
    assert regions == [
        ("R1", None, 20),
        ("R1", "north", 10),
        ("R1", "south", 10),
        ("R2", None, 20),
        ("R2", "east", 20),
    ]
    r2 = rows["data"][3]["tally"]
    assert (r2["valves"], r2["pumps"], r2["degraded"], r2["open_alerts"]) == (10, 10, 2, 3)
    mp = _as(client, fleet.keys["monitoring_point"])("/api/v1/regions").json()
    assert mp["sites_shown"] is False
    assert [(r["region"], r["site"]) for r in mp["data"]] == [("R1", None)]


def test_fleet_by_model_for_the_manufacturer(
    client: TestClient, fleet: Fleet, assert_error: Any
) -> None:
    acme = _as(client, fleet.keys["manufacturer"])
    body = acme("/api/v1/fleet/models").json()
    assert body["manufacturer"] == "ACME" and body["tally"]["devices"] == 30
    models = {m["model"]: m for m in body["data"]}
    assert list(models) == ["BV50", "BV80"]
    assert [(b["batch"], b["tally"]["degraded"]) for b in models["BV50"]["batches"]] == [
        ("B1", 6),
        ("B2", 1),
    ]
    assert models["BV80"]["tally"]["regions"] == {"R2": 10}
    assert_error(acme("/api/v1/fleet/models", manufacturer="PumpCo"), 404, "not_found")
    admin = client.get("/api/v1/fleet/models", params={"manufacturer": "PumpCo"}).json()
    assert [m["model"] for m in admin["data"]] == ["P-80"]


def test_upload_list_is_the_manufacturers_own(client: TestClient, fleet: Fleet) -> None:
    row = {"device_id": "ACME-V-000777", "kind": "valve", "model": "BV50"}
    made = client.post("/api/v1/provisioning/devices?manufacturer=ACME", json=[row])
    assert made.status_code == 200, made.text
    other = {"device_id": "OTHER-V-000001", "kind": "valve", "model": "X"}
    assert client.post("/api/v1/provisioning/devices?manufacturer=OTHER", json=[other]).is_success
    acme = _as(client, fleet.keys["manufacturer"])
    listed = acme("/api/v1/provisioning/uploads").json()["data"]
    assert [(u["manufacturer"], u["created"]) for u in listed] == [("ACME", 1)]
    assert len(client.get("/api/v1/provisioning/uploads").json()["data"]) == 2


@pytest.mark.bench
def test_bench_quality_views_on_10k_devices(tmp_path: Any) -> None:
    """Prints each view's computation on 10,000 devices and 2,000 alerts next to the read of
    the same fleet from the registry and alert store (the floor every view pays)."""
    from composition.quality import FleetArrays, FleetSnapshot, Tally, ageing_masks
    from composition.quality_report import build_report
    from sealscope.accounts import Scope

    t0 = NOW - 400 * 86_400.0
    reg = SqliteDeviceRegistry(tmp_path / "s.db", clock=lambda: t0)
    store = SqliteAlertStore(tmp_path / "s.db")
    devices = [
        Device(
            f"M{i % 20}-V-{i:06d}",
            "valve" if i % 4 else "pump",
            f"M{i % 20}",
            f"MOD{i % 100}",
            f"B{i % 400}",
            f"S{i % 50}",
            f"R{i % 8}",
        )
        for i in range(10_000)
    ]
    reg.upsert_many(devices)
    for i in range(0, len(devices), 5):
        store.raise_alert(
            device_id=devices[i].device_id,
            cause="seat_leak",
            category="maintenance_required",
            severity=3,
            summary="s",
            evidence={},
            t=t0 + (i % 300) * 86_400.0,
        )
    admin = Scope(kind="admin")
    started = time.perf_counter()
    snap = FleetSnapshot.load(reg, store)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    report = build_report(snap, admin, None, by="model", start=NOW - YEAR_S, end=NOW)
    report_s = time.perf_counter() - started
    started = time.perf_counter()
    arrays = FleetArrays(snap.devices)
    models = arrays.values("model")
    for name in sorted(set(models)):
        in_model = models == name
        ageing_masks(arrays, in_model, ~in_model, snap.now)
        Tally.of([snap.devices[i] for i in in_model.nonzero()[0]], snap.now)
    fleet_s = time.perf_counter() - started
    print(
        f"\nquality views, 10,000 devices, {len(snap.alerts)} alerts: fleet read {read_s * 1e3:.0f}"
        f" ms (the floor); report by model ({len(report['rows'])} groups) {report_s * 1e3:.0f}"
        f" ms; fleet by model (ageing + tallies) {fleet_s * 1e3:.0f} ms"
    )
    assert len(report["rows"]) == 100
    reg.close()
    store.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    group=st.text(min_size=0, max_size=140),
    when=st.one_of(st.none(), st.text(max_size=30), st.dates().map(str)),
    dimension=st.sampled_from(["batch", "model", "manufacturer", "region", "colour", "BATCH"]),
)
def test_hostile_group_names_and_dates_never_fail_the_server(
    client: TestClient, fleet: Fleet, group: str, when: str | None, dimension: str
) -> None:
    acme = _as(client, fleet.keys["manufacturer"])
    params: dict[str, str] = {"group": group, "by": "model"}
    if when is not None:
        params["from"] = when
    answers = [
        acme("/api/v1/reports/quality", **params),
        acme("/api/v1/fleet/models", manufacturer=group),
        acme(f"/api/v1/risk/groups/{dimension}/{quote(group, safe='')}"),
    ]
    for r in answers:
        assert r.status_code in (200, 404, 422), (r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
