"""An API app on a fresh SQLite state in tmp_path, callers with keys, and fleet files.

``client`` calls as the manufacturer ACME; ``bearer(keys[role])`` makes the headers of
another caller: ``admin``, ``acme``, ``other`` (manufacturer OTHER), ``operator`` (sites
north-plant and south-plant), ``rival`` (an operator with site elsewhere), ``monitor``."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # see tests/api/conftest.py: Starlette's TestClient warns when it falls back to httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from composition.api import create_app
from sealscope.accounts import Authenticator, Site, SqliteAccountStore
from sealscope.config import Settings
from sealscope.storage.memory import MemoryTelemetryStore

UPLOAD = "/api/v1/provisioning/devices"
CLAIM = "/api/v1/devices/claim"
HEADER = "serial,kind,model,dn,pn,seat_material,leakage_class,lot,firmware,region"


def fleet_rows(n: int, *, prefix: str = "ACME", start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "serial": f"{prefix}-BV50-{i:06d}",
            "kind": "valve" if i % 3 else "pump",
            "model": "BV-50" if i % 3 else "CP-80",
            "dn": 50,
            "pn": 16,
            "seat_material": "PTFE",
            "leakage_class": "B",
            "lot": f"L{i // 1000:03d}",
            "firmware": "1.4.2",
            "region": "zj-wenzhou" if i % 2 else "",
        }
        for i in range(start, start + n)
    ]


def fleet_csv(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER.split(","), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def bundle_rows(text: str) -> dict[str, dict[str, str]]:
    return {r["device_id"]: r for r in csv.DictReader(io.StringIO(text))}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_allowed_hosts=["testserver"])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_keys(settings: Settings) -> dict[str, str]:
    store = SqliteAccountStore(settings.state_db)
    try:
        auth = Authenticator(store)
        orgs = {
            "admin": store.create_org(name="platform", kind="admin"),
            "acme": store.create_org(name="Acme", kind="manufacturer", manufacturer_code="ACME"),
            "other": store.create_org(name="Other", kind="manufacturer", manufacturer_code="OTHER"),
            "operator": store.create_org(name="Water works", kind="operator"),
            "rival": store.create_org(name="Rival works", kind="operator"),
            "monitor": store.create_org(name="Monitor", kind="monitoring_point"),
        }
        for site in ("north-plant", "south-plant"):
            store.put_site(Site(site, orgs["operator"].id, "zj-wenzhou"))
        store.put_site(Site("elsewhere", orgs["rival"].id, "zj-taizhou"))
        return {role: auth.create_key(org.id, name="tests")[0] for role, org in orgs.items()}
    finally:
        store.close()


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    return make_keys(settings)


@pytest.fixture
def client(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(settings, telemetry_store=MemoryTelemetryStore())
    with TestClient(app, headers=bearer(keys["acme"])) as c:
        yield c
