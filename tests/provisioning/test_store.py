"""The provisioning store's contract, on SQLite and PostgreSQL (``db_engine``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sealscope.errors import NotFound
from sealscope.provisioning import ProvisionedDevice, SqlProvisioningStore, Upload, UploadRow


def _upload(**overrides: object) -> Upload:
    fields: dict[str, object] = dict(
        id=0,
        manufacturer="ACME",
        created_at=1.5,
        file_format="csv",
        mode="good_rows_only",
        rotate=False,
        rows=3,
        created=1,
        updated=1,
        unchanged=0,
        rejected=1,
        credentials_issued=1,
    )
    fields.update(overrides)
    return Upload(**fields)  # type: ignore[arg-type]


def test_store_keeps_records_and_claims_once(db_engine: sa.Engine) -> None:
    store = SqlProvisioningStore(db_engine)
    store.save_issued(
        [ProvisionedDevice(f"ACME-{i}", "ACME", i.to_bytes(32, "big"), 10.0) for i in range(1200)]
    )  # past one IN (...) chunk
    found = store.provisioned([f"ACME-{i}" for i in range(0, 1300, 7)] + ["nul\x00id"])
    assert len(found) == len(range(0, 1200, 7))
    assert found["ACME-7"].claim_hash == (7).to_bytes(32, "big") and not found["ACME-7"].is_claimed

    wrong = store.mark_claimed("ACME-7", claim_hash=b"x" * 32, site="s", claimed_by="op", now=2)
    assert not wrong
    assert store.mark_claimed(
        "ACME-7", claim_hash=(7).to_bytes(32, "big"), site="s", claimed_by="op", now=20.0
    )
    assert not store.mark_claimed(
        "ACME-7", claim_hash=(7).to_bytes(32, "big"), site="t", claimed_by="op2", now=21.0
    )
    claimed = store.provisioned(["ACME-7"])["ACME-7"]
    assert (claimed.claimed_at, claimed.claimed_site, claimed.claimed_by) == (20.0, "s", "op")


def test_store_records_uploads_with_their_rows(db_engine: sa.Engine) -> None:
    store = SqlProvisioningStore(db_engine)
    rows = [
        UploadRow(2, "ACME-1", "created", credentials_issued=True),
        UploadRow(3, "ACME-2", "updated"),
        UploadRow(4, None, "rejected", "kind: must be valve or pump"),
    ]
    first = store.add_upload(_upload(), rows)
    second = store.add_upload(_upload(rotate=True), [])
    assert second.id > first.id > 0
    assert store.get_upload(first.id) == first
    assert store.get_upload(second.id).rotate is True
    assert store.upload_rows(first.id, limit=10, offset=0) == rows
    assert store.upload_rows(first.id, status="rejected", limit=10, offset=0) == rows[2:]
    assert store.upload_rows(first.id, limit=1, offset=1) == rows[1:2]
    with pytest.raises(NotFound):
        store.get_upload(second.id + 1)
