"""Devices: list, register one, look one up, each through the caller's scope."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from composition.api.auth import PrincipalDep
from composition.api.deps import RegistryDep
from composition.api.models import DeviceCreate, DevicePublic, DevicesPublic, ErrorBody
from composition.api.params import Limit, Offset
from composition.api.scoping import scoped_devices, visible_device
from sealscope.errors import Forbidden

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=DevicesPublic)
def list_devices(
    registry: RegistryDep,
    principal: PrincipalDep,
    manufacturer: str | None = None,
    site: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DevicesPublic:
    principal.require("devices:read")
    devices = scoped_devices(
        registry,
        principal.scope,
        manufacturer=manufacturer,
        site=site,
        limit=limit,
        offset=offset,
    )
    return DevicesPublic(data=[DevicePublic.of(d) for d in devices], limit=limit, offset=offset)


@router.post(
    "",
    response_model=DevicePublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"model": ErrorBody, "description": "not the caller's manufacturer code"},
        409: {"model": ErrorBody, "description": "the device id is taken"},
        413: {"model": ErrorBody, "description": "the body is over the size limit"},
        415: {"model": ErrorBody, "description": "the body is not JSON"},
    },
)
def create_device(
    body: DeviceCreate, registry: RegistryDep, principal: PrincipalDep, response: Response
) -> DevicePublic:
    principal.require("devices:register")
    scope = principal.scope
    if scope.kind == "manufacturer" and (body.manufacturer != scope.manufacturer_code or body.site):
        # a maker registers its own devices; placing one at a site is the operator's step
        raise Forbidden(
            f"a manufacturer registers only its own devices (manufacturer "
            f"{scope.manufacturer_code!r}) and leaves site empty"
        )
    device = registry.add(body.to_device())
    response.headers["Location"] = f"/api/v1/devices/{device.device_id}"
    return DevicePublic.of(device)


@router.get(
    "/{device_id}",
    response_model=DevicePublic,
    responses={404: {"model": ErrorBody}},
)
def get_device(device_id: str, registry: RegistryDep, principal: PrincipalDep) -> DevicePublic:
    principal.require("devices:read")
    return DevicePublic.of(visible_device(registry, principal.scope, device_id))
