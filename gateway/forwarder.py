"""Store and forward: the gateway's ``UplinkSink`` between its ingresses and the broker.

``submit`` returns once the messages are fsynced in an on-disk spool (``ingest.Spool``,
segment files with CRC-framed records), so the device can be answered; a pump task
publishes the spool to MQTT at QoS 1 in spool order and moves the spool's checkpoint
only past messages the broker has acknowledged. While the broker is away paho keeps the
unacknowledged window and re-sends it, in order, when the connection is back; a gateway
restart replays from the checkpoint (the duplicates that allows are QoS 1's and collapse
in the idempotent store).

Writes are group-committed: every ``submit`` waiting at one moment shares one append,
one fsync and one SQLite transaction, which is what makes "answer once durable" fast.

Retries: a ``dedup_key`` is remembered in the state database (table ``gateway_dedup``)
for ``dedup_window_s``, written after the spool's fsync, so a crash between the two can
only let a retry through again (published twice, collapsed downstream), never lose the
uplink the device was told was taken.

A message the broker refuses (PUBACK reason >= 0x80, e.g. not authorised) would block
the queue for ever if retried; it is dead-lettered with the reason and skipped.

Errors: ``SpoolFull`` (sealscope.errors) from ``submit`` when the spool reached its bound:
the ingress answers "come back later" (CoAP 5.03) instead of dropping anything.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.uplink import CanonicalMessage
from sealscope.deadletters import DeadLetterStore
from sealscope.errors import SpoolFull
from sealscope.spool import Spool, SpoolPosition
from sealscope.sqlitedb import Database, Migration
from sealscope.topics import device_topic

__all__ = ["Forwarder", "ForwarderStats", "OutboundMessage"]

log = logging.getLogger(__name__)

_RETAIN = b"\x01"
_NO_RETAIN = b"\x00"
_PRUNE_EVERY_S = 60.0

_MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE IF NOT EXISTS gateway_dedup (key TEXT PRIMARY KEY, seen_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS gateway_dedup_by_age ON gateway_dedup (seen_at)",
    ),
)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """Anything the gateway publishes: uplinks translated to topics, command statuses."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass
class ForwarderStats:
    accepted: int = 0  # submits taken (each may hold several messages)
    duplicates: int = 0  # submits recognised as retries
    spooled: int = 0  # messages written to the spool
    published: int = 0  # messages the broker acknowledged
    refused: int = 0  # messages the broker refused (dead-lettered)


@dataclass
class _Write:
    messages: list[OutboundMessage]
    dedup_key: str | None
    done: asyncio.Future[bool]


@dataclass
class _InFlight:
    end: SpoolPosition
    message: OutboundMessage
    reason: ReasonCode | None = None
    is_acked: bool = False


@dataclass
class _Pump:
    read_pos: SpoolPosition
    sent_upto: SpoolPosition
    in_flight: dict[int, _InFlight] = field(default_factory=dict)
    order: collections.deque[int] = field(default_factory=collections.deque)
    acked_upto: SpoolPosition | None = None
    committed_at: float = 0.0  # time.monotonic() of the last checkpoint


