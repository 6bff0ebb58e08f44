"""The device registry: what each device is, so ingest can tag its telemetry.

Port: ``DeviceRegistry``. Adapter: ``SqlDeviceRegistry`` on the state database (SQLite,
the embedded default, or PostgreSQL); ``SqliteDeviceRegistry`` opens one on a file.
"""

from __future__ import annotations

import builtins  # `list` is a method name here
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.db import insert_for, open_migrated, read, sqlite_url, tables, write
from sealscope.errors import NotFound
from sealscope.labels import check_label

__all__ = [
    "AssetKind",
    "Device",
    "DeviceRegistry",
    "DeviceSummary",
    "LeakageClass",
    "SqlDeviceRegistry",
    "SqliteDeviceRegistry",
]

AssetKind = Literal["valve", "pump"]
# ISO 5208 seat leakage rate classes
LeakageClass = Literal["", "A", "AA", "B", "C", "CC", "D", "E", "EE", "F", "G"]


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: AssetKind
    manufacturer: str
    model: str
    batch: str = ""
    site: str = ""
    region: str = ""
    dn: int | None = None  # nominal size, mm
    pn: int | None = None  # pressure class, bar
    seat_material: str = ""
    leakage_class: LeakageClass = ""
    firmware: str = ""
    created_at: float = 0.0  # Unix s, set by the registry

    def __post_init__(self) -> None:
        # these become telemetry tags and page text: one rule, sealscope.labels
        for name, max_chars, required in _LABELS:
            check_label(name, getattr(self, name), max_chars=max_chars, required=required)

    @property
    def tags(self) -> tuple[tuple[str, str], ...]:
        """The tags ingest puts on every point of this device."""
        return (
            ("device_id", self.device_id),
            ("model", self.model),
            ("manufacturer", self.manufacturer),
            ("batch", self.batch),
            ("site", self.site),
            ("region", self.region),
        )


class DeviceSummary(NamedTuple):
    """The columns a fleet list shows, read without building (and re-checking) a ``Device``:
    a list of 10,000 costs one query and no per-row validation."""

    device_id: str
    kind: AssetKind
    manufacturer: str
    model: str
    site: str
    region: str

    @classmethod
    def of(cls, device: Device) -> DeviceSummary:
        return cls(*(getattr(device, f) for f in cls._fields))


# (field, max characters, required); the API also requires manufacturer and model, and
# checks the device id against its topic pattern
_LABELS: tuple[tuple[str, int, bool], ...] = (
    ("device_id", 64, True),
    ("manufacturer", 128, False),
    ("model", 128, False),
    ("batch", 128, False),
    ("site", 128, False),
    ("region", 128, False),
    ("seat_material", 64, False),
    ("firmware", 64, False),
)


class DeviceRegistry(Protocol):
    def add(self, device: Device) -> Device:
        """Register one device; raises Conflict if the id exists. Returns it with created_at."""
        ...

    def upsert_many(self, devices: Iterable[Device]) -> int:
        """Register or update many devices in one transaction (fleet provisioning)."""
        ...

    def get(self, device_id: str) -> Device:
        """Raises NotFound."""
        ...

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Device]:
        """Those of ``device_ids`` that are registered (a fleet file's lookup, in bulk)."""
        ...

    def list(
        self,
        *,
        manufacturer: str | None = None,
        site: str | None = None,
        limit: int = 100,
        offset: int = 0,
        where: sa.ColumnElement[bool] | None = None,
    ) -> list[Device]:
        """In device_id order. ``where``: a further filter over ``tables.devices.c`` (a
        caller's ``Scope.device_clause``), so a scoped page is one indexed query."""
        ...

    def summaries(
        self,
        *,
        site: str | None = None,
        kind: str | None = None,
        where: sa.ColumnElement[bool] | None = None,
    ) -> builtins.list[DeviceSummary]:
        """Every matching device's ``DeviceSummary``, in device_id order (no paging)."""
        ...

    def close(self) -> None: ...


_DEVICES = tables.devices
_COLUMNS = tuple(f.name for f in fields(Device))
# Provisioning the same fleet again updates what it describes but keeps the first created_at.
_IN_CHUNK = 500  # ids per IN (...) lookup, well under SQLite's bound on parameters
_UPDATED_BY_UPSERT = tuple(c for c in _COLUMNS if c not in ("device_id", "created_at"))


def _row_to_device(row: Mapping[Any, Any]) -> Device:
    return Device(**{c: row[c] for c in _COLUMNS})


