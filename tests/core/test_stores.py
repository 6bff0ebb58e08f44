"""Store contract: the registry, alert and dead-letter stores behave the same on SQLite and
on a real PostgreSQL (the ``db_engine`` fixture runs every test on both)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealscope.alerts import AlertChange, AlertStore, SqlAlertStore, renotify_due
from sealscope.db import open_engine, read, tables, write
from sealscope.deadletters import SqlDeadLetterStore
from sealscope.errors import Conflict, NotFound
from sealscope.memory_alerts import MemoryAlertStore
from sealscope.registry import Device, SqlDeviceRegistry, SqliteDeviceRegistry


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sealscope.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(db_engine: sa.Engine, clock: FakeClock) -> SqlDeviceRegistry:
    return SqlDeviceRegistry(db_engine, clock=clock)


@pytest.fixture
def alerts(db_engine: sa.Engine, clock: FakeClock) -> SqlAlertStore:
    return SqlAlertStore(db_engine, clock=clock)


def _second_engine(engine: sa.Engine) -> sa.Engine:
    """Another engine on the same database, as another process would have."""
    return open_engine(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def dead_letters(db_engine: sa.Engine, clock: FakeClock) -> SqlDeadLetterStore:
    return SqlDeadLetterStore(db_engine, clock=clock)


def _device(device_id: str, **kw: object) -> Device:
    fields: dict[str, object] = {"kind": "valve", "manufacturer": "acme", "model": "BV-50"}
    fields.update(kw)
    return Device(device_id=device_id, **fields)  # type: ignore[arg-type]


def _raise(store: SqlAlertStore, t: float, **kw: object) -> object:
    args: dict[str, object] = {
        "device_id": "ACME-001",
        "cause": "seat_leak",
        "category": "maintenance_required",
        "severity": 2,
        "summary": "Seat leakage is 3x its commissioning baseline.",
        "evidence": {"signal": "leak_coeff", "ratio": 3.0},
        "t": t,
    }
    args.update(kw)
    return store.raise_alert(**args)  # type: ignore[arg-type]


# --- registry --------------------------------------------------------------------------


def test_registry_add_sets_created_at_and_get_round_trips(
    registry: SqlDeviceRegistry, clock: FakeClock
) -> None:
    device = _device(
        "ACME-001",
        batch="L42",
        site="wz-1",
        region="yongjia",
        dn=50,
        pn=16,
        seat_material="PTFE",
        leakage_class="D",
        firmware="1.2.3",
        created_at=5.0,
    )
    added = registry.add(device)
    assert added.created_at == clock.t
    assert registry.get("ACME-001") == added


def test_registry_add_twice_raises_conflict(registry: SqlDeviceRegistry) -> None:
    registry.add(_device("ACME-001"))
    with pytest.raises(Conflict) as info:
        registry.add(_device("ACME-001", model="other"))
    assert (info.value.kind, info.value.key) == ("device", "ACME-001")
    assert registry.get("ACME-001").model == "BV-50"


def test_registry_get_unknown_raises_not_found(registry: SqlDeviceRegistry) -> None:
    with pytest.raises(NotFound) as info:
        registry.get("NOPE-1")
    assert info.value.key == "NOPE-1"


def test_registry_nul_in_a_key_is_not_found(registry: SqlDeviceRegistry) -> None:
    registry.add(_device("ACME-001"))
    with pytest.raises(NotFound):
        registry.get("ACME-001\x00")
    assert registry.list(manufacturer="acme\x00") == []


def test_registry_list_orders_ids_bytewise_whatever_the_locale(
    registry: SqlDeviceRegistry,
) -> None:
    for device_id in ["acme-1", "ACME1X", "ACME-2"]:
        registry.add(_device(device_id))
    # a locale collation would ignore "-" and case: ACME1X, ACME-2, acme-1
    assert [d.device_id for d in registry.list()] == ["ACME-2", "ACME1X", "acme-1"]


def test_registry_list_filters_orders_and_pages(registry: SqlDeviceRegistry) -> None:
    for device_id, manufacturer, site in [
        ("ZED-003", "zed", "s1"),
        ("ACME-002", "acme", "s2"),
        ("ACME-001", "acme", "s1"),
        ("ACME-003", "acme", "s1"),
    ]:
        registry.add(_device(device_id, manufacturer=manufacturer, site=site))
    ids = lambda ds: [d.device_id for d in ds]  # noqa: E731
    assert ids(registry.list()) == ["ACME-001", "ACME-002", "ACME-003", "ZED-003"]
    assert ids(registry.list(manufacturer="acme")) == ["ACME-001", "ACME-002", "ACME-003"]
    assert ids(registry.list(site="s1")) == ["ACME-001", "ACME-003", "ZED-003"]
    assert ids(registry.list(manufacturer="acme", site="s1")) == ["ACME-001", "ACME-003"]
    assert ids(registry.list(limit=2, offset=1)) == ["ACME-002", "ACME-003"]
    assert registry.list(manufacturer="nobody") == []


def test_registry_upsert_many_updates_and_keeps_created_at(
    registry: SqlDeviceRegistry, clock: FakeClock
) -> None:
    registry.add(_device("ACME-001", firmware="1.0"))
    first_seen = clock.t
    clock.t += 100
    n = registry.upsert_many([_device("ACME-001", firmware="2.0"), _device("ACME-002")])
    assert n == 2
    updated = registry.get("ACME-001")
    assert updated.firmware == "2.0"
    assert updated.created_at == first_seen
    assert registry.get("ACME-002").created_at == clock.t


def test_registry_upsert_many_is_all_or_nothing(registry: SqlDeviceRegistry) -> None:
    bad = _device("ACME-002", kind="boiler")  # the schema's CHECK refuses it
    with pytest.raises(ValueError, match="#1"):
        registry.upsert_many([_device("ACME-001"), bad, _device("ACME-003")])
    assert registry.list() == []


def test_sqlite_registry_survives_reopen(db_path: Path) -> None:
    reg = SqliteDeviceRegistry(db_path)
    reg.add(_device("ACME-001"))
    reg.close()
    reg = SqliteDeviceRegistry(db_path)
    assert reg.get("ACME-001").manufacturer == "acme"
    reg.close()


# --- alerts ----------------------------------------------------------------------------


def test_alert_raise_opens_then_updates_the_same_alert(alerts: SqlAlertStore) -> None:
    first = _raise(alerts, 100.0)
    again = _raise(
        alerts,
        160.0,
        severity=4,
        category="out_of_specification",
        summary="Seat leakage is 9x baseline.",
        evidence={"signal": "leak_coeff", "ratio": 9.25, "nested": {"n": [1, 2]}},
    )
    assert again.id == first.id
    assert again.status == "open"
    assert again.opened_at == 100.0
    assert again.updated_at == 160.0
    assert (again.severity, again.category) == (4, "out_of_specification")
    assert again.summary == "Seat leakage is 9x baseline."
    assert alerts.get(first.id).evidence == {
        "signal": "leak_coeff",
        "ratio": 9.25,
        "nested": {"n": [1, 2]},
    }


def test_alert_late_verdict_does_not_move_updated_at_back(alerts: SqlAlertStore) -> None:
    _raise(alerts, 200.0)
    late = _raise(alerts, 150.0, severity=3)
    assert late.updated_at == 200.0
    assert late.severity == 3


def test_alert_acknowledged_stays_acknowledged_when_raised_again(
    alerts: SqlAlertStore,
) -> None:
    alert = _raise(alerts, 100.0)
    assert alerts.acknowledge(alert.id, actor="ana").status == "acknowledged"
    again = _raise(alerts, 200.0, severity=5)
    assert (again.id, again.status, again.severity) == (alert.id, "acknowledged", 5)


def test_alert_clear_resolves_and_next_raise_opens_a_new_one(alerts: SqlAlertStore) -> None:
    first = _raise(alerts, 100.0)
    cleared = alerts.clear(device_id="ACME-001", cause="seat_leak", t=300.0)
    assert cleared is not None
    assert (cleared.id, cleared.status, cleared.resolved_at) == (first.id, "resolved", 300.0)
    assert alerts.clear(device_id="ACME-001", cause="seat_leak", t=301.0) is None
    second = _raise(alerts, 400.0)
    assert second.id != first.id
    assert second.status == "open"
    assert second.opened_at == 400.0
    assert alerts.get(first.id).status == "resolved"


def test_alert_clear_touches_only_its_cause(alerts: SqlAlertStore) -> None:
    _raise(alerts, 100.0)
    other = _raise(alerts, 100.0, cause="actuation_wear")
    alerts.clear(device_id="ACME-001", cause="seat_leak", t=200.0)
    assert alerts.get(other.id).status == "open"


def test_alert_list_newest_first_with_filters(alerts: SqlAlertStore) -> None:
    a1 = _raise(alerts, 100.0, device_id="ACME-001")
    a2 = _raise(alerts, 110.0, device_id="ACME-002")
    a3 = _raise(alerts, 120.0, device_id="ACME-001", cause="actuation_wear")
    alerts.resolve(a2.id, actor="ana")
    assert [a.id for a in alerts.list()] == [a3.id, a2.id, a1.id]
    assert [a.id for a in alerts.list(status="open")] == [a3.id, a1.id]
    assert [a.id for a in alerts.list(device_id="ACME-001")] == [a3.id, a1.id]
    assert [a.id for a in alerts.list(status="resolved", device_id="ACME-002")] == [a2.id]
    assert [a.id for a in alerts.list(limit=1, offset=1)] == [a2.id]


def test_alert_list_by_a_nul_device_id_is_empty(alerts: SqlAlertStore) -> None:
    _raise(alerts, 100.0)
    assert alerts.list(device_id="ACME-001\x00") == []


def test_alert_schema_refuses_a_second_unresolved_row(
    alerts: SqlAlertStore, db_engine: sa.Engine
) -> None:
    _raise(alerts, 100.0)
    row = {"device_id": "ACME-001", "cause": "seat_leak", "category": "failure"}
    row |= {"severity": 3, "summary": "s", "opened_at": 1.0, "updated_at": 1.0}
    insert = tables.alerts.insert()
    # written behind the store's back, the index itself refuses it
    with pytest.raises(Conflict), write(db_engine, conflict=("alert", "x")) as conn:
        conn.execute(insert, {**row, "status": "acknowledged"})
    # resolved history rows are not limited
    with write(db_engine) as conn:
        conn.execute(insert, {**row, "status": "resolved", "resolved_at": 2.0})
        conn.execute(insert, {**row, "status": "resolved", "resolved_at": 3.0})
    assert len(alerts.list(device_id="ACME-001")) == 3


def test_alert_one_open_per_cause_under_concurrent_writers(db_engine: sa.Engine) -> None:
    # two engines, as ingest and a second worker would have
    other = _second_engine(db_engine)
    stores = [SqlAlertStore(db_engine), SqlAlertStore(other)]
    barrier = threading.Barrier(4)
    ids: list[int] = []
    errors: list[BaseException] = []

    def hammer(store: SqlAlertStore, worker: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                ids.append(_raise(store, 100.0 + i, severity=1 + (i + worker) % 5).id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    # two threads per engine too, so pooled connections race each other as well
    threads = [threading.Thread(target=hammer, args=(stores[i % 2], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(ids) == 200
    assert len(set(ids)) == 1
    unresolved = [a for a in stores[0].list(limit=1000) if a.status != "resolved"]
    assert len(unresolved) == 1
    assert unresolved[0].updated_at == 149.0
    other.dispose()


# --- alert lifecycle: the same contract on SQLite, PostgreSQL and in memory --------------

T0 = 1_700_000_000.0
# the in-memory adapter runs the lifecycle contract too (its unused engine is SQLite)
ON_EACH_STORE = pytest.mark.parametrize(
    ("db_engine", "kind"),
    [("sqlite", "sql"), ("postgresql", "sql"), ("sqlite", "memory")],
    indirect=["db_engine"],
)


@pytest.fixture
def store(db_engine: sa.Engine, kind: str, clock: FakeClock) -> AlertStore:
    if kind == "memory":
        return MemoryAlertStore(clock=clock, renotify_after_s=3600)
    return SqlAlertStore(db_engine, clock=clock, renotify_after_s=3600)


def _trail(store: AlertStore, alert_id: int) -> list[tuple[object, ...]]:
    return [
        (e.action, e.actor, e.from_status, e.to_status, e.comment, e.assignee)
        for e in store.events(alert_id)
    ]


@ON_EACH_STORE
def test_alert_lifecycle_acknowledge_assign_resolve_in_the_trail(
    store: AlertStore, clock: FakeClock
) -> None:
    alert = _raise(store, 100.0)  # type: ignore[arg-type]
    clock.t = T0 + 60
    acked = store.acknowledge(alert.id, actor="ana", comment="on my way")
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == (
        "acknowledged",
        "ana",
        T0 + 60,
    )
    clock.t = T0 + 120
    assigned = store.assign(alert.id, actor="ana", assignee="bo")
    assert (assigned.status, assigned.assignee, assigned.updated_at) == (
        "acknowledged",
        "bo",
        T0 + 120,
    )
    clock.t = T0 + 900
    resolved = store.resolve(alert.id, actor="bo", note="seat replaced")
    assert (resolved.status, resolved.resolved_at, resolved.version) == ("resolved", T0 + 900, 4)
    assert store.get(alert.id) == resolved
    assert _trail(store, alert.id) == [
        ("raised", "detector", None, "open", "", None),
        ("acknowledged", "ana", "open", "acknowledged", "on my way", None),
        ("assigned", "ana", "acknowledged", "acknowledged", "", "bo"),
        ("resolved", "bo", "acknowledged", "resolved", "seat replaced", None),
    ]
    events = store.events(alert.id)
    assert [e.at for e in events] == [T0, T0 + 60, T0 + 120, T0 + 900]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert [e.id for e in store.events(alert.id, limit=2, offset=1)] == [
        events[1].id,
        events[2].id,
    ]


@ON_EACH_STORE
def test_alert_acts_repeated_change_nothing_and_never_reopen(store: AlertStore) -> None:
    alert = _raise(store, 100.0)  # type: ignore[arg-type]
    store.acknowledge(alert.id, actor="ana")
    assert store.acknowledge(alert.id, actor="bo").acknowledged_by == "ana"
    store.assign(alert.id, actor="ana", assignee="bo")
    store.assign(alert.id, actor="ana", assignee="bo")
    resolved = store.resolve(alert.id, actor="bo")
    assert store.resolve(alert.id, actor="cy") == resolved
    assert store.acknowledge(alert.id, actor="cy") == resolved
    assert store.assign(alert.id, actor="cy", assignee="dee") == resolved
    actions = [e.action for e in store.events(alert.id)]
    assert actions == ["raised", "acknowledged", "assigned", "resolved"]
    # an open alert can be resolved directly, and assigned without acknowledging
    other = _raise(store, 100.0, cause="actuation_wear")  # type: ignore[arg-type]
    assert store.assign(other.id, actor="ana", assignee="bo").status == "open"
    assert store.resolve(other.id, actor="ana").status == "resolved"
    assert _trail(store, other.id)[-1] == ("resolved", "ana", "open", "resolved", "", None)


@ON_EACH_STORE
def test_alert_detector_changes_are_in_the_trail(store: AlertStore) -> None:
    alert = _raise(store, 100.0)  # type: ignore[arg-type]
    _raise(store, 110.0, severity=3)  # type: ignore[arg-type]
    store.acknowledge(alert.id, actor="ana")
    _raise(store, 120.0, severity=4)  # type: ignore[arg-type]
    cleared = store.clear(device_id="ACME-001", cause="seat_leak", t=130.0)
    assert cleared is not None and cleared.version == 5
    assert _trail(store, alert.id) == [
        ("raised", "detector", None, "open", "", None),
        ("updated", "detector", "open", "open", "", None),
        ("acknowledged", "ana", "open", "acknowledged", "", None),
        ("updated", "detector", "acknowledged", "acknowledged", "", None),
        ("cleared", "detector", "acknowledged", "resolved", "", None),
    ]
    # re-open semantics: the next raise is a new alert with a trail of its own
    again = _raise(store, 140.0)  # type: ignore[arg-type]
    assert again.id != alert.id
    assert [e.action for e in store.events(again.id)] == ["raised"]


@ON_EACH_STORE
def test_alert_lifecycle_unknown_id_is_not_found(store: AlertStore) -> None:
    acts = [
        lambda: store.acknowledge(999, actor="ana"),
        lambda: store.assign(999, actor="ana", assignee="bo"),
        lambda: store.resolve(999, actor="ana"),
        lambda: store.events(999),
        lambda: store.get(999),
    ]
    for act in acts:
        with pytest.raises(NotFound):
            act()
    assert store.record_renotify(999, T0 + 10**6) is None


@ON_EACH_STORE
def test_alert_renotify_once_per_period_until_acknowledged(
    store: AlertStore, clock: FakeClock
) -> None:
    alert = _raise(store, 100.0)  # type: ignore[arg-type]  # announced at T0
    clock.t = T0 + 1800
    later = _raise(store, 100.0, cause="actuation_wear")  # type: ignore[arg-type]
    assert store.due_renotifications(T0 + 3599) == []
    assert [a.id for a in store.due_renotifications(T0 + 3600)] == [alert.id]
    assert renotify_due(store, T0 + 3600) == 1
    assert store.record_renotify(alert.id, T0 + 3600) is None  # recorded once
    assert renotify_due(store, T0 + 5399) == 0
    assert renotify_due(store, T0 + 5400) == 1  # the later alert, one period after its raise
    assert renotify_due(store, T0 + 7199) == 0
    assert [a.id for a in store.due_renotifications(T0 + 7200)] == [alert.id]
    store.acknowledge(alert.id, actor="ana")
    assert store.due_renotifications(T0 + 7200) == []
    renotifies = [e for e in store.events(alert.id) if e.action == "renotify"]
    assert [(e.at, e.actor, e.from_status, e.to_status) for e in renotifies] == [
        (T0 + 3600, "system", "open", "open")
    ]
    # a re-raise (the detector's update) does not restart the period
    _raise(store, 200.0, cause="actuation_wear", severity=5)  # type: ignore[arg-type]
    assert [a.id for a in store.due_renotifications(T0 + 9000)] == [later.id]


@pytest.mark.parametrize("kind", ["sql", "memory"])
def test_alert_renotify_zero_means_never(db_engine: sa.Engine, kind: str) -> None:
    store: AlertStore = (
        MemoryAlertStore(renotify_after_s=0)
        if kind == "memory"
        else SqlAlertStore(db_engine, renotify_after_s=0)
    )
    alert = _raise(store, 100.0)  # type: ignore[arg-type]
    assert store.due_renotifications(T0 * 10) == []
    assert store.record_renotify(alert.id, T0 * 10) is None
    with pytest.raises(ValueError):
        SqlAlertStore(db_engine, renotify_after_s=-1)


@ON_EACH_STORE
def test_alert_listener_sees_every_change(store: AlertStore) -> None:
    seen: list[tuple[str, int, str]] = []

    def listener(conn: sa.Connection | None, change: AlertChange) -> None:
        assert (conn is None) == isinstance(store, MemoryAlertStore)
        assert change.alert.id == change.event.alert_id
        seen.append((change.action, change.alert.version, change.alert.status))

    store.on_change(listener)
    alert = _raise(store, 100.0)  # type: ignore[arg-type]
    _raise(store, 110.0, severity=3)  # type: ignore[arg-type]
    renotify_due(store, T0 + 3600)
    store.acknowledge(alert.id, actor="ana")
    store.assign(alert.id, actor="ana", assignee="bo")
    store.resolve(alert.id, actor="bo")
    second = _raise(store, 120.0)  # type: ignore[arg-type]
    store.clear(device_id="ACME-001", cause="seat_leak", t=130.0)
    store.acknowledge(alert.id, actor="ana")  # no change, no call
    assert seen == [
        ("raised", 1, "open"),
        ("updated", 2, "open"),
        ("renotify", 2, "open"),
        ("acknowledged", 3, "acknowledged"),
        ("assigned", 4, "acknowledged"),
        ("resolved", 5, "resolved"),
        ("raised", 1, "open"),
        ("cleared", 2, "resolved"),
    ]
    assert second.id != alert.id


@ON_EACH_STORE
def test_alert_listener_that_raises_rolls_the_change_back(store: AlertStore) -> None:
    alert = _raise(store, 100.0)  # type: ignore[arg-type]
    failing = {"on": True}

    def listener(_conn: sa.Connection | None, _change: AlertChange) -> None:
        if failing["on"]:
            raise RuntimeError("outbox refused")

    store.on_change(listener)
    acts = [
        lambda: _raise(store, 100.0, cause="actuation_wear"),  # a new alert
        lambda: _raise(store, 110.0, severity=5),  # an update
        lambda: store.acknowledge(alert.id, actor="ana"),
        lambda: store.assign(alert.id, actor="ana", assignee="bo"),
        lambda: store.resolve(alert.id, actor="ana"),
        lambda: store.record_renotify(alert.id, T0 + 3600),
        lambda: store.clear(device_id="ACME-001", cause="seat_leak", t=200.0),
    ]
    for act in acts:
        with pytest.raises(RuntimeError, match="outbox refused"):
            act()
    assert store.list() == [alert]
    assert [e.action for e in store.events(alert.id)] == ["raised"]
    assert [a.id for a in store.due_renotifications(T0 + 3600)] == [alert.id]
    failing["on"] = False
    # nothing was half-done: the same acts now go through
    assert store.acknowledge(alert.id, actor="ana").status == "acknowledged"
    new = _raise(store, 100.0, cause="actuation_wear")  # type: ignore[arg-type]
    assert [e.action for e in store.events(new.id)] == ["raised"]


def test_alert_listener_rows_commit_and_roll_back_with_the_change(db_engine: sa.Engine) -> None:
    probe_metadata = sa.MetaData()
    outbox = sa.Table(
        "outbox_probe",
        probe_metadata,
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
    )
    probe_metadata.create_all(db_engine)
    try:
        store = SqlAlertStore(db_engine)
        refuse: list[str] = []

        def write_outbox(conn: sa.Connection | None, change: AlertChange) -> None:
            assert conn is not None
            conn.execute(outbox.insert().values(alert_id=change.alert.id, action=change.action))

        def refuse_some(_conn: sa.Connection | None, change: AlertChange) -> None:
            if change.action in refuse:
                raise RuntimeError("refused after the outbox row was written")

        store.on_change(write_outbox)
        store.on_change(refuse_some)
        alert = _raise(store, 100.0)  # type: ignore[arg-type]
        refuse.append("acknowledged")
        with pytest.raises(RuntimeError):
            store.acknowledge(alert.id, actor="ana")
        store.resolve(alert.id, actor="ana")
        with read(db_engine) as conn:
            rows = conn.execute(sa.select(outbox.c.alert_id, outbox.c.action)).all()
        assert [tuple(r) for r in rows] == [(alert.id, "raised"), (alert.id, "resolved")]
        assert store.get(alert.id).acknowledged_by is None
    finally:
        probe_metadata.drop_all(db_engine)


def test_alert_renotify_by_two_processes_at_once_records_one(db_engine: sa.Engine) -> None:
    other = _second_engine(db_engine)
    clock = FakeClock(T0)
    stores = [SqlAlertStore(e, clock=clock, renotify_after_s=60) for e in (db_engine, other)]
    alert = _raise(stores[0], 100.0)  # type: ignore[arg-type]
    barrier = threading.Barrier(2)
    done: list[int] = []

    def sweep(store: SqlAlertStore) -> None:
        barrier.wait()
        done.append(renotify_due(store, T0 + 60))

    threads = [threading.Thread(target=sweep, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(done) == [0, 1]
    assert [e.action for e in stores[0].events(alert.id)] == ["raised", "renotify"]
    other.dispose()


# --- dead letters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v": 9, "seq": 1}',
        bytes(range(256)),  # every byte value, NULs included
        b"\xa2\x00\xff\xfe",  # CBOR-ish, invalid UTF-8
        b"",
        "caf\u00e9 \u2603".encode(),
    ],
)
def test_dead_letter_payload_round_trips_byte_for_byte(
    dead_letters: SqlDeadLetterStore, payload: bytes
) -> None:
    new_id = dead_letters.add(
        topic="sealscope/v1/dev/ACME-001/telemetry",
        payload=payload,
        code="malformed",
        reason="not valid JSON",
        device_id="ACME-001",
    )
    (letter,) = dead_letters.list()
    assert letter.id == new_id
    assert type(letter.payload) is bytes
    assert letter.payload == payload


def test_dead_letter_stores_bytearray_as_bytes(
    dead_letters: SqlDeadLetterStore, db_engine: sa.Engine
) -> None:
    dead_letters.add(
        topic="t", payload=bytearray(b"\x00ab"), code="malformed", reason="r", device_id=None
    )
    type_of = "typeof(payload)" if db_engine.dialect.name == "sqlite" else "pg_typeof(payload)"
    with read(db_engine) as conn:
        assert conn.scalar(sa.text(f"SELECT {type_of} FROM dead_letters")) in ("blob", "bytea")
    assert dead_letters.list()[0].payload == b"\x00ab"


def test_dead_letter_nul_in_text_fields_is_kept_replaced(dead_letters: SqlDeadLetterStore) -> None:
    dead_letters.add(
        topic="a\x00b", payload=b"x", code="malformed", reason="r\x00", device_id="D\x00"
    )
    (letter,) = dead_letters.list(device_id="D\x00")
    assert (letter.topic, letter.reason, letter.device_id) == ("a\ufffdb", "r\ufffd", "D\ufffd")
    assert dead_letters.count(device_id="D\x00") == 1


def test_dead_letter_list_newest_first_filter_and_count(
    dead_letters: SqlDeadLetterStore, clock: FakeClock
) -> None:
    for i, device_id in enumerate(["ACME-001", None, "ACME-002", "ACME-001"]):
        clock.t = 1000.0 + i
        dead_letters.add(
            topic=f"topic/{i}",
            payload=b"x",
            code="unknown_device",
            reason=f"reason {i}",
            device_id=device_id,
        )
    assert [d.topic for d in dead_letters.list()] == ["topic/3", "topic/2", "topic/1", "topic/0"]
    assert [d.received_at for d in dead_letters.list(limit=2)] == [1003.0, 1002.0]
    assert [d.topic for d in dead_letters.list(device_id="ACME-001")] == ["topic/3", "topic/0"]
    assert [d.topic for d in dead_letters.list(limit=1, offset=2)] == ["topic/1"]
    assert dead_letters.count() == 4
    assert dead_letters.count(device_id="ACME-001") == 2


def test_dead_letter_keeps_a_prefix_of_a_huge_payload_with_its_size_and_digest(
    dead_letters: SqlDeadLetterStore,
) -> None:
    payload = bytes(range(256)) * 4000  # 1,024,000 bytes
    dead_letters.add(
        topic="t", payload=payload, code="too_large", reason="r" * 5000, device_id=None
    )
    (letter,) = dead_letters.list()
    assert letter.payload == payload[:4096]
    assert letter.payload_bytes == len(payload)
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert len(letter.reason) == 1000


def test_dead_letter_once_per_scope_keeps_a_repeat_once(
    dead_letters: SqlDeadLetterStore,
) -> None:
    def add(topic: str, payload: bytes, once_per: str | None) -> int | None:
        return dead_letters.add(
            topic=topic,
            payload=payload,
            code="malformed",
            reason="r",
            device_id=None,
            once_per=once_per,
        )

    first = add("dev/a/state", b"bad", "retained")
    assert first is not None
    assert add("dev/a/state", b"bad", "retained") is None  # redelivered: kept once
    assert add("dev/b/state", b"bad", "retained") is not None  # another topic
    assert add("dev/a/state", b"worse", "retained") is not None  # other content
    assert add("dev/a/state", b"bad", "spool:1:40") is not None  # other scope
    assert add("dev/a/state", b"bad", None) is not None  # no scope: always kept
    assert add("dev/a/state", b"bad", None) is not None
    assert dead_letters.count() == 6


def test_dead_letter_retention_prunes_by_count_and_age_on_insert(
    db_engine: sa.Engine, clock: FakeClock
) -> None:
    store = SqlDeadLetterStore(db_engine, clock=clock, max_count=5, max_age_s=100.0)
    try:
        for i in range(8):
            clock.t += 1
            store.add(topic=f"topic/{i}", payload=b"x", code="c", reason="r", device_id=None)
        assert [d.topic for d in store.list()] == [f"topic/{i}" for i in range(7, 2, -1)]
        clock.t += 98.5  # topic/3..5 are over 100 s old now; 6 and 7 are not
        store.add(topic="topic/8", payload=b"x", code="c", reason="r", device_id=None)
        assert [d.topic for d in store.list()] == ["topic/8", "topic/7", "topic/6"]
    finally:
        store.close()
