"""Every simulated device as its own MQTT client identity, the way a PSM device connects.

A device wakes, connects with its own credentials (username = device id), publishes its
uplink (and the radio's duplicate copies) at QoS 1 under ``sealscope/v1/dev/{id}/``, takes
whatever commands the broker queued for it on ``.../cmd`` in its persistent session, and
disconnects to sleep again. Only a pool of ``connections`` devices is connected at any
moment; with 100,000 devices and an uplink an hour that is the honest picture (a real
fleet has ~30 devices awake at once per 100,000), and this machine could not hold 100,000
sockets anyway.

Limits (measured on the 2-core test machine; see ``sealscope bench sim``): each wake-up is
a TCP connect, CONNECT with password check, PUBLISH/PUBACK, PINGREQ/PINGRESP, DISCONNECT,
so the rate is bounded by connection set-up (a few thousand devices per second, shared
with the broker's CPU), not by message size. For a 100,000-device round use a ``speed``
that leaves a round tens of wall seconds.

The client is a minimal MQTT 5 implementation on asyncio streams (CONNECT, PUBLISH QoS 1,
SUBSCRIBE, PINGREQ, DISCONNECT): MQTT 5 so that an ACL refusal comes back as a PUBACK
reason code (0x87) instead of vanishing silently, and hand-written because a full client
(paho's thread, aiomqtt's tasks) per wake-up costs more than the wake-up itself.

Broker set-up this transport expects (Mosquitto)::

    password_file ...             # one user per device: fleet.credentials()
    pattern write sealscope/v1/dev/%u/#
    pattern read  sealscope/v1/dev/%u/cmd   # only with downlink=True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Self

from firmware_sim.publisher import ConnectFailed, PublishError
from firmware_sim.transport import Delivery, DeviceMessage
from sealscope.topics import device_topic

__all__ = ["DeviceMqttTransport", "DeviceSession"]

log = logging.getLogger(__name__)

_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 1, 2, 3, 4
_SUBSCRIBE, _SUBACK, _PINGREQ, _PINGRESP, _DISCONNECT = 8, 9, 12, 13, 14
_REASONS = {
    0x80: "Unspecified error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x90: "Topic Name invalid",
    0x97: "Quota exceeded",
    0x99: "Payload format invalid",
}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def _reason(code: int) -> str:
    return _REASONS.get(code, f"reason 0x{code:02x}")


class DeviceSession:
    """One wake-up of one device: ``async with DeviceSession(...) as s: await s.publish()``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        device_id: str,
        password: str | None,
        session_expiry_s: int = 0,
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.device_id = device_id
        self._password = password
        self._expiry = session_expiry_s
        self._timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0
        self.session_present = False
        self.received: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.timeout(self._timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
                await self._connect()
        except (OSError, TimeoutError) as exc:
            await self._close()
            raise ConnectFailed(self.host, self.port, f"{self.device_id}: {exc!r}") from exc
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._writer is not None and exc_info[0] is None:
            with contextlib.suppress(OSError):
                self._writer.write(_packet(_DISCONNECT, 0, b"\x00\x00"))
                await self._writer.drain()
        await self._close()

    async def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read(self) -> tuple[int, int, bytes]:
        assert self._reader is not None
        first = (await self._reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = await self._reader.readexactly(length) if length else b""
        return first >> 4, first & 0x0F, body

    async def _connect(self) -> None:
        assert self._writer is not None
        flags = 0x80 | (0x40 if self._password is not None else 0) | (0 if self._expiry else 0x02)
        props = b"\x11" + struct.pack("!I", self._expiry) if self._expiry else b""
        body = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", 60)
        body += _varint(len(props)) + props + _str(self.device_id) + _str(self.device_id)
        if self._password is not None:
            body += _str(self._password)
        self._writer.write(_packet(_CONNECT, 0, body))
        kind, _, reply = await self._read()
        if kind != _CONNACK or len(reply) < 2:
            raise ConnectFailed(self.host, self.port, f"{self.device_id}: no CONNACK")
        if reply[1] >= 0x80:
            raise ConnectFailed(self.host, self.port, f"{self.device_id}: {_reason(reply[1])}")
        self.session_present = bool(reply[0] & 1)

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def subscribe(self, topic_filter: str) -> None:
        assert self._writer is not None
        pid = self._packet_id()
        body = struct.pack("!H", pid) + b"\x00" + _str(topic_filter) + b"\x01"
        self._writer.write(_packet(_SUBSCRIBE, 2, body))
        while True:
            kind, flags, reply = await self._read()
            if kind == _SUBACK:
                if reply[-1] >= 0x80:
                    raise PublishError(f"{self.device_id}: subscribe {_reason(reply[-1])}")
                return
            await self._handle(kind, flags, reply)

    async def publish(self, items: Sequence[tuple[str, bytes, bool]]) -> list[str | None]:
        """Publish (topic, payload, retain) at QoS 1; per item None or the refusal reason."""
        assert self._writer is not None
        pending: dict[int, int] = {}
        for index, (topic, payload, retain) in enumerate(items):
            pid = self._packet_id()
            pending[pid] = index
            body = _str(topic) + struct.pack("!H", pid) + b"\x00" + payload
            self._writer.write(_packet(_PUBLISH, 0x02 | int(retain), body))
        await self._writer.drain()
        outcome: list[str | None] = [None] * len(items)
        while pending:
            kind, flags, reply = await self._read()
            if kind == _PUBACK:
                (pid,) = struct.unpack("!H", reply[:2])
                acked = pending.pop(pid, None)
                if acked is not None and len(reply) > 2 and reply[2] >= 0x80:
                    outcome[acked] = _reason(reply[2])
            else:
                await self._handle(kind, flags, reply)
        return outcome

    async def drain_downlink(self) -> None:
        """Wait until everything the broker queued for us has arrived: PINGRESP is answered
        after the messages the broker sent before it."""
        assert self._writer is not None
        self._writer.write(_packet(_PINGREQ, 0, b""))
        while True:
            kind, flags, reply = await self._read()
            if kind == _PINGRESP:
                return
            await self._handle(kind, flags, reply)

    async def _handle(self, kind: int, flags: int, body: bytes) -> None:
        if kind != _PUBLISH:
            return
        assert self._writer is not None
        (topic_len,) = struct.unpack("!H", body[:2])
        topic = body[2 : 2 + topic_len].decode()
        at = 2 + topic_len
        qos = (flags >> 1) & 3
        pid = None
        if qos:
            (pid,) = struct.unpack("!H", body[at : at + 2])
            at += 2
        props_len, shift, i = 0, 0, at
        while True:
            byte = body[i]
            props_len |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        self.received.append((topic, body[i + props_len :]))
        if pid is not None:
            self._writer.write(_packet(_PUBACK, 0, struct.pack("!H", pid)))


class DeviceMqttTransport:
    """Each device its own MQTT identity; ``connections`` devices awake at a time."""

    name = "mqtt-device"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        credentials: Mapping[str, str] | None = None,
        connections: int = 64,
        downlink: bool = False,
        session_expiry_s: int = 7 * 86_400,
        timeout_s: float = 30.0,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be >= 1")
        self.host, self.port = host, port
        self.connections = connections
        self.downlink = downlink
        self._credentials = credentials
        self._expiry = session_expiry_s if downlink else 0
        self._timeout_s = timeout_s
        self._subscribed: set[str] = set()
        self.sessions = 0  # wake-ups so far

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def send(self, messages: Sequence[DeviceMessage]) -> Delivery:
        by_device: dict[str, list[int]] = defaultdict(list)
        for index, m in enumerate(messages):
            by_device[m.device_id].append(index)
        delivery = Delivery(acked=[0] * len(messages))
        queue: asyncio.Queue[tuple[str, list[int]]] = asyncio.Queue()
        for item in by_device.items():
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                device_id, indices = queue.get_nowait()
                await self._wake(device_id, [messages[i] for i in indices], indices, delivery)

        try:
            async with asyncio.TaskGroup() as tg:
                for k in range(min(self.connections, len(by_device))):
                    tg.create_task(worker(), name=f"device-pool-{k}")
        except ExceptionGroup as group:
            # the first device that could not get through says why; the rest are the same
            first = group.exceptions[0]
            if isinstance(first, PublishError):
                raise first from group
            raise
        return delivery

    async def _wake(
        self,
        device_id: str,
        messages: list[DeviceMessage],
        indices: list[int],
        delivery: Delivery,
    ) -> None:
        password = None if self._credentials is None else self._credentials.get(device_id)
        items: list[tuple[str, bytes, bool]] = []
        owner: list[int] = []
        for index, m in zip(indices, messages, strict=True):
            topic = device_topic(device_id, m.kind)
            items += [(topic, m.payload, m.retain)] * m.copies
            owner += [index] * m.copies
        async with DeviceSession(
            host=self.host,
            port=self.port,
            device_id=device_id,
            password=password,
            session_expiry_s=self._expiry,
            timeout_s=self._timeout_s,
        ) as session:
            if self.downlink and not session.session_present:
                await session.subscribe(device_topic(device_id, "cmd"))
            async with asyncio.timeout(self._timeout_s):
                outcome = await session.publish(items)
                if self.downlink:
                    await session.drain_downlink()
        self.sessions += 1
        delivery.published += len(items)
        refused: dict[int, str] = {}
        for index, reason in zip(owner, outcome, strict=True):
            if reason is None:
                delivery.acked[index] += 1
            else:
                refused.setdefault(index, reason)
        delivery.refused += sorted(refused.items())
        cmd_topic = device_topic(device_id, "cmd")
        delivery.downlinks += [(device_id, p) for t, p in session.received if t == cmd_topic]
