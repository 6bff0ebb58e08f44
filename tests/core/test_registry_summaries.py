"""``DeviceRegistry.summaries``: the fleet list's columns for every matching device, in one
query, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from sealscope.accounts import Scope
from sealscope.db import tables
from sealscope.registry import Device, DeviceSummary, SqlDeviceRegistry

DEVICES = (
    Device("B-2", "pump", "PumpCo", "P-80", site="south", region="R2", dn=80),
    Device("A-1", "valve", "ACME", "BV-50", site="north", region="R1", batch="L1"),
    Device("C-3", "valve", "ACME", "BV-80", site="south", region="R2"),
)


def test_summaries_filter_and_order(db_engine: sa.Engine) -> None:
    registry = SqlDeviceRegistry(db_engine)
    registry.upsert_many(DEVICES)
    every = registry.summaries()
    assert [s.device_id for s in every] == ["A-1", "B-2", "C-3"]
    assert every[0] == DeviceSummary("A-1", "valve", "ACME", "BV-50", "north", "R1")
    assert every[0] == DeviceSummary.of(registry.get("A-1"))
    assert [s.device_id for s in registry.summaries(site="south")] == ["B-2", "C-3"]
    assert [s.device_id for s in registry.summaries(kind="valve", site="south")] == ["C-3"]
    maker = Scope(kind="manufacturer", manufacturer_code="ACME")
    mine = registry.summaries(where=maker.device_clause(tables.devices.c))
    assert [s.device_id for s in mine] == ["A-1", "C-3"]
    # PostgreSQL text cannot hold NUL: nothing matches, rather than an error
    assert registry.summaries(site="no\x00rth") == []
