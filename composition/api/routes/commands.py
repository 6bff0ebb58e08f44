"""Device commands: queue one for a device's next wake-up, and list what was queued with
the state the gateway reports. The technicians' (operators') and the admin's only."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from composition.api.auth import PrincipalDep
from composition.api.broker import BrokerLink
from composition.api.command_models import CommandCreate, CommandPublic, CommandsPublic
from composition.api.deps import RegistryDep
from composition.api.handlers import ApiError
from composition.api.models import ErrorBody
from composition.api.scoping import visible_device
from sealscope.commands import CommandStore, DeviceCommand
from sealscope.errors import BrokerUnavailable

router = APIRouter(prefix="/devices", tags=["commands"])
log = logging.getLogger(__name__)

_forbidden: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorBody, "description": "the caller's role may not"},
    404: {"model": ErrorBody},
}


def _store(request: Request) -> CommandStore:
    store: CommandStore = request.app.state.commands
    return store


@router.post(
    "/{device_id}/commands",
    response_model=CommandPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_forbidden,
        413: {"model": ErrorBody, "description": "the body is over the size limit"},
        415: {"model": ErrorBody, "description": "the body is not JSON"},
        422: {"model": ErrorBody, "description": "unknown command, or not for this device"},
        503: {"model": ErrorBody, "description": "the broker is not reachable"},
    },
)
async def send_command(
    device_id: str,
    body: CommandCreate,
    request: Request,
    registry: RegistryDep,
    principal: PrincipalDep,
    response: Response,
) -> CommandPublic:
    """Publish the command on ``sealscope/v1/dev/{device_id}/cmd`` (QoS 1); 202 once the
    broker has it. The gateway holds it until the device's next uplink."""
    principal.require("commands:send")
    device = visible_device(registry, principal.scope, device_id)
    if body.name == "stroke_test" and device.kind != "valve":
        raise ApiError(
            422, "not_applicable", f"A stroke test is for valves; {device_id} is a pump."
        )
    broker: BrokerLink | None = request.app.state.broker
    if broker is None:
        raise ApiError(503, "no_broker", "This API runs without a broker; commands cannot be sent.")
    store = _store(request)
    now = time.time()
    command = DeviceCommand(
        id=f"c-{secrets.token_hex(8)}",
        device_id=device.device_id,
        name=body.name,
        # time_sync carries no time: the gateway's own clock sets it when it sends
        params={},
        created_at=now,
        expires_at=now + body.ttl_s,
        created_by=principal.name,
        state="requested",
        state_t=now,
    )
    command = await asyncio.to_thread(store.add, command)
    try:
        await broker.publish_command(device.device_id, command.payload())
    except BrokerUnavailable as exc:
        await asyncio.to_thread(store.mark_failed, command.id, f"not published: {exc}")
        log.warning("commands: %s for %s not published: %s", command.name, device_id, exc)
        raise ApiError(
            503, "broker_unavailable", f"The broker did not take the command: {exc}"
        ) from exc
    log.info(
        "commands: %s %s queued for %s by %s", command.id, command.name, device_id, principal.name
    )
    response.headers["Location"] = f"/api/v1/devices/{device.device_id}/commands"
    return CommandPublic.of(command)


@router.get("/{device_id}/commands", response_model=CommandsPublic, responses=_forbidden)
def list_commands(
    device_id: str,
    request: Request,
    registry: RegistryDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200, description="how many, newest first")] = 50,
) -> CommandsPublic:
    principal.require("commands:read")
    device = visible_device(registry, principal.scope, device_id)
    found = _store(request).list(device.device_id, limit=limit)
    return CommandsPublic(data=[CommandPublic.of(c) for c in found], limit=limit)
