"""The partitioned batch log on NATS JetStream: publisher, partition leases, checkpoints.

One stream (``LogConfig.stream``) holds subjects ``{subject}.{partition}``; ingest publishes
each stored telemetry message to its device's partition with a ``Nats-Msg-Id`` (the digest
of its body), so a message two ingest instances both stored is kept once within the
stream's duplicate window. Partitioning is done by the publisher (``partition_of``), not by
a server-side ``partition()`` subject mapping: that needs the server's configuration, and a
publisher-side hash works on any JetStream (and the same way on Kafka, see
docs/scale-out.md).

Detector workers coordinate through two JetStream buckets named after the stream:

- ``{stream}_leases`` (KV, entries expire after ``lease_ttl_s``): ``p.{n}`` names the worker
  owning partition n, taken with a create (fails while someone holds it) and renewed with a
  compare-and-set on its revision, so a worker that stops renewing (dead, partitioned off)
  loses it and another one takes it; ``w.{worker}`` is each worker's heartbeat, so workers
  can share partitions out evenly.
- ``{stream}_state`` (object store) and ``{stream}_checkpoints`` (KV): the partition's
  checkpoint (detector state and the log position it covers), written by its owner and
  read by the next one (see ``Checkpoints``).

Each partition is read through one durable pull consumer (``detect-p{n}``), re-created by
the owner at the position its checkpoint covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats import nuid
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from sealscope import wire
from sealscope.config import Settings
from sealscope.registry import Device
from sealscope.streaming.batches import encode_batch, message_id, partition_of

__all__ = [
    "STORED_AT_HEADER",
    "BatchPublisher",
    "CheckpointLost",
    "Checkpoints",
    "LogConfig",
    "PartitionLeases",
    "connect",
    "delete_log",
    "ensure_log",
    "open_partition",
]

log = logging.getLogger(__name__)

STORED_AT_HEADER = "Sealscope-Stored-At"  # wall time ingest had the batch in the store


@dataclass(frozen=True)
class LogConfig:
    url: str
    stream: str = "SEALSCOPE_BATCHES"
    subject: str = "sealscope.batches"
    partitions: int = 8
    lease_ttl_s: float = 5.0
    duplicate_window_s: float = 600.0
    max_age_s: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.stream):
            raise ValueError(f"stream name {self.stream!r}: letters, digits, _ and - only")
        if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", self.subject):
            raise ValueError(f"subject {self.subject!r} is not a plain NATS subject")
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> LogConfig:
        if settings.nats_url is None:
            raise ValueError("nats_url is not set")
        return cls(
            url=settings.nats_url,
            stream=settings.nats_stream,
            subject=settings.nats_subject,
            partitions=settings.nats_partitions,
            lease_ttl_s=settings.nats_lease_ttl_s,
        )

    def subject_of(self, partition: int) -> str:
        return f"{self.subject}.{partition}"

    def consumer_of(self, partition: int) -> str:
        return f"detect-p{partition}"

    @property
    def leases_bucket(self) -> str:
        return f"{self.stream}_leases"

    @property
    def state_bucket(self) -> str:
        return f"{self.stream}_state"

    @property
    def pointers_bucket(self) -> str:
        return f"{self.stream}_checkpoints"


async def connect(url: str, *, name: str = "sealscope") -> NATS:
    """A client that reconnects for ever (a broker restart is an outage, not an end)."""
    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
    )


async def ensure_log(js: JetStreamContext, cfg: LogConfig) -> None:
    """Create the stream and the two buckets if missing (idempotent)."""
    config = StreamConfig(
        name=cfg.stream,
        subjects=[f"{cfg.subject}.*"],
        storage=StorageType.FILE,
        duplicate_window=cfg.duplicate_window_s,
        max_age=cfg.max_age_s,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)  # exists with other limits: take ours
    await js.create_key_value(
        KeyValueConfig(bucket=cfg.leases_bucket, ttl=cfg.lease_ttl_s, history=1)
    )
    await js.create_object_store(cfg.state_bucket)
    await js.create_key_value(KeyValueConfig(bucket=cfg.pointers_bucket, history=1))


async def delete_log(js: JetStreamContext, cfg: LogConfig) -> None:
    """Remove the stream and its buckets (tests, and tearing a deployment down)."""
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(cfg.stream)
    with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
        await js.delete_key_value(cfg.leases_bucket)
    with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
        await js.delete_object_store(cfg.state_bucket)
    with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
        await js.delete_key_value(cfg.pointers_bucket)


@dataclass
class PublisherStats:
    published: int = 0
    duplicates: int = 0  # the stream already had the message (a replay, another instance)
    retries: int = 0


class BatchPublisher:
    """Ingest's side: put stored telemetry on the log, each on its device's partition.

    ``put`` returns only when JetStream acknowledged every message (stored, or recognised
    as a duplicate); while NATS is down it retries with backoff, so ingest holds its spool
    checkpoint and nothing stored is missing from the log.
    """

    def __init__(self, cfg: LogConfig, *, chunk: int = 256, timeout_s: float = 5.0) -> None:
        self.cfg = cfg
        self.stats = PublisherStats()
        self._chunk = chunk
        self._timeout_s = timeout_s
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None

    async def __aenter__(self) -> BatchPublisher:
        self._nc = await connect(self.cfg.url, name="sealscope-ingest")
        self._js = self._nc.jetstream()
        await ensure_log(self._js, self.cfg)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()

    async def put(self, batch: Sequence[tuple[Device, wire.Telemetry]]) -> None:
        assert self._js is not None, "use BatchPublisher as an async context manager"
        stored_at = f"{time.time():.6f}"
        pending = []
        for device, telemetry in batch:
            body = encode_batch(device, telemetry)
            subject = self.cfg.subject_of(partition_of(device.device_id, self.cfg.partitions))
            pending.append((subject, body, message_id(body)))
        delay = 0.2
        while pending:
            failed = []
            for i in range(0, len(pending), self._chunk):
                part = pending[i : i + self._chunk]
                results = await asyncio.gather(
                    *(
                        self._js.publish(
                            subject,
                            body,
                            timeout=self._timeout_s,
                            stream=self.cfg.stream,
                            headers={"Nats-Msg-Id": msg_id, STORED_AT_HEADER: stored_at},
                        )
                        for subject, body, msg_id in part
                    ),
                    return_exceptions=True,
                )
                for item, result in zip(part, results, strict=True):
                    if isinstance(result, BaseException):
                        if not isinstance(result, Exception):
                            raise result
                        failed.append((item, result))
                    elif result.duplicate:
                        self.stats.duplicates += 1
                    else:
                        self.stats.published += 1
            if not failed:
                return
            self.stats.retries += 1
            log.warning(
                "batch log: %d of %d messages not acknowledged (%s); retrying in %.1f s",
                len(failed),
                len(pending),
                failed[0][1] or type(failed[0][1]).__name__,
                delay,
            )
            pending = [item for item, _ in failed]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


class PartitionLeases:
    """Who owns which partition, in a KV bucket whose entries expire unless renewed."""

    def __init__(self, kv: KeyValue, owner: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", owner):
            raise ValueError(f"worker id {owner!r}: letters, digits, _ and - only")
        self.kv = kv
        self.owner = owner

    @classmethod
    async def open(cls, js: JetStreamContext, cfg: LogConfig, owner: str) -> PartitionLeases:
        return cls(await js.key_value(cfg.leases_bucket), owner)

    async def try_acquire(self, partition: int) -> int | None:
        """The lease's revision if this worker now holds it, else None."""
        try:
            return await self.kv.create(f"p.{partition}", self.owner.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def renew(self, partition: int, revision: int) -> int | None:
        """The new revision, or None if the lease expired or another worker holds it."""
        try:
            return await self.kv.update(f"p.{partition}", self.owner.encode(), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def release(self, partition: int, revision: int) -> None:
        """Give the lease back at once (if still ours); else it expires after the TTL."""
        # a wrong revision comes back as a plain BadRequestError from a delete
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await self.kv.delete(f"p.{partition}", last=revision)

    async def heartbeat(self) -> None:
        await self.kv.put(f"w.{self.owner}", b"")

    async def leave(self) -> None:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self.kv.delete(f"w.{self.owner}")

    async def workers(self) -> int:
        """Workers whose heartbeat has not expired (this one included)."""
        try:
            keys = await self.kv.keys()
        except nats.js.errors.NoKeysError:
            return 1
        return max(1, sum(1 for k in keys if k.startswith("w.")))


class CheckpointLost(Exception):
    """Another worker saved this partition's checkpoint since we read it: it owns it now."""


class Checkpoints:
    """Each partition's checkpoint: the bytes its owner last saved.

    Every save writes a new object (``p{n}-{nuid}``) and then moves the partition's pointer
    in the KV bucket ``{stream}_checkpoints`` with a compare-and-set on the revision the
    saver last read or wrote; the object it replaced is deleted after. Two workers that
    both believe they own a partition (one stalled past its lease) therefore never write
    the same object, and the one that saves second learns it lost (``CheckpointLost``)
    instead of overwriting the other's state.
    """

    def __init__(self, store: ObjectStore, pointers: KeyValue) -> None:
        self.store = store
        self.pointers = pointers

    @classmethod
    async def open(cls, js: JetStreamContext, cfg: LogConfig) -> Checkpoints:
        return cls(await js.object_store(cfg.state_bucket), await js.key_value(cfg.pointers_bucket))

    async def load(self, partition: int, timeout_s: float = 120.0) -> tuple[bytes | None, int]:
        """(the checkpoint or None, the pointer revision to pass to ``save``)."""
        try:
            entry = await self.pointers.get(f"p{partition}")
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if entry.value is None or entry.revision is None:
            return None, entry.revision or 0
        # the object store's get waits for every chunk: bounded, so a missing chunk is an
        # error the worker retries, not a partition that hangs for ever
        result = await asyncio.wait_for(self.store.get(entry.value.decode()), timeout_s)
        return result.data, entry.revision

    async def save(self, partition: int, data: bytes, revision: int) -> int:
        """Store ``data``; returns the new revision. Raises CheckpointLost if the pointer
        moved since ``revision``."""
        name = f"p{partition}-{nuid.NUID().next().decode()}"
        await self.store.put(name, data)
        key = f"p{partition}"
        old: str | None = None
        try:
            if revision:
                current = await self.pointers.get(key)
                old = current.value.decode() if current.value else None
                new_revision = await self.pointers.update(key, name.encode(), last=revision)
            else:
                new_revision = await self.pointers.create(key, name.encode())
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            with contextlib.suppress(nats.js.errors.Error):
                await self.store.delete(name)
            raise CheckpointLost(f"partition {partition}: saved by another worker") from exc
        if old is not None:
            with contextlib.suppress(nats.js.errors.Error):
                await self.store.delete(old)
        return new_revision

    async def forget(self, partition: int) -> None:
        """Drop the partition's checkpoint (tests; a deliberate re-detection from scratch)."""
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self.pointers.delete(f"p{partition}")


async def open_partition(
    js: JetStreamContext, cfg: LogConfig, partition: int, start_seq: int
) -> Any:
    """The partition's durable consumer, re-created to deliver from ``start_seq`` on (the
    first stream sequence the checkpoint does not cover); returns its pull subscription."""
    name = cfg.consumer_of(partition)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_consumer(cfg.stream, name)
    await js.add_consumer(
        cfg.stream,
        ConsumerConfig(
            durable_name=name,
            filter_subject=cfg.subject_of(partition),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, start_seq),
            # acknowledged on receipt: exactly-once comes from the checkpoint, not from
            # redelivery, and a long ack wait keeps the server from resending meanwhile
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=300.0,
            max_ack_pending=-1,
        ),
    )
    return await js.pull_subscribe_bind(durable=name, stream=cfg.stream)
