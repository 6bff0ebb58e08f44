"""Bodies of the device command routes: ``CommandCreate`` in, ``CommandPublic`` out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from sealscope.commands import CommandState, DeviceCommand

__all__ = ["COMMAND_NAMES", "CommandCreate", "CommandPublic", "CommandsPublic"]

# what the devices understand (firmware_sim/fleet.py deliver_downlink)
CommandName = Literal["stroke_test", "time_sync"]
COMMAND_NAMES: Final = ("stroke_test", "time_sync")
DEFAULT_TTL_S: Final = 2 * 24 * 3600.0  # the gateway's default
MAX_TTL_S: Final = 90 * 24 * 3600.0  # and its bound (gateway/downlink.py)


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "600" is not a number

    name: CommandName = Field(
        description="stroke_test: a full stroke at the next wake-up (valves); "
        "time_sync: set the device clock"
    )
    ttl_s: float = Field(
        DEFAULT_TTL_S,
        ge=60,
        le=MAX_TTL_S,
        allow_inf_nan=False,
        description="how long the command waits for the device's next uplink, seconds",
    )


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class CommandPublic(BaseModel):
    id: str
    device_id: str
    name: str
    params: dict[str, Any]
    state: CommandState = Field(
        description="requested (on the broker, no word from the gateway yet), pending "
        "(queued at the gateway), sent, delivered, succeeded, failed, expired"
    )
    state_at: datetime = Field(description="when the command reached its state")
    attempts: int = Field(description="how many uplink responses carried it")
    detail: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime

    @classmethod
    def of(cls, command: DeviceCommand) -> CommandPublic:
        return cls(
            id=command.id,
            device_id=command.device_id,
            name=command.name,
            params=command.params,
            state=command.state,
            state_at=_utc(command.state_t),
            attempts=command.attempts,
            detail=command.detail,
            created_at=_utc(command.created_at),
            created_by=command.created_by,
            expires_at=_utc(command.expires_at),
        )


class CommandsPublic(BaseModel):
    data: list[CommandPublic]
    limit: int
