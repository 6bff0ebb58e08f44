"""Liveness probe: answers without touching any store, so it stays cheap under load."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from composition.api.deps import SettingsDep
from composition.api.models import Health

router = APIRouter(tags=["health"])

try:
    _VERSION = version("sealscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    _VERSION = "unknown"


@router.get("/healthz", response_model=Health)
def healthz(settings: SettingsDep) -> Health:
    return Health(status="ok", version=_VERSION, store=settings.store)
