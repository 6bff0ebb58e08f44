"""Devices: list, register one, look one up."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from composition.api.deps import RegistryDep
from composition.api.models import DeviceCreate, DevicePublic, DevicesPublic, ErrorBody
from composition.api.params import Limit, Offset

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=DevicesPublic)
def list_devices(
    registry: RegistryDep,
    manufacturer: str | None = None,
    site: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DevicesPublic:
    devices = registry.list(manufacturer=manufacturer, site=site, limit=limit, offset=offset)
    return DevicesPublic(data=[DevicePublic.of(d) for d in devices], limit=limit, offset=offset)


@router.post(
    "",
    response_model=DevicePublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"model": ErrorBody, "description": "the device id is taken"},
        413: {"model": ErrorBody, "description": "the body is over the size limit"},
        415: {"model": ErrorBody, "description": "the body is not JSON"},
    },
)
def create_device(body: DeviceCreate, registry: RegistryDep, response: Response) -> DevicePublic:
    device = registry.add(body.to_device())
    response.headers["Location"] = f"/api/v1/devices/{device.device_id}"
    return DevicePublic.of(device)


@router.get(
    "/{device_id}",
    response_model=DevicePublic,
    responses={404: {"model": ErrorBody}},
)
def get_device(device_id: str, registry: RegistryDep) -> DevicePublic:
    return DevicePublic.of(registry.get(device_id))
