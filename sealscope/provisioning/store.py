"""What provisioning remembers: each device's claim state, and each upload's per-row results.

Port: ``ProvisioningStore``. Adapter: ``SqlProvisioningStore`` on the state database
(SQLite or PostgreSQL; tables in ``sealscope.db.provisioning``, revision ``0004_provisioning``).

Secrets are never stored: a claim code only as its keyed hash (``ClaimCodes``), MQTT
passwords and CoAP keys not at all here (the broker and the gateway's key store keep
their own hashes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.db import insert_for, read, write
from sealscope.db.provisioning import (
    provisioned_devices,
    provisioning_upload_rows,
    provisioning_uploads,
)
from sealscope.errors import NotFound

__all__ = [
    "ProvisionedDevice",
    "ProvisioningStore",
    "RowStatus",
    "SqlProvisioningStore",
    "Upload",
    "UploadRow",
]

RowStatus = Literal["created", "updated", "unchanged", "rejected"]
_IN_CHUNK: Final = 500  # ids per IN (...) query, well under SQLite's variable limit


@dataclass(frozen=True, slots=True)
class ProvisionedDevice:
    """A device whose credentials and claim code were issued by provisioning."""

    device_id: str
    manufacturer: str
    claim_hash: bytes
    issued_at: float
    claimed_at: float | None = None
    claimed_site: str = ""
    claimed_by: str = ""

    @property
    def is_claimed(self) -> bool:
        return self.claimed_at is not None


@dataclass(frozen=True, slots=True)
class UploadRow:
    line: int
    device_id: str | None
    status: RowStatus
    reason: str = ""  # rejected rows: every fault, "field: why; ..."
    credentials_issued: bool = False


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    manufacturer: str
    created_at: float
    file_format: Literal["csv", "json"]
    mode: Literal["all_or_nothing", "good_rows_only"]
    rotate: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    credentials_issued: int


class ProvisioningStore(Protocol):
    def provisioned(self, device_ids: Sequence[str]) -> dict[str, ProvisionedDevice]:
        """The records of those of ``device_ids`` that have one."""
        ...

    def save_issued(self, records: Iterable[ProvisionedDevice]) -> None:
        """Insert or replace records (new claim hash, issue time) in one transaction."""
        ...

    def mark_claimed(
        self, device_id: str, *, claim_hash: bytes, site: str, claimed_by: str, now: float
    ) -> bool:
        """Claim if the stored hash still is ``claim_hash`` and no one claimed it yet."""
        ...

    def add_upload(self, upload: Upload, rows: Sequence[UploadRow]) -> Upload:
        """Record an upload and its rows; returns it with its id."""
        ...

    def get_upload(self, upload_id: int) -> Upload:
        """Raises NotFound."""
        ...

    def upload_rows(
        self, upload_id: int, *, status: RowStatus | None = None, limit: int, offset: int
    ) -> list[UploadRow]: ...

    def list_uploads(
        self, *, manufacturer: str | None = None, limit: int, offset: int
    ) -> list[Upload]:
        """Newest first; ``manufacturer``: only that manufacturer's."""
        ...

    def close(self) -> None: ...


_DEVICES = provisioned_devices
_UPLOADS = provisioning_uploads
_ROWS = provisioning_upload_rows
_DEVICE_FIELDS = tuple(f.name for f in fields(ProvisionedDevice))
_UPLOAD_FIELDS = tuple(f.name for f in fields(Upload))


def _device(row: Mapping[Any, Any]) -> ProvisionedDevice:
    return ProvisionedDevice(
        **{**{k: row[k] for k in _DEVICE_FIELDS}, "claim_hash": bytes(row["claim_hash"])}
    )


def _upload(row: Mapping[Any, Any]) -> Upload:
    return Upload(**{k: row[k] for k in _UPLOAD_FIELDS})


