"""The SQLite registry, alert and dead-letter stores, on a real database file."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealscope.alerts import SqliteAlertStore
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.errors import Conflict, NotFound, StoreUnavailable
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.sqlitedb import Database


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
def registry(db_path: Path, clock: FakeClock) -> Iterator[SqliteDeviceRegistry]:
    reg = SqliteDeviceRegistry(db_path, clock=clock)
    yield reg
    reg.close()


@pytest.fixture
def alerts(db_path: Path, clock: FakeClock) -> Iterator[SqliteAlertStore]:
    store = SqliteAlertStore(db_path, clock=clock)
    yield store
    store.close()


@pytest.fixture
def dead_letters(db_path: Path, clock: FakeClock) -> Iterator[SqliteDeadLetterStore]:
    store = SqliteDeadLetterStore(db_path, clock=clock)
    yield store
    store.close()


def _device(device_id: str, **kw: object) -> Device:
    fields: dict[str, object] = {"kind": "valve", "manufacturer": "acme", "model": "BV-50"}
    fields.update(kw)
    return Device(device_id=device_id, **fields)  # type: ignore[arg-type]


def _raise(store: SqliteAlertStore, t: float, **kw: object) -> object:
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


# --- shared database -------------------------------------------------------------------


def test_database_wal_pragmas_and_schema_versions(db_path: Path) -> None:
    for store in (
        SqliteDeviceRegistry(db_path),
        SqliteAlertStore(db_path),
        SqliteDeadLetterStore(db_path),
    ):
        store.close()
    db = Database(db_path)
    with db.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"devices", "alerts", "dead_letters", "schema_version"} <= tables
    assert [db.schema_version(c) for c in ("registry", "alerts", "dead_letters")] == [1, 1, 2]
    db.close()


def test_database_migrate_applies_only_new_steps(db_path: Path) -> None:
    db = Database(db_path)
    assert db.migrate("demo", [["CREATE TABLE demo (a INTEGER)"]]) == 1
    # running the same step again would fail (no IF NOT EXISTS): it must be skipped
    assert db.migrate("demo", [["CREATE TABLE demo (a INTEGER)"], ["ALTER TABLE demo ADD b"]]) == 2
    with db.read() as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(demo)")]
    assert columns == ["a", "b"]
    db.close()


def test_database_locked_past_timeout_is_store_unavailable(db_path: Path) -> None:
    db = Database(db_path, busy_timeout_ms=50)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable), db.write() as conn:
            conn.execute("CREATE TABLE t (a)")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with db.write() as conn:  # usable again once the lock is gone
        conn.execute("CREATE TABLE t (a)")
    db.close()


def test_database_failed_migration_rolls_back(db_path: Path) -> None:
    db = Database(db_path)
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        db.migrate("demo", [["CREATE TABLE demo (a)", "CREATE TABLE demo (a)"]])
    assert db.schema_version("demo") == 0
    with db.read() as conn:
        assert (
            conn.execute("SELECT count(*) FROM sqlite_master WHERE name='demo'").fetchone()[0] == 0
        )
    db.close()


# --- registry --------------------------------------------------------------------------


def test_registry_add_sets_created_at_and_get_round_trips(
    registry: SqliteDeviceRegistry, clock: FakeClock
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


def test_registry_add_twice_raises_conflict(registry: SqliteDeviceRegistry) -> None:
    registry.add(_device("ACME-001"))
    with pytest.raises(Conflict) as info:
        registry.add(_device("ACME-001", model="other"))
    assert (info.value.kind, info.value.key) == ("device", "ACME-001")
    assert registry.get("ACME-001").model == "BV-50"


def test_registry_get_unknown_raises_not_found(registry: SqliteDeviceRegistry) -> None:
    with pytest.raises(NotFound) as info:
        registry.get("NOPE-1")
    assert info.value.key == "NOPE-1"


def test_registry_list_filters_orders_and_pages(registry: SqliteDeviceRegistry) -> None:
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
    registry: SqliteDeviceRegistry, clock: FakeClock
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


def test_registry_upsert_many_is_all_or_nothing(registry: SqliteDeviceRegistry) -> None:
    bad = _device("ACME-002", kind="boiler")  # the schema's CHECK refuses it
    with pytest.raises(ValueError, match="#1"):
        registry.upsert_many([_device("ACME-001"), bad, _device("ACME-003")])
    assert registry.list() == []


def test_registry_survives_reopen(db_path: Path) -> None:
    reg = SqliteDeviceRegistry(db_path)
    reg.add(_device("ACME-001"))
    reg.close()
    reg = SqliteDeviceRegistry(db_path)
    assert reg.get("ACME-001").manufacturer == "acme"
    reg.close()


# --- alerts ----------------------------------------------------------------------------


def test_alert_raise_opens_then_updates_the_same_alert(alerts: SqliteAlertStore) -> None:
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


def test_alert_late_verdict_does_not_move_updated_at_back(alerts: SqliteAlertStore) -> None:
    _raise(alerts, 200.0)
    late = _raise(alerts, 150.0, severity=3)
    assert late.updated_at == 200.0
    assert late.severity == 3


def test_alert_acknowledged_stays_acknowledged_when_raised_again(
    alerts: SqliteAlertStore,
) -> None:
    alert = _raise(alerts, 100.0)
    assert alerts.set_status(alert.id, "acknowledged").status == "acknowledged"
    again = _raise(alerts, 200.0, severity=5)
    assert (again.id, again.status, again.severity) == (alert.id, "acknowledged", 5)


def test_alert_clear_resolves_and_next_raise_opens_a_new_one(alerts: SqliteAlertStore) -> None:
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


def test_alert_clear_touches_only_its_cause(alerts: SqliteAlertStore) -> None:
    _raise(alerts, 100.0)
    other = _raise(alerts, 100.0, cause="actuation_wear")
    alerts.clear(device_id="ACME-001", cause="seat_leak", t=200.0)
    assert alerts.get(other.id).status == "open"


def test_alert_set_status_by_hand(alerts: SqliteAlertStore, clock: FakeClock) -> None:
    alert = _raise(alerts, 100.0)
    clock.t = 1_700_000_500.0
    acked = alerts.set_status(alert.id, "acknowledged")
    assert (acked.status, acked.updated_at, acked.resolved_at) == ("acknowledged", clock.t, None)
    resolved = alerts.set_status(alert.id, "resolved")
    assert (resolved.status, resolved.resolved_at) == ("resolved", clock.t)
    # never reopens: acknowledging a resolved alert leaves it resolved
    assert alerts.set_status(alert.id, "acknowledged").status == "resolved"
    with pytest.raises(ValueError):
        alerts.set_status(alert.id, "open")
    with pytest.raises(NotFound):
        alerts.set_status(999, "resolved")
    with pytest.raises(NotFound):
        alerts.get(999)


def test_alert_list_newest_first_with_filters(alerts: SqliteAlertStore) -> None:
    a1 = _raise(alerts, 100.0, device_id="ACME-001")
    a2 = _raise(alerts, 110.0, device_id="ACME-002")
    a3 = _raise(alerts, 120.0, device_id="ACME-001", cause="actuation_wear")
    alerts.set_status(a2.id, "resolved")
    assert [a.id for a in alerts.list()] == [a3.id, a2.id, a1.id]
    assert [a.id for a in alerts.list(status="open")] == [a3.id, a1.id]
    assert [a.id for a in alerts.list(device_id="ACME-001")] == [a3.id, a1.id]
    assert [a.id for a in alerts.list(status="resolved", device_id="ACME-002")] == [a2.id]
    assert [a.id for a in alerts.list(limit=1, offset=1)] == [a2.id]


def test_alert_schema_refuses_a_second_unresolved_row(
    alerts: SqliteAlertStore, db_path: Path
) -> None:
    _raise(alerts, 100.0)
    conn = sqlite3.connect(db_path)
    insert = (
        "INSERT INTO alerts (device_id, cause, category, severity, status, summary,"
        " opened_at, updated_at, resolved_at) VALUES (?, ?, 'failure', 3, ?, 's', 1, 1, ?)"
    )
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(insert, ("ACME-001", "seat_leak", "acknowledged", None))
    # resolved history rows are not limited
    conn.execute(insert, ("ACME-001", "seat_leak", "resolved", 2.0))
    conn.execute(insert, ("ACME-001", "seat_leak", "resolved", 3.0))
    conn.commit()
    conn.close()


def test_alert_one_open_per_cause_under_concurrent_writers(db_path: Path) -> None:
    # two store instances = two connections, as ingest and a second worker would have
    stores = [SqliteAlertStore(db_path), SqliteAlertStore(db_path)]
    barrier = threading.Barrier(4)
    ids: list[int] = []
    errors: list[BaseException] = []

    def hammer(store: SqliteAlertStore, worker: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                ids.append(_raise(store, 100.0 + i, severity=1 + (i + worker) % 5).id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    # two threads per instance too, so the per-connection lock is exercised as well
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
    for store in stores:
        store.close()


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
    dead_letters: SqliteDeadLetterStore, payload: bytes
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


def test_dead_letter_stores_bytearray_as_blob(
    dead_letters: SqliteDeadLetterStore, db_path: Path
) -> None:
    dead_letters.add(
        topic="t", payload=bytearray(b"\x00ab"), code="malformed", reason="r", device_id=None
    )
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT typeof(payload) FROM dead_letters").fetchone()[0] == "blob"
    conn.close()


def test_dead_letter_list_newest_first_filter_and_count(
    dead_letters: SqliteDeadLetterStore, clock: FakeClock
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
    dead_letters: SqliteDeadLetterStore,
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
    dead_letters: SqliteDeadLetterStore,
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
    db_path: Path, clock: FakeClock
) -> None:
    store = SqliteDeadLetterStore(db_path, clock=clock, max_count=5, max_age_s=100.0)
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
