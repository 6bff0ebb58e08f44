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

Worker processes (ingest's ``SEALSCOPE_INGEST_WORKERS``) read whole records between two
positions the owner hands them (``ranges``, then ``read_range`` in the worker), each with an
in-flight marker of its own (``inflight-w<slot>``, an ``InflightMarker``); the owner reads
all markers on open and after a worker died (``load_crashed``). Records are immutable once
fsynced and a segment is deleted only behind the checkpoint, so the workers need no lock.
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

__all__ = [
    "CrashedRecord",
    "InflightMarker",
    "Spool",
    "SpoolPosition",
    "SpoolRecord",
    "read_range",
]

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
class CrashedRecord:
    """The record that was in processing when a process died, and how often it was."""

    end: SpoolPosition
    topic: str
    payload: bytes
    crashes: int


def _segment_name(n: int) -> str:
    return f"seg-{n:012d}.log"


def _parse_records(data: bytes, segment: int, base: int) -> list[SpoolRecord]:
    """The whole records in ``data``, read from ``segment`` at offset ``base``."""
    out = []
    offset = 0
    size = len(data)
    unpack_header, unpack_head = _HEADER.unpack_from, _BODY_HEAD.unpack_from
    head = _BODY_HEAD.size
    while offset < size:
        length, crc = unpack_header(data, offset)
        start = offset + _HEADER.size
        body = data[start : start + length]
        if len(body) != length or zlib.crc32(body) != crc:
            at = base + offset
            raise OSError(f"spool: corrupt record in {_segment_name(segment)} at {at}")
        arrival_s, topic_len = unpack_head(body)
        out.append(
            SpoolRecord(
                topic=body[head : head + topic_len].decode(),
                payload=body[head + topic_len :],
                arrival_s=arrival_s,
                end=SpoolPosition(segment, base + start + length),
                start=SpoolPosition(segment, base + offset),
            )
        )
        offset = start + length
    return out


def read_range(directory: Path, start: SpoolPosition, end: SpoolPosition) -> list[SpoolRecord]:
    """The records between two record boundaries of one segment (what ``ranges`` hands out)."""
    if start.segment != end.segment or end.offset < start.offset:
        raise ValueError(f"not a range within one segment: {start} .. {end}")
    with open(Path(directory) / _segment_name(start.segment), "rb") as f:
        f.seek(start.offset)
        data = f.read(end.offset - start.offset)
    if len(data) != end.offset - start.offset:
        raise OSError(f"spool: {_segment_name(start.segment)} is shorter than {end.offset}")
    return _parse_records(data, start.segment, start.offset)


class InflightMarker:
    """The record one process has in processing, in a memory-mapped file the kernel keeps
    when the process dies; ``begin`` says how many crashes the record was in flight for."""

    def __init__(self, path: Path, crashed: Sequence[CrashedRecord] = ()) -> None:
        self.path = Path(path)
        self.crashed = list(crashed)
        self._map: mmap.mmap | None = None

    def begin(self, record: SpoolRecord) -> int:
        if self._map is None:
            with open(self.path, "a+b") as f:
                f.truncate(_INFLIGHT_SIZE)
                self._map = mmap.mmap(f.fileno(), _INFLIGHT_SIZE)
        crashes = 0
        for crashed in self.crashed:
            if record.end == crashed.end or (
                record.payload == crashed.payload and record.topic == crashed.topic
            ):
                crashes = crashed.crashes
                break
        start, end = record.start, record.end
        body = _INFLIGHT.pack(start.segment, start.offset, end.segment, end.offset, crashes)
        self._map[:] = body + struct.pack("<I", zlib.crc32(body))
        return crashes

    def finish(self) -> None:
        if self._map is not None:
            self._map[:] = bytes(_INFLIGHT_SIZE)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 64 << 20) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # one reader handle: read, ranges, load_crashed
        self._writer: BinaryIO | None = None
        self._reader: tuple[int, BinaryIO] | None = None
        self._segment_sizes: dict[int, int] = {}
        self._checkpoint = SpoolPosition(1, 0)
        self._end = SpoolPosition(1, 0)
        self._open()
        self._marker = InflightMarker(self.directory / _INFLIGHT_FILE, self.load_crashed())

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

    def load_crashed(self) -> list[CrashedRecord]:
        """The records in processing when this spool's processes last died (every marker:
        the owner's ``inflight`` and each worker's ``inflight-w<slot>``)."""
        crashed = []
        for path in sorted(self.directory.glob(f"{_INFLIGHT_FILE}*")):
            found = self._crashed_in(path)
            if found is not None:
                crashed.append(found)
        return crashed

    def _crashed_in(self, path: Path) -> CrashedRecord | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != _INFLIGHT_SIZE or not any(data):
            return None
        body, (crc,) = data[: _INFLIGHT.size], struct.unpack("<I", data[_INFLIGHT.size :])
        if zlib.crc32(body) != crc:
            log.warning("spool: ignoring a torn in-flight marker")
            return None
        start_seg, start_off, end_seg, end_off, crashes = _INFLIGHT.unpack(body)
        end = SpoolPosition(end_seg, end_off)
        if not (self._checkpoint <= SpoolPosition(start_seg, start_off) < end <= self.end):
            return None  # outside what is spooled: it was stored after all
        records, _ = self.read(SpoolPosition(start_seg, start_off), max_records=1)
        if not records or records[0].end != end:
            return None
        record = records[0]
        log.warning(
            "spool: a process died while processing a message on %s (crash %d with it)",
            record.topic,
            crashes + 1,
        )
        return CrashedRecord(end, record.topic, record.payload, crashes + 1)

    # -- processing marker ---------------------------------------------------------------
    def begin(self, record: SpoolRecord) -> int:
        """Mark ``record`` as in processing; returns how many crashes it was in flight for."""
        return self._marker.begin(record)

    def finish(self) -> None:
        """The record from ``begin`` is handled (stored, pending, or dead-lettered)."""
        self._marker.finish()

    def worker_marker_path(self, slot: int) -> Path:
        return self.directory / f"{_INFLIGHT_FILE}-w{slot}"

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
        with self._read_lock:
            return self._read(start, max_records)

    def _read(
        self, start: SpoolPosition, max_records: int
    ) -> tuple[list[SpoolRecord], SpoolPosition]:
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
                length, _crc = _HEADER.unpack(f.read(_HEADER.size))
                f.seek(-_HEADER.size, os.SEEK_CUR)
                out.extend(_parse_records(f.read(_HEADER.size + length), n, offset))
                offset += _HEADER.size + length
            pos = SpoolPosition(n, offset)
            if offset >= limit and n < end.segment:
                pos = SpoolPosition(n + 1, 0)
        return out, pos

    def ranges(
        self, start: SpoolPosition, *, max_records: int, max_bytes: int, max_ranges: int
    ) -> list[tuple[SpoolPosition, SpoolPosition]]:
        """Spans of whole records from ``start`` to the durable end, each within one segment
        and at most ``max_records`` and (but for a single larger record) ``max_bytes``."""
        with self._read_lock:
            return self._ranges(start, max_records, max_bytes, max_ranges)

    def _ranges(
        self, start: SpoolPosition, max_records: int, max_bytes: int, max_ranges: int
    ) -> list[tuple[SpoolPosition, SpoolPosition]]:
        end = self.end
        out: list[tuple[SpoolPosition, SpoolPosition]] = []
        pos = start
        with self._lock:
            segments = sorted(n for n in self._segment_sizes if n >= start.segment)
        for n in segments:
            if len(out) >= max_ranges or pos >= end:
                break
            if n > pos.segment:
                pos = SpoolPosition(n, 0)
            limit = end.offset if n == end.segment else self._segment_sizes[n]
            f = self._reader_for(n)
            offset = pos.offset
            while offset < limit and len(out) < max_ranges:
                # only the headers are walked here: the worker parses and checks the records
                f.seek(offset)
                chunk = f.read(min(limit - offset, max_bytes))
                at, count = 0, 0
                while at + _HEADER.size <= len(chunk) and count < max_records:
                    length, _crc = _HEADER.unpack_from(chunk, at)
                    if at + _HEADER.size + length > len(chunk):
                        break
                    at += _HEADER.size + length
                    count += 1
                if count == 0:  # one record larger than max_bytes
                    f.seek(offset)
                    length, _crc = _HEADER.unpack(f.read(_HEADER.size))
                    at = _HEADER.size + length
                out.append((SpoolPosition(n, offset), SpoolPosition(n, offset + at)))
                offset += at
            pos = SpoolPosition(n, offset)
        return out

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
            with self._read_lock:
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
        self._marker.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None
