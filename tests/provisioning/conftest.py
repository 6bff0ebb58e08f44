"""An API app on a fresh SQLite state in tmp_path, and fleet files to upload."""

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


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, telemetry_store=MemoryTelemetryStore())
    with TestClient(app) as c:
        yield c
