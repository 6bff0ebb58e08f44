"""What travels on the partitioned log: one decoded telemetry message of one device.

A ``LoggedBatch`` carries the device's registry attributes with its samples, so a detector
worker needs no registry of its own. The body is MessagePack (msgspec), validated on decode
against the same constraints as the wire contract. Its message id is a digest of the body,
so the same MQTT message stored by two ingest instances (a redelivery after one of them
died before its PUBACK) is one message on the log.

Partitions: ``partition_of`` is a stable hash of the device id (CRC-32, the same in every
process and language, unlike Python's ``hash``) modulo the partition count, so one device's
batches always land on one subject and reach one detector state.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Literal

import msgspec

from sealscope import wire
from sealscope.registry import Device

__all__ = ["LoggedBatch", "decode_batch", "encode_batch", "message_id", "partition_of"]


class LoggedBatch(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    device: Device
    seq: int
    samples: list[wire.Sample]

    @property
    def first_t_s(self) -> float:
        """The earliest event time in the batch, Unix seconds (the reorder key)."""
        return min(wire.time_to_ns(s.t) for s in self.samples) / 1e9


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(LoggedBatch)


def encode_batch(device: Device, telemetry: wire.Telemetry) -> bytes:
    return _encoder.encode(LoggedBatch(1, device, telemetry.seq, telemetry.samples))


def decode_batch(body: bytes) -> LoggedBatch:
    """Raises msgspec.ValidationError / DecodeError (or ValueError from ``Device``)."""
    batch = _decoder.decode(body)
    if not batch.samples:
        raise msgspec.ValidationError("a logged batch has no samples")
    return batch


def message_id(body: bytes) -> str:
    """The JetStream de-duplication id of a body: equal content, equal id."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def partition_of(device_id: str, partitions: int) -> int:
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return zlib.crc32(device_id.encode()) % partitions