class Forwarder:
    """``async with Forwarder(directory=..., state_db=..., host=..., port=...) as fwd``."""

    def __init__(
        self,
        *,
        directory: Path,
        state_db: Path,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        protocol: Literal["5", "3.1.1"] = "5",
        client_id: str | None = None,
        max_bytes: int = 1 << 30,
        window: int = 500,
        dedup_window_s: float = 24 * 3600.0,
        drain_timeout_s: float = 5.0,
        commit_interval_s: float = 0.1,
        dead_letters: DeadLetterStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if dedup_window_s <= 0:
            raise ValueError("dedup_window_s must be > 0")
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        self.directory = Path(directory)
        self.state_db = Path(state_db)
        self.host = host
        self.port = port
        self.protocol = protocol
        self.client_id = client_id or f"sealscope-gateway-{uuid.uuid4().hex[:8]}"
        self.max_bytes = max_bytes
        self.window = window
        self.dedup_window_s = dedup_window_s
        self.drain_timeout_s = drain_timeout_s
        self.commit_interval_s = commit_interval_s
        self.stats = ForwarderStats()
        self._username = username
        self._password = password
        self._dead_letters = dead_letters
        self._clock = clock
        self._spool: Spool | None = None
        self._db: Database | None = None
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writes: list[_Write] = []
        self._outstanding: set[asyncio.Future[bool]] = set()
        self._write_wanted = asyncio.Event()
        self._pump_wanted = asyncio.Event()
        self._drained = asyncio.Event()
        self._is_accepting = False
        self._is_connected = False
        self._is_stopping = False
        self._is_pump_stopping = False
        self._pump: _Pump | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_prune = 0.0
        self._acks: collections.deque[tuple[int, ReasonCode]] = collections.deque()
        self._acks_lock = threading.Lock()
        self._is_ack_wake_pending = False

    # -- lifecycle --------------------------------------------------------------------
    async def __aenter__(self) -> Forwarder:
        self._loop = asyncio.get_running_loop()
        self._spool = await asyncio.to_thread(
            Spool, self.directory, max_bytes=self.max_bytes, segment_bytes=16 << 20
        )
        self._db = Database(self.state_db)
        self._db.migrate("gateway_dedup", _MIGRATIONS)
        self._pump = _Pump(read_pos=self._spool.checkpoint, sent_upto=self._spool.checkpoint)
        self._client = self._make_client()
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._is_accepting = True
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="gateway-forwarder-write"),
            asyncio.create_task(self._pump_loop(), name="gateway-forwarder-pump"),
        ]
        self._pump_wanted.set()  # whatever a previous run left in the spool goes first
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._is_accepting = False
        self._write_wanted.set()
        # let waiting submits finish their fsync, then give the pump a moment to drain
        if self._outstanding:
            await asyncio.gather(*self._outstanding, return_exceptions=True)
        if self._is_connected:
            await self.wait_drained(self.drain_timeout_s)
        # the pump stops between steps (never inside a spool read or commit) and commits
        # what the broker acknowledged on its way out
        self._is_pump_stopping = True
        self._pump_wanted.set()
        writer, pump = self._tasks
        writer.cancel()  # idle: every submit has been answered
        await asyncio.gather(writer, pump, return_exceptions=True)
        self._tasks = []
        client, self._client = self._client, None
        if client is not None:
            self._is_stopping = True
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        backlog = self.backlog()
        if backlog:
            log.info("forwarder: %d bytes stay in the spool for the next start", backlog)
        if self._spool is not None:
            self._spool.close()
        if self._db is not None:
            self._db.close()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self.protocol == "5" else mqtt.MQTTv311,
        )
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        client.max_inflight_messages_set(0)  # the pump bounds the window itself
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.suppress_exceptions = True
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- state ------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._is_connected

    def backlog(self) -> int:
        """Bytes in the spool not yet acknowledged by the broker."""
        return self._spool.used_bytes() if self._spool is not None else 0

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until everything spooled so far is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while not self._is_drained():
            self._drained.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), min(remaining, 0.1))
        return True

    def _is_drained(self) -> bool:
        pump, spool = self._pump, self._spool
        if pump is None or spool is None:
            return True
        return not self._writes and not pump.in_flight and not spool.has_pending(pump.read_pos)

    # -- taking messages --------------------------------------------------------------
    async def submit(self, messages: Sequence[CanonicalMessage], *, dedup_key: str | None) -> bool:
        """``UplinkSink.submit``: durable on disk when this returns True; False for a retry."""
        outbound = [
            OutboundMessage(device_topic(m.device_id, m.kind), m.payload, m.retain)
            for m in messages
        ]
        return await self._enqueue(outbound, dedup_key)

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        """Spool messages of the gateway's own (command statuses) behind the uplinks."""
        await self._enqueue(list(messages), None)

    async def _enqueue(self, messages: list[OutboundMessage], dedup_key: str | None) -> bool:
        if not self._is_accepting or self._loop is None:
            raise RuntimeError("forwarder is not running; use `async with`")
        spool = self._spool
        assert spool is not None
        if spool.is_full():
            raise SpoolFull(spool.used_bytes(), spool.max_bytes)
        write = _Write(messages, dedup_key, self._loop.create_future())
        self._outstanding.add(write.done)
        write.done.add_done_callback(self._outstanding.discard)
        self._writes.append(write)
        self._write_wanted.set()
        return await write.done

    async def _write_loop(self) -> None:
        while True:
            await self._write_wanted.wait()
            self._write_wanted.clear()
            batch, self._writes = self._writes, []
            if not batch:
                continue
            try:
                taken = await asyncio.to_thread(self._write_batch, batch)
            except Exception as exc:  # disk trouble: each waiting ingress answers 5.xx
                log.error("forwarder: spool write failed: %s", exc)
                for w in batch:
                    if not w.done.done():
                        w.done.set_exception(exc)
                continue
            for w, is_taken in zip(batch, taken, strict=True):
                if not w.done.done():
                    w.done.set_result(is_taken)
                if w.dedup_key is not None:
                    if is_taken:
                        self.stats.accepted += 1
                    else:
                        self.stats.duplicates += 1
            self._pump_wanted.set()

    def _write_batch(self, batch: list[_Write]) -> list[bool]:
        """Worker thread: drop retries, append and fsync the rest, then remember the keys."""
        spool, db = self._spool, self._db
        assert spool is not None and db is not None
        now = self._clock()
        keys = [w.dedup_key for w in batch if w.dedup_key is not None]
        seen: set[str] = set()
        if keys:
            with db.read() as conn:
                for chunk_start in range(0, len(keys), 500):
                    chunk = keys[chunk_start : chunk_start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT key FROM gateway_dedup WHERE key IN ({marks}) AND seen_at > ?",
                        (*chunk, now - self.dedup_window_s),
                    ).fetchall()
                    seen.update(r["key"] for r in rows)
        taken: list[bool] = []
        records: list[tuple[str, bytes, float]] = []
        new_keys: list[str] = []
        for w in batch:
            if w.dedup_key is not None and w.dedup_key in seen:
                taken.append(False)
                continue
            if w.dedup_key is not None:
                seen.add(w.dedup_key)  # a retry inside the same batch
                new_keys.append(w.dedup_key)
            taken.append(True)
            records += [
                (m.topic, (_RETAIN if m.retain else _NO_RETAIN) + m.payload, now)
                for m in w.messages
            ]
        spool.append(records)
        self.stats.spooled += len(records)
        if new_keys:
            with db.write() as conn:
                conn.executemany(
                    "INSERT INTO gateway_dedup (key, seen_at) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at",
                    [(k, now) for k in new_keys],
                )
                if now - self._last_prune > _PRUNE_EVERY_S:
                    conn.execute(
                        "DELETE FROM gateway_dedup WHERE seen_at <= ?", (now - self.dedup_window_s,)
                    )
                    self._last_prune = now
        return taken

    # -- forwarding -------------------------------------------------------------------
    async def _pump_loop(self) -> None:
        pump, spool = self._pump, self._spool
        assert pump is not None and spool is not None
        committed = spool.checkpoint
        while not self._is_pump_stopping:
            try:
                committed = await self._pump_step(pump, spool, committed)
            except Exception:  # a disk or paho hiccup must not stop forwarding for good
                log.exception("forwarder: pump step failed; retrying in 1 s")
                pump.read_pos = pump.sent_upto  # read again whatever paho did not take
                await asyncio.sleep(1.0)
        self._settle(pump)
        if pump.acked_upto is not None and pump.acked_upto > committed:
            await asyncio.to_thread(spool.commit, pump.acked_upto)

    async def _pump_step(
        self, pump: _Pump, spool: Spool, committed: SpoolPosition
    ) -> SpoolPosition:
        self._pump_wanted.clear()
        room = self.window - len(pump.in_flight)
        if room > 0 and spool.has_pending(pump.read_pos):
            records, pump.read_pos = await asyncio.to_thread(
                spool.read, pump.read_pos, max_records=room
            )
            for record in records:
                message = OutboundMessage(
                    record.topic, record.payload[1:], record.payload[:1] == _RETAIN
                )
                self._send(_InFlight(record.end, message))
        self._settle(pump)
        is_drained = self._is_drained()
        is_behind = pump.acked_upto is not None and pump.acked_upto > committed
        # The checkpoint costs an fsync: under load it moves every commit_interval_s (a
        # crash re-sends at most that much, which QoS 1 allows), at once when idle.
        now = time.monotonic()
        if is_behind and (is_drained or now - pump.committed_at >= self.commit_interval_s):
            assert pump.acked_upto is not None
            committed = pump.acked_upto
            await asyncio.to_thread(spool.commit, committed)
            pump.committed_at = now
            is_behind = False
        if is_drained:
            self._drained.set()
        if not self._pump_wanted.is_set() and (
            len(pump.in_flight) >= self.window or not spool.has_pending(pump.read_pos)
        ):
            if is_behind:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pump_wanted.wait(), self.commit_interval_s)
            else:
                await self._pump_wanted.wait()
        return committed

    def _send(self, entry: _InFlight) -> None:
        client, pump = self._client, self._pump
        assert client is not None and pump is not None
        m = entry.message
        info = client.publish(m.topic, m.payload, qos=1, retain=m.retain)
        # NO_CONN: paho keeps the message and sends it, in order, after reconnecting
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"paho refused to queue a publish: {mqtt.error_string(info.rc)}")
        pump.in_flight[info.mid] = entry
        pump.order.append(info.mid)
        pump.sent_upto = entry.end

    def _settle(self, pump: _Pump) -> None:
        """Move past the acknowledged prefix of the window, in spool order."""
        while pump.order:
            entry = pump.in_flight[pump.order[0]]
            if not entry.is_acked:
                break
            del pump.in_flight[pump.order.popleft()]
            if entry.reason is not None and entry.reason.is_failure:
                self._refused(entry)
            else:
                self.stats.published += 1
            pump.acked_upto = entry.end

    def _refused(self, entry: _InFlight) -> None:
        self.stats.refused += 1
        reason = f"the broker refused the publish: {entry.reason}"
        log.error("forwarder: %s on %s; dead-lettered", reason, entry.message.topic)
        if self._dead_letters is not None:
            device_id = (
                entry.message.topic.split("/")[3] if "/dev/" in entry.message.topic else None
            )
            self._dead_letters.add(
                topic=entry.message.topic,
                payload=entry.message.payload,
                code="refused_by_broker",
                reason=reason,
                device_id=device_id,
            )

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        pump = self._pump
        entry = pump.in_flight.get(mid) if pump is not None else None
        if entry is None:
            return
        entry.is_acked = True
        entry.reason = reason
        self._pump_wanted.set()

    # -- paho callbacks (network thread) ----------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            log.error("forwarder: %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        receive_max = getattr(props, "ReceiveMaximum", None)
        if receive_max is not None and receive_max < self.window:
            self.window = receive_max  # more in flight than that is a protocol error
        self._is_connected = True
        log.info("forwarder: connected to %s:%d", self.host, self.port)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if self._is_connected and not self._is_stopping:
            log.warning(
                "forwarder: lost %s:%d (%s); spooling until it is back",
                self.host,
                self.port,
                reason,
            )
        self._is_connected = False

    def _on_publish(
        self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties | None
    ) -> None:
        # one wake-up of the event loop for however many PUBACKs arrive meanwhile
        with self._acks_lock:
            self._acks.append((mid, reason))
            if self._is_ack_wake_pending:
                return
            self._is_ack_wake_pending = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._take_acks)

    def _take_acks(self) -> None:
        with self._acks_lock:
            acks = list(self._acks)
            self._acks.clear()
            self._is_ack_wake_pending = False
        for mid, reason in acks:
            self._acked(mid, reason)
