"""Device commands: what people queued for a device, and how far each has got.

Port: ``CommandStore``; adapter ``SqlCommandStore`` on the state database. The API adds a
command (state ``requested``) and publishes it on ``sealscope/v1/dev/{id}/cmd``; the
gateway reports each step on ``.../cmd/status`` (``decode_command_status``), which ingest
records here. States only move forward::

    requested -> pending -> sent -> delivered -> succeeded | failed | expired

(``sent`` repeats while the gateway re-sends: its attempts count goes up.) A report may
arrive late or twice (QoS 1): one that would move a command back, or touch a final one,
is ignored. A report for a command nobody queued here (published straight to the broker)
adds it, so the device's list shows every command the gateway handled.
"""

from __future__ import annotations

import builtins  # `list` is a method name in the store
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Final, Literal, Protocol

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.db import commands as command_tables
from sealscope.db import read, write
from sealscope.errors import MalformedMessage
from sealscope.topics import PREFIX, check_device_id

__all__ = [
    "COMMAND_ID_PATTERN",
    "FINAL",
    "CommandState",
    "CommandStatus",
    "CommandStore",
    "DeviceCommand",
    "SqlCommandStore",
    "command_status_device",
    "decode_command_status",
]

CommandState = Literal[
    "requested", "pending", "sent", "delivered", "succeeded", "failed", "expired"
]
_RANK: Final[dict[str, int]] = {
    "requested": 0,
    "pending": 1,
    "sent": 2,
    "delivered": 3,
    "succeeded": 4,
    "failed": 4,
    "expired": 4,
}
FINAL: Final = frozenset({"succeeded", "failed", "expired"})
# the gateway's command ids (gateway/translate.py keeps the same rule for SenML records)
COMMAND_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

_T = command_tables.device_commands


@dataclass(frozen=True, slots=True)
class DeviceCommand:
    id: str
    device_id: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    expires_at: float = 0.0
    created_by: str = ""
    state: CommandState = "requested"
    state_t: float = 0.0
    attempts: int = 0
    detail: str | None = None
    updated_at: float = 0.0

    def payload(self) -> dict[str, Any]:
        """The body of ``sealscope/v1/dev/{device_id}/cmd`` (gateway's CommandRequest):
        an absolute deadline, so time spent queued at the broker does not extend it."""
        return {
            "v": 1,
            "id": self.id,
            "name": self.name,
            "params": self.params,
            "expires_t": self.expires_at,
        }


class CommandStatus(msgspec.Struct, forbid_unknown_fields=False):
    """The payload of ``sealscope/v1/dev/{device_id}/cmd/status`` (extra fields ignored:
    the gateway may say more in a later minor version)."""

    v: Literal[1]
    id: Annotated[str, msgspec.Meta(pattern=f"^{COMMAND_ID_PATTERN}$")]
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    state: Literal["pending", "sent", "delivered", "succeeded", "failed", "expired"]
    t: Annotated[float, msgspec.Meta(ge=0, le=1e11)]
    attempts: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    detail: Annotated[str, msgspec.Meta(max_length=512)] | None = None


_status_decoder = msgspec.json.Decoder(CommandStatus)
_STATUS_MAX_BYTES: Final = 4096


