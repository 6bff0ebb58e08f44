"""The scope policy: the Python rule and the SQL filter agree on every device, also when the
SQL registry pages through the filter on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from sealscope.accounts import Organisation, Remit, Scope, Site
from sealscope.db import tables
from sealscope.errors import Forbidden
from sealscope.registry import Device, SqlDeviceRegistry

DEVICES = [
    Device(f"D-{i:04d}", kind, maker, model, site=site, region=region)
    for i, (kind, maker, model, site, region) in enumerate(
        itertools.product(
            ("valve", "pump"), ("ACME", "PumpCo"), ("BV-50", "P-80"), ("north", "south", ""),
            ("R1", "R2", ""),
        )
    )
]  # fmt: skip

SCOPES = {
    "admin": Scope("admin"),
    "operator": Scope.for_org(
        Organisation(1, "op", "operator"), [Site("north", 1), Site("south", 2)]
    ),
    "manufacturer": Scope.for_org(Organisation(2, "m", "manufacturer", manufacturer_code="ACME")),
    "monitoring_point": Scope(
        "monitoring_point", remit=Remit(frozenset({"R1"}), frozenset({"valve"}))
    ),
    "narrow_mp": Scope(
        "monitoring_point",
        remit=Remit(
            frozenset({"R1", "R2"}), frozenset({"pump"}), frozenset({"PumpCo"}), frozenset({"P-80"})
        ),
    ),
    "empty_mp": Scope("monitoring_point"),
    "empty_operator": Scope("operator"),
}


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_scope_device_clause_selects_exactly_the_allowed_devices(name: str) -> None:
    scope = SCOPES[name]
    meta = sa.MetaData()
    devices = sa.Table(
        "devices",
        meta,
        *(
            sa.Column(c, sa.String)
            for c in ("device_id", "kind", "manufacturer", "model", "site", "region")
        ),
    )
    engine = sa.create_engine("sqlite://")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            devices.insert(),
            [{c.name: getattr(d, c.name) for c in devices.columns} for d in DEVICES],
        )
        selected = set(
            conn.execute(
                sa.select(devices.c.device_id).where(scope.device_clause(devices.c))
            ).scalars()
        )
    assert selected == {d.device_id for d in DEVICES if scope.allows_device(d)}


def test_scope_rules_per_kind() -> None:
    valve_r1 = Device("A-0001", "valve", "ACME", "BV-50", site="north", region="R1")
    assert SCOPES["operator"].allows_device(valve_r1)
    assert not SCOPES["operator"].allows_device(Device("A-0002", "valve", "ACME", "m", site="east"))
    assert SCOPES["manufacturer"].allows_device(valve_r1)
    assert SCOPES["manufacturer"].present(valve_r1).site == ""  # region only
    assert SCOPES["manufacturer"].present(valve_r1).region == "R1"
    assert SCOPES["monitoring_point"].allows_device(valve_r1)
    assert not SCOPES["monitoring_point"].sees_raw_telemetry
    assert not SCOPES["empty_operator"].allows_device(Device("A-0003", "valve", "a", "m"))
    with pytest.raises(Forbidden):
        SCOPES["monitoring_point"].require("dead_letters:read")


def test_scope_risk_groups() -> None:
    m, mp = SCOPES["manufacturer"], SCOPES["monitoring_point"]
    assert m.allows_risk_group("manufacturer", "ACME")
    assert not m.allows_risk_group("manufacturer", "PumpCo")
    assert m.allows_risk_group("model", "BV-50", ["ACME"])
    assert not m.allows_risk_group("model", "X", ["ACME", "PumpCo"])  # not only its devices
    assert not m.allows_risk_group("region", "R1", ["ACME"])  # a region is everyone's
    assert mp.allows_risk_group("region", "R1") and not mp.allows_risk_group("region", "R2")
    narrow = SCOPES["narrow_mp"]
    assert narrow.allows_risk_group("model", "P-80", ["PumpCo"])
    assert not narrow.allows_risk_group("model", "BV-50", ["PumpCo"])
    assert not narrow.allows_risk_group("batch", "b1", ["ACME"])
    assert not SCOPES["operator"].allows_risk_group("region", "R1")


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_scope_device_clause_pages_the_sql_registry_like_the_python_rule(
    name: str, db_engine: sa.Engine
) -> None:
    scope = SCOPES[name]
    registry = SqlDeviceRegistry(db_engine)
    registry.upsert_many(DEVICES)
    allowed = [d.device_id for d in DEVICES if scope.allows_device(d)]  # already in id order
    clause = scope.device_clause(tables.devices.c)
    for offset in (0, 3):
        page = registry.list(where=clause, limit=5, offset=offset)
        assert [d.device_id for d in page] == allowed[offset : offset + 5]
    by_maker = registry.list(manufacturer="PumpCo", where=clause, limit=1000)
    assert [d.device_id for d in by_maker] == [
        d.device_id for d in DEVICES if d.manufacturer == "PumpCo" and scope.allows_device(d)
    ]