def _device_values(device: Device) -> dict[str, object]:
    return {c: getattr(device, c) for c in _COLUMNS}


def _storable(key: str) -> bool:
    # PostgreSQL text cannot hold NUL; no stored id contains one, so nothing matches it
    return "\x00" not in key


class SqlDeviceRegistry:
    """``DeviceRegistry`` on the state database (SQLite or PostgreSQL), shared with the
    alert and dead-letter stores. ``engine`` must be migrated (``sealscope.db.migrate``)."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], float] = time.time, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._owns_engine = owns_engine
        insert = insert_for(engine)(_DEVICES)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[_DEVICES.c.device_id],
            set_={c: insert.excluded[c] for c in _UPDATED_BY_UPSERT},
        )

    def add(self, device: Device) -> Device:
        device = replace(device, created_at=self._clock())
        try:
            with write(self._engine, conflict=("device", device.device_id)) as conn:
                conn.execute(_DEVICES.insert(), _device_values(device))
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            raise ValueError(f"device {device.device_id!r} violates {exc.orig}") from exc
        return device

    def upsert_many(self, devices: Iterable[Device]) -> int:
        now = self._clock()
        rows = [_device_values(replace(device, created_at=now)) for device in devices]
        if not rows:
            return 0
        try:
            # one executemany: psycopg pipelines it, SQLite loops inside one statement
            with write(self._engine) as conn:
                conn.execute(self._upsert, rows)
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            # the whole batch rolled back: a fleet file is provisioned entirely or not at all
            bad = self._first_bad(rows)
            raise ValueError(f"device #{bad} of the batch violates {exc.orig}") from exc
        return len(rows)

    def _first_bad(self, rows: list[dict[str, object]]) -> int:
        """Which row refused the batch: replayed one by one, then rolled back."""
        with read(self._engine) as conn:
            for n, row in enumerate(rows):
                try:
                    with conn.begin_nested():
                        conn.execute(self._upsert, row)
                except (sa.exc.IntegrityError, sa.exc.DataError):
                    return n
        return -1  # it collided with another writer's row, gone by now

    def get(self, device_id: str) -> Device:
        row = None
        if _storable(device_id):
            with read(self._engine) as conn:
                row = (
                    conn.execute(sa.select(_DEVICES).where(_DEVICES.c.device_id == device_id))
                    .mappings()
                    .first()
                )
        if row is None:
            raise NotFound("device", device_id)
        return _row_to_device(row)

    def get_many(self, device_ids: Sequence[str]) -> dict[str, Device]:
        ids = [d for d in device_ids if _storable(d)]
        found: dict[str, Device] = {}
        with read(self._engine) as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                query = sa.select(_DEVICES).where(_DEVICES.c.device_id.in_(ids[i : i + _IN_CHUNK]))
                for row in conn.execute(query).mappings():
                    found[row["device_id"]] = _row_to_device(row)
        return found

    def list(
        self,
        *,
        manufacturer: str | None = None,
        site: str | None = None,
        limit: int = 100,
        offset: int = 0,
        where: sa.ColumnElement[bool] | None = None,
    ) -> list[Device]:
        query = sa.select(_DEVICES)
        if where is not None:
            query = query.where(where)
        for column, value in ((_DEVICES.c.manufacturer, manufacturer), (_DEVICES.c.site, site)):
            if value is not None:
                if not _storable(value):
                    return []
                query = query.where(column == value)
        query = query.order_by(_DEVICES.c.device_id).limit(limit).offset(offset)
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [_row_to_device(r) for r in rows]

    def summaries(
        self,
        *,
        site: str | None = None,
        kind: str | None = None,
        where: sa.ColumnElement[bool] | None = None,
    ) -> builtins.list[DeviceSummary]:
        query = sa.select(*(_DEVICES.c[f] for f in DeviceSummary._fields))
        if where is not None:
            query = query.where(where)
        for column, value in ((_DEVICES.c.site, site), (_DEVICES.c.kind, kind)):
            if value is not None:
                if not _storable(value):
                    return []
                query = query.where(column == value)
        with read(self._engine) as conn:
            rows = conn.execute(query.order_by(_DEVICES.c.device_id)).all()
        return [DeviceSummary(*row) for row in rows]

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()


class SqliteDeviceRegistry(SqlDeviceRegistry):
    """``SqlDeviceRegistry`` on a SQLite file of its own engine, migrated on opening."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(open_migrated(sqlite_url(path)), clock=clock, owns_engine=True)
