"""Queued downlink: commands wait for the device's next uplink and ride back in its response.

An NB-IoT device in PSM is reachable only for a few seconds after it sends, so a command
is kept (table ``gateway_commands`` in the state database) until the device's next
uplink, put in that uplink's response, and re-sent with each later response until the
device acknowledges it or its deadline passes. Its life, as the NB-IoT platforms report
theirs::

    pending --uplink--> sent --cmd:{id}=delivered--> delivered --succeeded/failed--> (final)
       \\________________\\____________________________\\--deadline--> expired (final)

Every transition is published on ``sealscope/v1/dev/{device_id}/cmd/status`` through the
forwarder's durable queue. Commands come in through ``DownlinkQueue.enqueue`` or over MQTT
(``sealscope/v1/dev/{device_id}/cmd``, see ``CommandSubscriber``); a repeated id is the
same command, so MQTT redeliveries collapse.
"""

from __future__ import annotations

import asyncio
import builtins  # the queue has a method named list, which hides the type in its body
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Final, Literal, cast

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.forwarder import OutboundMessage
from gateway.translate import COMMAND_ID_PATTERN, CommandReport
from sealscope.deadletters import DeadLetterStore
from sealscope.errors import Conflict, MalformedMessage, MessageRejected, NotFound
from sealscope.mqtt_session import manual_ack_client
from sealscope.sqlitedb import Database, Migration
from sealscope.topics import PREFIX, check_device_id, device_filter, parse_device_topic

__all__ = [
    "Command",
    "CommandRequest",
    "CommandState",
    "CommandSubscriber",
    "DownlinkQueue",
    "command_status_topic",
    "decode_command_request",
]

log = logging.getLogger(__name__)

CommandState = Literal["pending", "sent", "delivered", "succeeded", "failed", "expired"]
_OPEN: Final = ("pending", "sent", "delivered")
_SENDABLE: Final = ("pending", "sent")
DEFAULT_TTL_S: Final = 2 * 24 * 3600.0
MAX_TTL_S: Final = 90 * 24 * 3600.0

_MIGRATIONS: tuple[Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS gateway_commands (
            id          TEXT PRIMARY KEY,
            device_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            params      TEXT NOT NULL,
            created_at  REAL NOT NULL,
            expires_at  REAL NOT NULL,
            state       TEXT NOT NULL,
            attempts    INTEGER NOT NULL DEFAULT 0,
            updated_at  REAL NOT NULL,
            detail      TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS gateway_commands_open"
        " ON gateway_commands (device_id, state, created_at)",
        "CREATE INDEX IF NOT EXISTS gateway_commands_deadline"
        " ON gateway_commands (state, expires_at)",
    ),
)

ParamValue = int | float | bool | Annotated[str, msgspec.Meta(max_length=256)]


class CommandRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The payload of ``sealscope/v1/dev/{device_id}/cmd``."""

    v: Literal[1]
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    id: Annotated[str, msgspec.Meta(pattern=f"^{COMMAND_ID_PATTERN}$")] | None = None
    params: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=64)], ParamValue],
        msgspec.Meta(max_length=32),
    ] = {}
    expires_t: Annotated[float, msgspec.Meta(gt=0)] | None = None
    ttl_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_S)] | None = None


_request_decoder = msgspec.json.Decoder(CommandRequest)


def decode_command_request(payload: bytes, *, device_id: str | None = None) -> CommandRequest:
    try:
        return _request_decoder.decode(payload)
    except msgspec.MsgspecError as exc:
        raise MalformedMessage(f"command: {exc}", device_id=device_id) from exc


def command_status_topic(device_id: str) -> str:
    return f"{PREFIX}/dev/{check_device_id(device_id)}/cmd/status"


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    device_id: str
    name: str
    params: dict[str, Any]
    created_at: float
    expires_at: float
    state: CommandState
    attempts: int = 0
    updated_at: float = 0.0
    detail: str | None = None

    def for_device(self) -> dict[str, Any]:
        """What rides back in the uplink response."""
        return {"id": self.id, "name": self.name, "params": self.params, "exp": self.expires_at}

    def status(self) -> bytes:
        body: dict[str, Any] = {
            "v": 1,
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "t": round(self.updated_at, 3),
            "attempts": self.attempts,
        }
        if self.detail:
            body["detail"] = self.detail
        return json.dumps(body, separators=(",", ":")).encode()


_COLUMNS = (
    "id, device_id, name, params, created_at, expires_at, state, attempts, updated_at, detail"
)


def _row(row: Any) -> Command:
    return Command(
        id=row["id"],
        device_id=row["device_id"],
        name=row["name"],
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        attempts=row["attempts"],
        updated_at=row["updated_at"],
        detail=row["detail"],
    )


PublishStatus = Callable[[Sequence[OutboundMessage]], Awaitable[None]]


class DownlinkQueue:
    """Commands per device, their states, and the statuses published for them."""

    def __init__(
        self,
        *,
        state_db: str | Path,
        publish: PublishStatus,
        clock: Callable[[], float] = time.time,
        max_per_response: int = 8,
    ) -> None:
        if max_per_response < 1:
            raise ValueError("max_per_response must be >= 1")
        self._db = Database(state_db)
        self._db.migrate("gateway_commands", _MIGRATIONS)
        self._publish = publish
        self._clock = clock
        self.max_per_response = max_per_response
        # Devices that may have a command to send: the uplink path checks this set before
        # touching the database. Commands reach the table only through this object (its
        # API or the MQTT subscription), so the set is complete.
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT device_id FROM gateway_commands WHERE state IN (?, ?)",
                _SENDABLE,
            ).fetchall()
        self._waiting: set[str] = {r["device_id"] for r in rows}

    def close(self) -> None:
        self._db.close()

    async def _announce(self, commands: Sequence[Command]) -> None:
        if commands:
            await self._publish(
                [OutboundMessage(command_status_topic(c.device_id), c.status()) for c in commands]
            )

    # -- queueing ---------------------------------------------------------------------
    async def enqueue(
        self,
        device_id: str,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        command_id: str | None = None,
        expires_at: float | None = None,
        ttl_s: float | None = None,
    ) -> Command:
        """Queue a command (``pending``); the same id again returns the queued one.

        ``Conflict`` if the id belongs to another device's command."""
        fields = {"v": 1, "name": name, "id": command_id, "params": params or {}}
        fields |= {"expires_t": expires_at, "ttl_s": ttl_s}
        try:
            request = msgspec.convert(fields, CommandRequest)
        except msgspec.ValidationError as exc:
            raise MalformedMessage(f"command: {exc}", device_id=device_id) from exc
        command, is_new = self._insert(check_device_id(device_id), request)
        if is_new:
            await self._announce([command])
        return command

    async def enqueue_request(self, device_id: str, request: CommandRequest) -> Command:
        command, is_new = self._insert(check_device_id(device_id), request)
        if is_new:
            await self._announce([command])
        return command

    def _insert(self, device_id: str, request: CommandRequest) -> tuple[Command, bool]:
        now = self._clock()
        if request.expires_t is not None:
            expires_at = request.expires_t
        else:
            expires_at = now + (request.ttl_s if request.ttl_s is not None else DEFAULT_TTL_S)
        command = Command(
            id=request.id or f"c-{secrets.token_hex(8)}",
            device_id=device_id,
            name=request.name,
            params=dict(request.params),
            created_at=now,
            expires_at=expires_at,
            state="pending",
            updated_at=now,
        )
        with self._db.write() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM gateway_commands WHERE id = ?", (command.id,)
            ).fetchone()
            if row is not None:
                existing = _row(row)
                if existing.device_id != device_id:
                    raise Conflict("command", command.id)
                return existing, False
            conn.execute(
                "INSERT INTO gateway_commands (id, device_id, name, params, created_at,"
                " expires_at, state, attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    command.id,
                    device_id,
                    command.name,
                    json.dumps(command.params),
                    now,
                    expires_at,
                    "pending",
                    now,
                ),
            )
        self._waiting.add(device_id)
        log.info("downlink: %s %s queued for %s", command.id, command.name, device_id)
        return command, True

    # -- reading ----------------------------------------------------------------------
    def get(self, command_id: str) -> Command:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM gateway_commands WHERE id = ?", (command_id,)
            ).fetchone()
        if row is None:
            raise NotFound("command", command_id)
        return _row(row)

    def list(self, device_id: str, *, limit: int = 100) -> list[Command]:
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM gateway_commands WHERE device_id = ?"
                " ORDER BY created_at DESC LIMIT ?",
                (device_id, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    # -- the uplink path --------------------------------------------------------------
    async def on_uplink(
        self, device_id: str, reports: Sequence[CommandReport] = ()
    ) -> builtins.list[Command]:
        """Apply the device's reports, then take the commands for this uplink's response."""
        now = self._clock()
        changed: list[Command] = []
        if reports:
            changed += self._apply_reports(device_id, reports, now)
        sending: list[Command] = []
        if device_id in self._waiting:
            with self._db.write() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM gateway_commands WHERE device_id = ?"
                    " AND state IN (?, ?) AND expires_at > ? ORDER BY created_at, id LIMIT ?",
                    (device_id, *_SENDABLE, now, self.max_per_response),
                ).fetchall()
                conn.executemany(
                    "UPDATE gateway_commands SET state = 'sent', attempts = attempts + 1,"
                    " updated_at = ? WHERE id = ?",
                    [(now, r["id"]) for r in rows],
                )
            if not rows:
                self._waiting.discard(device_id)
            for c in map(_row, rows):
                sending.append(replace(c, state="sent", attempts=c.attempts + 1, updated_at=now))
            changed += sending
        await self._announce(changed)
        return sending

    def _apply_reports(
        self, device_id: str, reports: Sequence[CommandReport], now: float
    ) -> builtins.list[Command]:
        changed: list[Command] = []
        with self._db.write() as conn:
            for report in reports:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM gateway_commands WHERE id = ? AND device_id = ?",
                    (report.command_id, device_id),
                ).fetchone()
                if row is None:
                    log.warning(
                        "downlink: %s reported unknown command %s", device_id, report.command_id
                    )
                    continue
                command = _row(row)
                if command.state not in _OPEN or command.state == report.outcome:
                    continue  # final already, or a repeated report
                if report.outcome == "delivered" and command.state == "delivered":
                    continue
                conn.execute(
                    "UPDATE gateway_commands SET state = ?, updated_at = ?, detail = ?"
                    " WHERE id = ?",
                    (report.outcome, now, report.detail, command.id),
                )
                changed.append(
                    replace(command, state=report.outcome, updated_at=now, detail=report.detail)
                )
        return changed

    # -- deadlines --------------------------------------------------------------------
    async def expire_due(self) -> builtins.list[Command]:
        """Mark every open command past its deadline ``expired``; returns them."""
        now = self._clock()
        with self._db.write() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM gateway_commands WHERE state IN (?, ?, ?)"
                " AND expires_at <= ? ORDER BY expires_at, id",
                (*_OPEN, now),
            ).fetchall()
            conn.executemany(
                "UPDATE gateway_commands SET state = 'expired', updated_at = ? WHERE id = ?",
                [(now, r["id"]) for r in rows],
            )
        expired = [replace(_row(r), state="expired", updated_at=now) for r in rows]
        for c in expired:
            log.info("downlink: %s %s for %s expired", c.id, c.name, c.device_id)
        await self._announce(expired)
        return expired

    async def run_expiry(self, *, interval_s: float = 1.0) -> None:
        """Expire commands as their deadlines pass, until cancelled."""
        while True:
            try:
                await self.expire_due()
            except Exception:  # a locked database now is not a reason to stop expiring
                log.exception("downlink: expiring commands failed; trying again")
            await asyncio.sleep(interval_s)


