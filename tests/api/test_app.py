"""The app as a whole: lifespan, health, the web page, OpenAPI and the error shape."""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any

import pytest
from fastapi.testclient import TestClient

import sealscope.storage.factory
from composition.api import create_app
from sealscope.config import Settings
from sealscope.errors import ConfigError
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.wire import SAMPLE_FIELDS


class ClosingStore(MemoryTelemetryStore):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def test_lifespan_opens_and_closes_what_was_not_injected(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[ClosingStore] = []

    async def fake_open(s: Settings) -> ClosingStore:
        assert s is settings
        opened.append(ClosingStore())
        return opened[-1]

    monkeypatch.setattr(sealscope.storage.factory, "open_telemetry_store", fake_open)
    app = create_app(settings)
    assert not settings.state_db.exists()  # nothing is opened before start-up
    with TestClient(app) as client:
        assert client.get("/api/v1/alerts").status_code == 401
        # the lifespan opened the accounts store in the same state database
        auth = app.state.authenticator
        key, _ = auth.create_key(auth.store.create_org(name="ops", kind="admin").id, name="t")
        client.headers["Authorization"] = f"Bearer {key}"
        created = client.post(
            "/api/v1/devices",
            json={"device_id": "ACME-0001", "kind": "valve", "manufacturer": "a", "model": "m"},
        )
        assert created.status_code == 201
        assert client.get("/api/v1/alerts").json()["data"] == []
        assert client.get("/api/v1/dead-letters").json()["total"] == 0
        assert not opened[0].closed
    assert opened[0].closed
    # the device went to the settings' state database, and its connection was closed
    conn = sqlite3.connect(settings.state_db)
    assert conn.execute("SELECT device_id FROM devices").fetchall() == [("ACME-0001",)]
    conn.close()
    held = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert str(settings.state_db.resolve()) not in held


def test_lifespan_leaves_injected_stores_open(
    settings: Settings, registry: SqliteDeviceRegistry
) -> None:
    store = ClosingStore()
    with TestClient(create_app(settings, telemetry_store=store, registry=registry)):
        pass
    assert not store.closed
    registry.add(Device("ACME-0001", "valve", "a", "m"))  # still usable


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"] == "sqlite"


def test_page_is_served_with_its_modules_and_nothing_external(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<title>sealscope</title>" in page
    # every module the shell loads, and every module they import, is served as JavaScript
    todo = re.findall(r'src="(/static/[^"]+)"', page)
    assert todo == ["/static/app.js"]
    seen: set[str] = set()
    sources = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/javascript"), path
        assert answer.headers["cache-control"] == "no-cache" and answer.headers["etag"]
        sources[path] = answer.text
        base = path.rsplit("/", 1)[0]
        for ref in re.findall(r'^import .*? from "(\.{1,2}/[^"]+)";', answer.text, re.M):
            todo.append(_join(base, ref))
    assert {"/static/views/fleet.js", "/static/views/device.js", "/static/views/alerts.js"} <= seen
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # no CDN, no web font, no analytics: nothing but this origin
    for text in (page, css.text, *sources.values()):
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    # the units the page shows cover the wire contract's sample fields
    units = re.search(r"export const UNITS = \{(.*?)\};", sources["/static/alert_card.js"], re.S)
    assert units is not None
    assert tuple(re.findall(r"(\w+):", units[1])) == SAMPLE_FIELDS


def _join(base: str, ref: str) -> str:
    parts = base.split("/")
    for piece in ref.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


@pytest.mark.parametrize(
    "name", ["nope.js", "../routes/page.py", "..%2F..%2Fapp.py", "views", "index.html.bak"]
)
def test_static_answers_404_for_anything_not_shipped(client: TestClient, name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_openapi_lists_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/healthz",
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/devices/{device_id}/telemetry",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}",
        "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/alerts/{alert_id}/resolve",
        "/api/v1/dead-letters",
    } <= set(spec["paths"])
    assert "/" not in spec["paths"]
    params = spec["paths"]["/api/v1/devices/{device_id}/telemetry"]["get"]["parameters"]
    field = next(p for p in params if p["name"] == "field")
    assert field["schema"]["enum"] == list(SAMPLE_FIELDS)
    assert client.get("/docs").status_code == 200


def test_unknown_path_and_method_are_json(client: TestClient, assert_error: Any) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    response = client.delete("/api/v1/devices")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


class BrokenRegistry:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def list(self, **kw: object) -> list[Device]:
        raise self.exc

    def close(self) -> None:
        pass


def _broken_client(
    settings: Settings, exc: Exception, authenticator: Any, admin_key: str
) -> TestClient:
    """The admin's client on an app whose registry raises ``exc`` on every call."""
    app = create_app(
        settings,
        telemetry_store=MemoryTelemetryStore(),
        registry=BrokenRegistry(exc),  # type: ignore[arg-type]
        authenticator=authenticator,
    )
    headers = {"Authorization": f"Bearer {admin_key}"}
    return TestClient(app, raise_server_exceptions=False, headers=headers)


def test_config_error_is_500_json(
    settings: Settings, assert_error: Any, authenticator: Any, admin_key: str
) -> None:
    exc = ConfigError("state_db", "schema is newer than this build")
    with _broken_client(settings, exc, authenticator, admin_key) as client:
        body = assert_error(client.get("/api/v1/devices"), 500, "config_error")
    assert "state_db" in body["message"]


def test_unexpected_error_is_500_json_without_internals(
    settings: Settings, assert_error: Any, authenticator: Any, admin_key: str
) -> None:
    exc = RuntimeError("secret internals")
    with _broken_client(settings, exc, authenticator, admin_key) as client:
        body = assert_error(client.get("/api/v1/devices"), 500, "internal_error")
    assert "secret" not in body["message"]


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (OverflowError("Python int too large to convert to SQLite INTEGER"), "out_of_range"),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), "invalid_text"),
    ],
)
def test_store_numeric_or_text_error_is_422_not_500(
    settings: Settings,
    assert_error: Any,
    exc: Exception,
    error: str,
    authenticator: Any,
    admin_key: str,
) -> None:
    with _broken_client(settings, exc, authenticator, admin_key) as client:
        assert_error(client.get("/api/v1/devices"), 422, error)