class SqlProvisioningStore:
    """``ProvisioningStore`` on the state database; ``engine`` must be migrated."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        insert = insert_for(engine)(_DEVICES)
        self._upsert = insert.on_conflict_do_update(
            index_elements=[_DEVICES.c.device_id],
            set_={c: insert.excluded[c] for c in _DEVICE_FIELDS if c != "device_id"},
        )

    def provisioned(self, device_ids: Sequence[str]) -> dict[str, ProvisionedDevice]:
        found: dict[str, ProvisionedDevice] = {}
        ids = [d for d in device_ids if "\x00" not in d]  # PostgreSQL text holds no NUL
        with read(self._engine) as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                query = sa.select(_DEVICES).where(_DEVICES.c.device_id.in_(ids[i : i + _IN_CHUNK]))
                for row in conn.execute(query).mappings():
                    found[row["device_id"]] = _device(row)
        return found

    def save_issued(self, records: Iterable[ProvisionedDevice]) -> None:
        rows = [{k: getattr(r, k) for k in _DEVICE_FIELDS} for r in records]
        if rows:
            with write(self._engine) as conn:
                conn.execute(self._upsert, rows)

    def mark_claimed(
        self, device_id: str, *, claim_hash: bytes, site: str, claimed_by: str, now: float
    ) -> bool:
        with write(self._engine) as conn:
            result = conn.execute(
                _DEVICES.update()
                .where(
                    _DEVICES.c.device_id == device_id,
                    _DEVICES.c.claim_hash == claim_hash,
                    _DEVICES.c.claimed_at.is_(None),
                )
                .values(claimed_at=now, claimed_site=site, claimed_by=claimed_by)
            )
            return result.rowcount == 1

    def add_upload(self, upload: Upload, rows: Sequence[UploadRow]) -> Upload:
        values = {k: getattr(upload, k) for k in _UPLOAD_FIELDS if k != "id"}
        with write(self._engine) as conn:
            upload_id = conn.execute(
                _UPLOADS.insert().values(values).returning(_UPLOADS.c.id)
            ).scalar_one()
            if rows:
                conn.execute(
                    _ROWS.insert(),
                    [
                        {
                            "upload_id": upload_id,
                            "line": r.line,
                            "device_id": r.device_id,
                            "status": r.status,
                            "reason": r.reason,
                            "credentials_issued": r.credentials_issued,
                        }
                        for r in rows
                    ],
                )
        return replace(upload, id=int(upload_id))

    def get_upload(self, upload_id: int) -> Upload:
        with read(self._engine) as conn:
            row = conn.execute(sa.select(_UPLOADS).where(_UPLOADS.c.id == upload_id)).mappings()
            found = row.first()
        if found is None:
            raise NotFound("upload", str(upload_id))
        return _upload(found)

    def upload_rows(
        self, upload_id: int, *, status: RowStatus | None = None, limit: int, offset: int
    ) -> list[UploadRow]:
        query = sa.select(
            _ROWS.c.line,
            _ROWS.c.device_id,
            _ROWS.c.status,
            _ROWS.c.reason,
            _ROWS.c.credentials_issued,
        ).where(_ROWS.c.upload_id == upload_id)
        if status is not None:
            query = query.where(_ROWS.c.status == status)
        query = query.order_by(_ROWS.c.line).limit(limit).offset(offset)
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [UploadRow(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def list_uploads(
        self, *, manufacturer: str | None = None, limit: int, offset: int
    ) -> list[Upload]:
        query = sa.select(_UPLOADS)
        if manufacturer is not None:
            if "\x00" in manufacturer:
                return []
            query = query.where(_UPLOADS.c.manufacturer == manufacturer)
        query = query.order_by(_UPLOADS.c.id.desc()).limit(limit).offset(offset)
        with read(self._engine) as conn:
            return [_upload(r) for r in conn.execute(query).mappings()]

    def close(self) -> None:
        """The engine belongs to the caller."""
