"""The on-disk spool: every message is here, fsynced, before the broker gets its PUBACK.

Segment files ``seg-<n>.log`` hold length- and CRC-framed records in arrival order; a
``checkpoint`` file says how far the store has durably taken them. A restart replays from the
checkpoint, so a crash between "acknowledged" and "stored" loses nothing (the store writes are
idempotent, so a replay that overlaps what was stored collapses).

A torn record at the tail (crash mid-write) was never acknowledged, so it is cut off on open.
The spool is bounded by ``max_bytes``: ``is_full`` tells the caller to stop taking messages
(back-pressure) instead of dropping anything.

Poison messages: ``begin(record)`` marks the record being processed in a small memory-mapped
``inflight`` file (a store to shared memory, no syscall; the kernel keeps it when the process
dies) and ``finish()`` clears it. A marker still set on open names the record that was in
processing when the process died, and ``begin`` then says how many crashes it has seen, so
the caller can dead-letter a message that keeps killing the process instead of replaying it
forever. A copy of that record with the same topic and payload counts as the same record:
a message that killed the process before its PUBACK comes again from the broker.

Thread use: one thread appends, one reads and commits; they share only ``end`` under a lock.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["Spool", "SpoolPosition", "SpoolRecord"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")  # body length, crc32(body)
_BODY_HEAD = struct.Struct("<dH")  # arrival time (Unix s), topic length
_MAX_BODY = 64 << 20
# record start and end (segment, offset), crashes seen before this try
_INFLIGHT = struct.Struct("<QQQQI")
_INFLIGHT_FILE = "inflight"
_INFLIGHT_SIZE = _INFLIGHT.size + 4  # + crc32, so a marker torn by the kill is ignored


@dataclass(frozen=True, slots=True, order=True)
class SpoolPosition:
    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    topic: str
    payload: bytes
    arrival_s: float
    end: SpoolPosition  # position just after this record: commit it once the record is stored
    start: SpoolPosition


@dataclass(frozen=True, slots=True)
class _Crashed:
    """The record that was in processing when the process died, and how often it was."""

    end: SpoolPosition
    topic: str
    payload: bytes
    crashes: int


def _segment_name(n: int) -> str:
    return f"seg-{n:012d}.log"


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 64 << 20) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._writer: BinaryIO | None = None
        self._reader: tuple[int, BinaryIO] | None = None
        self._segment_sizes: dict[int, int] = {}
        self._checkpoint = SpoolPosition(1, 0)
        self._end = SpoolPosition(1, 0)
        self._inflight: mmap.mmap | None = None
        self._crashed: _Crashed | None = None
        self._open()
        self._load_inflight()

    # -- opening and repair ------------------------------------------------------------
    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._checkpoint = self._load_checkpoint()
        segments = sorted(
            int(p.name[4:16]) for p in self.directory.glob("seg-*.log") if p.name[4:16].isdigit()
        )
        for n in [n for n in segments if n < self._checkpoint.segment]:
            # stored already; a crash came between the checkpoint and the unlink
            (self.directory / _segment_name(n)).unlink()
        segments = [n for n in segments if n >= self._checkpoint.segment]
        if not segments:
            segments = [max(self._checkpoint.segment, 1)]
            (self.directory / _segment_name(segments[0])).touch()
        for n in segments:
            self._segment_sizes[n] = (self.directory / _segment_name(n)).stat().st_size
        last = segments[-1]
        good = self._valid_length(last)
        if good < self._segment_sizes[last]:
            log.warning(
                "spool: cutting a torn record at the end of %s (%d bytes, never acknowledged)",
                _segment_name(last),
                self._segment_sizes[last] - good,
            )
            with open(self.directory / _segment_name(last), "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
            self._segment_sizes[last] = good
        self._end = SpoolPosition(last, self._segment_sizes[last])
        self._writer = open(self.directory / _segment_name(last), "ab")  # noqa: SIM115

    def _load_checkpoint(self) -> SpoolPosition:
        path = self.directory / "checkpoint"
        try:
            segment, offset = path.read_text().split()
            return SpoolPosition(int(segment), int(offset))
        except FileNotFoundError:
            return SpoolPosition(1, 0)
        except ValueError as exc:
            # A checkpoint is written atomically, so this is outside damage: replay everything
            # rather than guess; replays are idempotent.
            log.error("spool: unreadable checkpoint (%s); replaying from the first segment", exc)
            return SpoolPosition(0, 0)

    def _valid_length(self, segment: int) -> int:
        """Bytes of whole, intact records at the start of a segment."""
        offset = 0
        with open(self.directory / _segment_name(segment), "rb") as f:
            while True:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return offset
                length, crc = _HEADER.unpack(header)
                body = f.read(length) if length <= _MAX_BODY else b""
                if len(body) != length or zlib.crc32(body) != crc:
                    return offset
                offset += _HEADER.size + length

    def _load_inflight(self) -> None:
        try:
            data = (self.directory / _INFLIGHT_FILE).read_bytes()
        except FileNotFoundError:
            return
        if len(data) != _INFLIGHT_SIZE or not any(data):
            return
        body, (crc,) = data[: _INFLIGHT.size], struct.unpack("<I", data[_INFLIGHT.size :])
        if zlib.crc32(body) != crc:
            log.warning("spool: ignoring a torn in-flight marker")
            return
        start_seg, start_off, end_seg, end_off, crashes = _INFLIGHT.unpack(body)
        end = SpoolPosition(end_seg, end_off)
        if not (self._checkpoint <= SpoolPosition(start_seg, start_off) < end <= self._end):
            return  # outside what is spooled: it was stored after all
        records, _ = self.read(SpoolPosition(start_seg, start_off), max_records=1)
        if not records or records[0].end != end:
            return
        record = records[0]
        self._crashed = _Crashed(end, record.topic, record.payload, crashes + 1)
        log.warning(
            "spool: the last run died while processing a message on %s (crash %d with it)",
            record.topic,
            crashes + 1,
        )

    # -- processing marker ---------------------------------------------------------------
    def begin(self, record: SpoolRecord) -> int:
        """Mark ``record`` as in processing; returns how many crashes it was in flight for."""
        if self._inflight is None:
            path = self.directory / _INFLIGHT_FILE
            with open(path, "a+b") as f:
                f.truncate(_INFLIGHT_SIZE)
                self._inflight = mmap.mmap(f.fileno(), _INFLIGHT_SIZE)
        crashes = 0
        crashed = self._crashed
        if crashed is not None and (
            record.end == crashed.end
            or (record.payload == crashed.payload and record.topic == crashed.topic)
        ):
            crashes = crashed.crashes
        start, end = record.start, record.end
        body = _INFLIGHT.pack(start.segment, start.offset, end.segment, end.offset, crashes)
        self._inflight[:] = body + struct.pack("<I", zlib.crc32(body))
        return crashes

    def finish(self) -> None:
        """The record from ``begin`` is handled (stored, pending, or dead-lettered)."""
        if self._inflight is not None:
            self._inflight[:] = bytes(_INFLIGHT_SIZE)

    # -- state -------------------------------------------------------------------------
    @property
    def end(self) -> SpoolPosition:
        with self._lock:
            return self._end

    @property
    def checkpoint(self) -> SpoolPosition:
        return self._checkpoint

    def used_bytes(self) -> int:
        with self._lock:
            total = sum(
                size for n, size in self._segment_sizes.items() if n >= self._checkpoint.segment
            )
        return max(0, total - self._checkpoint.offset)

    def is_full(self) -> bool:
        return self.used_bytes() >= self.max_bytes

    def has_pending(self, position: SpoolPosition) -> bool:
        return position < self.end

    # -- writing -----------------------------------------------------------------------
    def append(self, records: Sequence[tuple[str, bytes, float]]) -> SpoolPosition:
        """Write records and fsync them; returns the new end. Durable when this returns."""
        if not records:
            return self.end
        assert self._writer is not None, "spool is closed"
        chunks = []
        for topic, payload, arrival_s in records:
            topic_b = topic.encode()
            body = _BODY_HEAD.pack(arrival_s, len(topic_b)) + topic_b + payload
            chunks.append(_HEADER.pack(len(body), zlib.crc32(body)))
            chunks.append(body)
        data = b"".join(chunks)
        self._writer.write(data)
        self._writer.flush()
        os.fsync(self._writer.fileno())
        with self._lock:
            seg = self._end.segment
            self._segment_sizes[seg] += len(data)
            self._end = SpoolPosition(seg, self._segment_sizes[seg])
            if self._segment_sizes[seg] >= self.segment_bytes:
                self._roll(seg + 1)
            return self._end

    def _roll(self, segment: int) -> None:
        assert self._writer is not None
        self._writer.close()
        path = self.directory / _segment_name(segment)
        self._writer = open(path, "ab")  # noqa: SIM115
        self._fsync_dir()
        self._segment_sizes[segment] = 0
        self._end = SpoolPosition(segment, 0)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading and committing --------------------------------------------------------
    def read(
        self, start: SpoolPosition, *, max_records: int = 10_000
    ) -> tuple[list[SpoolRecord], SpoolPosition]:
        """Records from ``start`` up to the durable end; returns them and where to go on."""
        end = self.end
        out: list[SpoolRecord] = []
        pos = start
        with self._lock:
            segments = sorted(n for n in self._segment_sizes if n >= start.segment)
        for n in segments:
            if len(out) >= max_records or pos >= end:
                break
            if n > pos.segment:
                pos = SpoolPosition(n, 0)
            limit = end.offset if n == end.segment else self._segment_sizes[n]
            f = self._reader_for(n)
            f.seek(pos.offset)
            offset = pos.offset
            while offset < limit and len(out) < max_records:
                start_offset = offset
                length, crc = _HEADER.unpack(f.read(_HEADER.size))
                body = f.read(length)
                if zlib.crc32(body) != crc:
                    raise OSError(f"spool: corrupt record in {_segment_name(n)} at {offset}")
                arrival_s, topic_len = _BODY_HEAD.unpack_from(body)
                head = _BODY_HEAD.size
                offset += _HEADER.size + length
                out.append(
                    SpoolRecord(
                        topic=body[head : head + topic_len].decode(),
                        payload=body[head + topic_len :],
                        arrival_s=arrival_s,
                        end=SpoolPosition(n, offset),
                        start=SpoolPosition(n, start_offset),
                    )
                )
            pos = SpoolPosition(n, offset)
            if offset >= limit and n < end.segment:
                pos = SpoolPosition(n + 1, 0)
        return out, pos

    def _reader_for(self, segment: int) -> BinaryIO:
        if self._reader is None or self._reader[0] != segment:
            if self._reader is not None:
                self._reader[1].close()
            self._reader = (segment, open(self.directory / _segment_name(segment), "rb"))  # noqa: SIM115
        return self._reader[1]

    def commit(self, position: SpoolPosition) -> None:
        """Record that everything before ``position`` is stored; drop whole segments behind it."""
        if position <= self._checkpoint:
            return
        tmp = self.directory / "checkpoint.tmp"
        with open(tmp, "w") as f:
            f.write(f"{position.segment} {position.offset}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / "checkpoint")
        self._checkpoint = position
        with self._lock:
            done = [n for n in self._segment_sizes if n < position.segment]
            for n in done:
                del self._segment_sizes[n]
        for n in done:
            if self._reader is not None and self._reader[0] == n:
                self._reader[1].close()
                self._reader = None
            (self.directory / _segment_name(n)).unlink(missing_ok=True)
        if done:
            self._fsync_dir()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._inflight is not None:
            self._inflight.close()
            self._inflight = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None
