"""The API's routers, one module per resource."""

from fastapi import APIRouter

from composition.api.models import ErrorBody
from composition.api.routes import (
    accounts,
    alerts,
    commands,
    dead_letters,
    devices,
    fleet,
    health,
    keys,
    page,
    provisioning,
    quality,
    risk,
    session,
    stream,
    subscriptions,
    telemetry,
)

__all__ = ["api_router", "root_router"]

# every refusal has the one error shape; the OpenAPI says so instead of FastAPI's default 422
api_router = APIRouter(
    prefix="/api/v1",
    responses={422: {"model": ErrorBody, "description": "the request is invalid"}},
)
api_router.include_router(devices.router)
api_router.include_router(fleet.router)
api_router.include_router(telemetry.router)
api_router.include_router(alerts.router)
api_router.include_router(dead_letters.router)
api_router.include_router(risk.router)
api_router.include_router(quality.router)
api_router.include_router(session.router)
api_router.include_router(keys.router)
api_router.include_router(accounts.router)
api_router.include_router(provisioning.router)
api_router.include_router(subscriptions.router)
api_router.include_router(commands.router)
api_router.include_router(stream.router)

# outside the versioned prefix: probes and the web page
root_router = APIRouter()
root_router.include_router(health.router)
root_router.include_router(page.router)
