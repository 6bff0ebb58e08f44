"""An app on real SQLite state in tmp_path and the in-memory telemetry store.

``client`` calls as the platform admin (an API key in its default headers); ``anon`` is a
client on the same app with no credentials.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    # Starlette >= 1.x wants the httpx2 package for its TestClient and warns when it falls back
    # to httpx; the fallback works, and filterwarnings=error would otherwise stop collection.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from composition.api import create_app
from sealscope.accounts import Authenticator, SignInThrottle, SqliteAccountStore
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.registry import SqliteDeviceRegistry
from sealscope.storage.memory import MemoryTelemetryStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def registry(settings: Settings) -> Iterator[SqliteDeviceRegistry]:
    reg = SqliteDeviceRegistry(settings.state_db)
    yield reg
    reg.close()


@pytest.fixture
def alerts(settings: Settings) -> Iterator[SqliteAlertStore]:
    store = SqliteAlertStore(settings.state_db)
    yield store
    store.close()


@pytest.fixture
def dead_letters(settings: Settings) -> Iterator[SqliteDeadLetterStore]:
    store = SqliteDeadLetterStore(settings.state_db)
    yield store
    store.close()


@pytest.fixture
def telemetry() -> MemoryTelemetryStore:
    return MemoryTelemetryStore()


@pytest.fixture
def accounts(settings: Settings) -> Iterator[SqliteAccountStore]:
    store = SqliteAccountStore(settings.state_db)
    yield store
    store.close()


@pytest.fixture
def authenticator(accounts: SqliteAccountStore) -> Authenticator:
    return Authenticator(accounts, throttle=SignInThrottle(per_username=3, per_source=10))


@pytest.fixture
def admin_key(authenticator: Authenticator) -> str:
    org = authenticator.store.create_org(name="platform", kind="admin")
    key, _ = authenticator.create_key(org.id, name="tests")
    return key


@pytest.fixture
def app(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    telemetry: MemoryTelemetryStore,
    authenticator: Authenticator,
) -> Any:
    return create_app(
        settings,
        telemetry_store=telemetry,
        registry=registry,
        alerts=alerts,
        dead_letters=dead_letters,
        authenticator=authenticator,
    )


@pytest.fixture
def client(app: Any, admin_key: str) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as c:
        yield c


@pytest.fixture
def anon(client: TestClient, app: Any) -> TestClient:
    """No credentials; the admin ``client`` keeps the lifespan (the stores) open."""
    return TestClient(app)


def _assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert body["message"].endswith(".")
    return body


@pytest.fixture
def assert_error() -> Callable[[httpx.Response, int, str], dict[str, Any]]:
    """Checks the one error shape: {"error": code, "message": sentence}; returns the body."""
    return _assert_error
