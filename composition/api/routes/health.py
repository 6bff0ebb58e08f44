"""Liveness probe: answers without touching any store, so it stays cheap under load.

Under ``sealscope up`` it also says which supervised component is down (the broker while
it restarts, ingest while it reconnects): status ``degraded`` and HTTP 503, so a load
balancer or a script waiting for readiness sees the outage.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request, Response

from composition.api.deps import SettingsDep
from composition.api.models import Health

router = APIRouter(tags=["health"])

try:
    _VERSION = version("sealscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    _VERSION = "unknown"

_HEALTHY_STATES = frozenset({"up", "connected"})


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "a component is down"}},
)
def healthz(settings: SettingsDep, request: Request, response: Response) -> Health:
    probe: Callable[[], dict[str, str]] | None = getattr(
        request.app.state, "health_components", None
    )
    components = probe() if probe is not None else {}
    is_degraded = any(state not in _HEALTHY_STATES for state in components.values())
    if is_degraded:
        response.status_code = 503
    return Health(
        status="degraded" if is_degraded else "ok",
        version=_VERSION,
        store=settings.store,
        components=components,
    )
