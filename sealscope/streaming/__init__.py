"""The partitioned batch log between ingest and detector workers (NATS JetStream)."""

from sealscope.streaming.batches import (
    LoggedBatch,
    decode_batch,
    encode_batch,
    message_id,
    partition_of,
)
from sealscope.streaming.jetstream import (
    STORED_AT_HEADER,
    BatchPublisher,
    CheckpointLost,
    Checkpoints,
    LogConfig,
    PartitionLeases,
    connect,
    delete_log,
    ensure_log,
    open_partition,
)

__all__ = [
    "STORED_AT_HEADER",
    "BatchPublisher",
    "CheckpointLost",
    "Checkpoints",
    "LogConfig",
    "LoggedBatch",
    "PartitionLeases",
    "connect",
    "decode_batch",
    "delete_log",
    "encode_batch",
    "ensure_log",
    "message_id",
    "open_partition",
    "partition_of",
]
