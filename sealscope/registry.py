"""The device registry: what each device is, so ingest can tag its telemetry.

Port: ``DeviceRegistry``. Adapter: ``SqliteDeviceRegistry`` (embedded default).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal, Protocol

from sealscope.errors import Conflict, NotFound
from sealscope.labels import check_label
from sealscope.sqlitedb import Database, Migration

__all__ = ["AssetKind", "Device", "DeviceRegistry", "LeakageClass", "SqliteDeviceRegistry"]

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

    def list(
        self,
        *,
        manufacturer: str | None = None,
        site: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Device]: ...

    def close(self) -> None: ...


_MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS devices (
            device_id     TEXT PRIMARY KEY,
            kind          TEXT NOT NULL CHECK (kind IN ('valve', 'pump')),
            manufacturer  TEXT NOT NULL,
            model         TEXT NOT NULL,
            batch         TEXT NOT NULL DEFAULT '',
            site          TEXT NOT NULL DEFAULT '',
            region        TEXT NOT NULL DEFAULT '',
            dn            INTEGER CHECK (dn > 0),
            pn            INTEGER CHECK (pn > 0),
            seat_material TEXT NOT NULL DEFAULT '',
            leakage_class TEXT NOT NULL DEFAULT '',
            firmware      TEXT NOT NULL DEFAULT '',
            created_at    REAL NOT NULL
        ) WITHOUT ROWID""",
        # the two filters the API and fleet views page through, in device_id order
        "CREATE INDEX IF NOT EXISTS devices_by_manufacturer ON devices (manufacturer, device_id)",
        "CREATE INDEX IF NOT EXISTS devices_by_site ON devices (site, device_id)",
    ),
)

_COLUMNS = tuple(f.name for f in fields(Device))
_INSERT = f"INSERT INTO devices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
# Provisioning the same fleet again updates what it describes but keeps the first created_at.
_UPSERT = (
    _INSERT
    + " ON CONFLICT (device_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("device_id", "created_at"))
)


def _row_to_device(row: sqlite3.Row) -> Device:
    return Device(**{c: row[c] for c in _COLUMNS})


def _device_values(device: Device) -> tuple[object, ...]:
    return tuple(getattr(device, c) for c in _COLUMNS)


class SqliteDeviceRegistry:
    """``DeviceRegistry`` on a SQLite file (may be shared with the alert and dead-letter stores)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(path)
        self._clock = clock
        self._db.migrate("registry", _MIGRATIONS)

    def add(self, device: Device) -> Device:
        device = replace(device, created_at=self._clock())
        try:
            with self._db.write() as conn:
                conn.execute(_INSERT, _device_values(device))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise Conflict("device", device.device_id) from exc
            raise ValueError(f"device {device.device_id!r} violates {exc}") from exc
        return device

    def upsert_many(self, devices: Iterable[Device]) -> int:
        now = self._clock()
        n = 0
        try:
            with self._db.write() as conn:
                for device in devices:
                    conn.execute(_UPSERT, _device_values(replace(device, created_at=now)))
                    n += 1
        except sqlite3.IntegrityError as exc:
            # the whole batch rolled back: a fleet file is provisioned entirely or not at all
            raise ValueError(f"device #{n} of the batch violates {exc}") from exc
        return n

    def get(self, device_id: str) -> Device:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        if row is None:
            raise NotFound("device", device_id)
        return _row_to_device(row)

    def list(
        self,
        *,
        manufacturer: str | None = None,
        site: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Device]:
        where, args = [], []
        if manufacturer is not None:
            where.append("manufacturer = ?")
            args.append(manufacturer)
        if site is not None:
            where.append("site = ?")
            args.append(site)
        sql = "SELECT * FROM devices"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY device_id LIMIT ? OFFSET ?"
        with self._db.read() as conn:
            rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return [_row_to_device(r) for r in rows]

    def close(self) -> None:
        self._db.close()