class CommandSubscriber:
    """Takes commands from ``sealscope/v1/dev/+/cmd`` into a ``DownlinkQueue``.

    A persistent session at QoS 1, acknowledged only once the command is stored, so a
    command published while the gateway was down is delivered when it comes back. An
    unusable command is dead-lettered (and acknowledged: it will not get better).
    """

    def __init__(
        self,
        *,
        queue: DownlinkQueue,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        protocol: Literal["5", "3.1.1"] = "5",
        dead_letters: DeadLetterStore | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        handle_timeout_s: float = 30.0,
    ) -> None:
        self.queue = queue
        self.host = host
        self.port = port
        self.client_id = client_id
        self.protocol = protocol
        self._dead_letters = dead_letters
        self._session_expiry_s = session_expiry_s
        self._handle_timeout_s = handle_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed = threading.Event()
        self._client = manual_ack_client(
            client_id=client_id,
            protocol=protocol,
            username=username,
            password=password,
            max_reconnect_delay_s=10,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    async def __aenter__(self) -> CommandSubscriber:
        self._loop = asyncio.get_running_loop()
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._session_expiry_s
        self._client.connect_async(
            self.host,
            self.port,
            keepalive=30,
            clean_start=False if self.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self._client.loop_start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._client.disconnect()
        # off the event loop: a delivery being handled needs the loop to finish
        await asyncio.to_thread(self._client.loop_stop)

    async def wait_subscribed(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self._subscribed.wait, timeout_s)

    async def handle(self, topic: str, payload: bytes) -> None:
        device_id: str | None = None
        try:
            where = parse_device_topic(topic)
            device_id = where.device_id
            if where.kind != "cmd":
                raise MalformedMessage(f"{topic!r} is not a command topic", device_id=device_id)
            request = decode_command_request(payload, device_id=device_id)
            await self.queue.enqueue_request(device_id, request)
        except (MessageRejected, Conflict) as exc:
            code = exc.code if isinstance(exc, MessageRejected) else "conflict"
            log.warning("downlink: command on %s dead-lettered: %s", topic, exc)
            if self._dead_letters is not None:
                self._dead_letters.add(
                    topic=topic, payload=payload, code=code, reason=str(exc), device_id=device_id
                )

    # -- paho callbacks (network thread) ----------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("downlink: %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        topic = device_filter("cmd")
        if self.protocol == "5":
            client.subscribe([(topic, SubscribeOptions(qos=1))])
        else:
            client.subscribe([(topic, 1)])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._subscribed.clear()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not acknowledged: the broker delivers it again next session
        # paho unpacks a received payload with struct, so it is bytes, never bytearray
        payload = cast(bytes, msg.payload)
        future = asyncio.run_coroutine_threadsafe(self.handle(msg.topic, payload), loop)
        try:
            future.result(timeout=self._handle_timeout_s)
        except Exception:
            log.exception("downlink: command on %s not stored; the broker will resend", msg.topic)
            with contextlib.suppress(Exception):
                future.cancel()
            return
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)
