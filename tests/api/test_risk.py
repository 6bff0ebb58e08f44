"""/api/v1/risk: the fleet risk table, filtered by dimension and strength."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient

from analytics.fleet_risk import FleetRisk
from sealscope.registry import Device
from sealscope.risk import JsonFileRiskStore, MemoryRiskStore

DAY = 86_400.0
T0 = 1_767_225_600.0


def _risk() -> FleetRisk:
    """400 valves over 200 days; batch BAD-1 has 12 of 40 failing, the others 4 of 120."""
    devices = [
        Device(
            device_id=f"V{i:04d}",
            kind="valve",
            manufacturer="ACME" if i < 200 else "YJV",
            model="BV" if i % 2 else "GV",
            batch="BAD-1" if i < 40 else f"OK-{i % 3}",
            region="zj",
        )
        for i in range(400)
    ]
    risk = FleetRisk()
    risk.add_devices(devices)
    risk.observe_many(
        [d.device_id for d in devices], np.full(400, T0), np.full(400, T0 + 200 * DAY)
    )
    for i in list(range(0, 40, 3))[:12] + list(range(45, 400, 90)):
        risk.record_event(f"V{i:04d}", T0 + 100 * DAY)
    return risk


def _serve(client: TestClient, risk: FleetRisk) -> None:
    store = MemoryRiskStore()
    store.save(risk.table())
    client.app.state.risk_store = store  # type: ignore[attr-defined]


def test_risk_table_lists_groups_with_evidence(client: TestClient) -> None:
    _serve(client, _risk())
    body = client.get("/api/v1/risk").json()
    assert body["devices"] == 400 and body["events"] == 16
    assert body["evaluated_at"] == "2026-07-20T00:00:00Z"
    top = body["data"][0]
    assert top["key"] == "batch:BAD-1"
    assert top["flagged"] is True and top["strength"] == "strong"
    assert top["devices"] == 40 and top["events"] == 12
    assert top["manufacturers"] == ["ACME"]
    assert top["rate_ratio"] > 5 and top["q_value"] <= 0.001
    # the added fields are served: no levels were fed, so only the event test ran
    assert top["event_p_value"] == top["p_value"] and top["growth_p_value"] is None
    assert top["models"] == ["BV", "GV"] and top["growing"] == 12
    assert top["evidence_text"].startswith("batch BAD-1 of ACME: seal alerts at ")
    # region "zj" is the whole fleet: it has no peers, so no evidence either way
    zj = next(r for r in body["data"] if r["key"] == "region:zj")
    assert zj["p_value"] == 1.0 and zj["rate_ratio"] is None and zj["flagged"] is False


def test_risk_table_filters_by_dimension_and_strength(client: TestClient) -> None:
    _serve(client, _risk())
    batches = client.get("/api/v1/risk", params={"dimension": "batch"}).json()["data"]
    assert {r["group"] for r in batches} == {"BAD-1", "OK-0", "OK-1", "OK-2"}
    strong = client.get("/api/v1/risk", params={"min_strength": "strong"}).json()["data"]
    assert strong and all(r["strength"] == "strong" for r in strong)
    assert "batch:BAD-1" in {r["key"] for r in strong}
    assert "batch:OK-0" not in {r["key"] for r in strong}
    unflagged = client.get("/api/v1/risk", params={"flagged": "false"}).json()["data"]
    assert all(not r["flagged"] for r in unflagged)


def test_risk_table_rejects_unknown_dimension(
    client: TestClient, assert_error: Callable[[httpx.Response, int, str], dict[str, Any]]
) -> None:
    _serve(client, _risk())
    assert_error(
        client.get("/api/v1/risk", params={"dimension": "colour"}), 422, "validation_error"
    )


def test_risk_table_before_a_first_save_is_unavailable(
    client: TestClient, assert_error: Callable[[httpx.Response, int, str], dict[str, Any]]
) -> None:
    assert_error(client.get("/api/v1/risk"), 503, "fleet_risk_unavailable")


def test_separate_api_serves_the_table_the_detection_process_saved(
    client: TestClient, settings: Any
) -> None:
    path = settings.risk_table_path
    saved = JsonFileRiskStore(path)  # what the detection process writes
    risk = _risk()
    saved.save(risk.table())
    body = client.get("/api/v1/risk", params={"dimension": "batch"}).json()
    assert body["events"] == 16
    # the detection process saves again: the API reloads instead of serving a stale table
    risk.record_event("V0001", T0 + 150 * DAY)
    saved.save(risk.table())
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))  # coarse mtime clocks
    assert client.get("/api/v1/risk").json()["events"] == 17