def command_status_device(topic: str) -> str | None:
    """The device id of a ``.../dev/{id}/cmd/status`` topic; None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:3]) != f"{PREFIX}/dev" or parts[4:] != ["cmd", "status"]:
        return None
    return check_device_id(parts[3])


def decode_command_status(payload: bytes, *, device_id: str | None = None) -> CommandStatus:
    if len(payload) > _STATUS_MAX_BYTES:
        raise MalformedMessage(
            f"command status of {len(payload)} bytes is over {_STATUS_MAX_BYTES}",
            device_id=device_id,
        )
    try:
        return _status_decoder.decode(payload)
    except msgspec.MsgspecError as exc:
        raise MalformedMessage(f"command status: {exc}", device_id=device_id) from exc


class CommandStore(Protocol):
    def add(self, command: DeviceCommand) -> DeviceCommand:
        """Store a new command; ``Conflict`` if its id is taken."""
        ...

    def mark_failed(self, command_id: str, detail: str) -> DeviceCommand | None:
        """The command could not be published: final ``failed`` (if still ``requested``)."""
        ...

    def record_status(self, device_id: str, status: CommandStatus) -> DeviceCommand | None:
        """Apply a gateway report; the command after it, or None when it was ignored
        (stale, repeated, or another device's command id)."""
        ...

    def list(self, device_id: str, *, limit: int = 50) -> builtins.list[DeviceCommand]:
        """The device's commands, newest first."""
        ...


def _row(row: Mapping[Any, Any]) -> DeviceCommand:
    return DeviceCommand(
        id=row["id"],
        device_id=row["device_id"],
        name=row["name"],
        params=dict(row["params"]),
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        created_by=row["created_by"],
        state=row["state"],
        state_t=float(row["state_t"]),
        attempts=row["attempts"],
        detail=row["detail"],
        updated_at=float(row["updated_at"]),
    )


def _moves_forward(current: DeviceCommand, status: CommandStatus) -> bool:
    if current.state in FINAL:
        return False
    old, new = _RANK[current.state], _RANK[status.state]
    if new != old:
        return new > old
    # the same state again: a re-send counts up its attempts; anything else is a repeat
    return status.attempts > current.attempts


class SqlCommandStore:
    """``CommandStore`` on a migrated state database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def add(self, command: DeviceCommand) -> DeviceCommand:
        check_device_id(command.device_id)
        now = self._clock()
        with write(self._engine, conflict=("command", command.id)) as conn:
            row = (
                conn.execute(
                    sa.insert(_T)
                    .values(
                        id=command.id,
                        device_id=command.device_id,
                        name=command.name,
                        params=command.params,
                        created_at=command.created_at or now,
                        expires_at=command.expires_at,
                        created_by=command.created_by,
                        state=command.state,
                        state_t=command.state_t or now,
                        attempts=command.attempts,
                        detail=command.detail,
                        updated_at=now,
                    )
                    .returning(*_T.c)
                )
                .mappings()
                .one()
            )
        return _row(row)

    def mark_failed(self, command_id: str, detail: str) -> DeviceCommand | None:
        now = self._clock()
        with write(self._engine) as conn:
            row = (
                conn.execute(
                    sa.update(_T)
                    .where(_T.c.id == command_id, _T.c.state == "requested")
                    .values(state="failed", state_t=now, detail=detail, updated_at=now)
                    .returning(*_T.c)
                )
                .mappings()
                .first()
            )
        return None if row is None else _row(row)

    def record_status(self, device_id: str, status: CommandStatus) -> DeviceCommand | None:
        now = self._clock()
        with write(self._engine) as conn:
            found = (
                conn.execute(sa.select(_T).where(_T.c.id == status.id).with_for_update())
                .mappings()
                .first()
            )
            if found is None:
                # queued straight on the broker, not through the API: keep it all the same
                created = DeviceCommand(
                    id=status.id,
                    device_id=device_id,
                    name=status.name,
                    created_at=status.t,
                    expires_at=status.t,  # unknown; the gateway's deadline is its own
                    state=status.state,
                    state_t=status.t,
                    attempts=status.attempts,
                    detail=status.detail,
                )
                row = conn.execute(
                    sa.insert(_T).values(asdict(created) | {"updated_at": now}).returning(*_T.c)
                )
                return _row(row.mappings().one())
            current = _row(found)
            if current.device_id != device_id or not _moves_forward(current, status):
                return None
            row = conn.execute(
                sa.update(_T)
                .where(_T.c.id == status.id)
                .values(
                    state=status.state,
                    state_t=status.t,
                    attempts=max(status.attempts, current.attempts),
                    detail=status.detail,
                    updated_at=now,
                )
                .returning(*_T.c)
            )
            return _row(row.mappings().one())

    def list(self, device_id: str, *, limit: int = 50) -> builtins.list[DeviceCommand]:
        query = (
            sa.select(_T)
            .where(_T.c.device_id == device_id)
            .order_by(_T.c.created_at.desc(), _T.c.id.desc())
            .limit(limit)
        )
        with read(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [_row(r) for r in rows]
