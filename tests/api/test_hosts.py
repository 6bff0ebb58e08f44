"""The trusted-host check, over real HTTP (uvicorn on loopback) with explicit Host headers."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from composition.api import create_app
from sealscope.config import Settings, load_settings
from sealscope.errors import ConfigError
from sealscope.storage.memory import MemoryTelemetryStore

Serve = Callable[[FastAPI], AbstractContextManager[str]]
DEVICE = {"device_id": "ACME-0001", "kind": "valve", "manufacturer": "a", "model": "m"}


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.", "[::2]", "x y"],
)
def test_trusted_hosts_foreign_host_is_400_before_any_route_runs(
    tmp_path: Path, serve: Serve, host: str, admin_key: str
) -> None:
    # admin_key is stored in the same state file (the settings fixture's data dir)
    app = create_app(Settings(data_dir=tmp_path / "data"), telemetry_store=MemoryTelemetryStore())
    auth = {"Authorization": f"Bearer {admin_key}"}
    with serve(app) as url, httpx.Client(base_url=url, timeout=10, headers=auth) as client:
        refused = client.post("/api/v1/devices", json=DEVICE, headers={"host": host})
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"] == "invalid_host"
        assert "SEALSCOPE_API_ALLOWED_HOSTS" in refused.json()["message"]
        # the refused request never reached the route
        assert client.get("/api/v1/devices").json()["data"] == []


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1:1", "[::1]:8000"])
def test_trusted_hosts_loopback_names_pass_by_default(
    tmp_path: Path, serve: Serve, host: str
) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"), telemetry_store=MemoryTelemetryStore())
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/healthz", headers={"host": host}).status_code == 200


def test_trusted_hosts_configured_names_and_wildcards(tmp_path: Path, serve: Serve) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", api_allowed_hosts="sealscope.example,*.acme.example"
    )
    app = create_app(settings, telemetry_store=MemoryTelemetryStore())
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for host, status in [
            ("sealscope.example", 200),
            ("ops.acme.example:443", 200),
            ("localhost", 400),  # the list replaces the defaults
            ("acme.example.evil", 400),
        ]:
            assert client.get("/healthz", headers={"host": host}).status_code == status


def test_api_allowed_hosts_setting_reads_a_comma_separated_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEALSCOPE_API_ALLOWED_HOSTS", " Sealscope.Example, ::1 ,127.0.0.1")
    assert load_settings().api_allowed_hosts == ["sealscope.example", "[::1]", "127.0.0.1"]
    monkeypatch.setenv("SEALSCOPE_API_ALLOWED_HOSTS", "")  # empty means unset: the defaults
    assert load_settings().api_allowed_hosts == ["localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize("value", ["*foo.example", "a.*.example", "a b", ",", []])
def test_api_allowed_hosts_setting_refuses_bad_patterns(value: object) -> None:
    with pytest.raises(ConfigError, match="api_allowed_hosts"):
        load_settings(api_allowed_hosts=value)
