"""A round's telemetry as columns (``SampleBatch``): the internal, binary form of a round.

For runs that never publish (benchmarks, year-long evaluations) the JSON text of every
uplink is the largest cost of a round and a consumer would only parse it back into
floats. ``Fleet.step_batch()`` returns the same round as arrays instead: per device that
sent telemetry, its ``seq``, its clock's sample times and every reading (NaN = not
measured), rounded exactly as the JSON payload writes them. ``frame()`` packs it into
one buffer (a small JSON header, then the raw little-endian arrays) for a process
boundary or a file; ``SampleBatch.from_frame`` reads it back.

A batch carries each round's new samples once. Samples a device held back after an
unacknowledged uplink are not repeated: ``is_acked`` and ``held_samples`` say which
uplinks carried them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["SampleBatch"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_MAGIC = b"SSB1"


@dataclass(slots=True)
class SampleBatch:
    """One round's telemetry, one row per device that sent it, in device order."""

    index: int  # the round
    device: I64  # device slot per row
    seq: I64
    t: F64  # (rows, samples): the device clock's event times, s
    readings: dict[str, F64]  # field -> (rows, samples); NaN = not measured
    copies: I64  # copies that reached the network: 0 = lost, > 1 = retries duplicated it
    attempts: I64
    is_acked: npt.NDArray[np.bool_]
    wake_t: F64  # true event time of the transmission
    held_samples: I64  # older samples this uplink carried again (unacknowledged before)
    events: list[bytes]  # the round's alarms, as the JSON ``Event`` payloads published

    def __len__(self) -> int:
        return int(self.device.size)

    @property
    def samples(self) -> int:
        return int(self.t.size)

    def frame(self) -> memoryview:
        """The batch as one buffer: ``SSB1``, a 4-byte header length, a JSON header naming
        the arrays, then the arrays back to back (little-endian), then the events. Each
        array is copied once, straight into place; write the view to a file or socket."""
        parts = self.frame_parts()
        out = np.empty(sum(p.nbytes for p in parts), dtype=np.uint8)
        at = 0
        for part in parts:
            out[at : at + part.nbytes] = np.frombuffer(part, dtype=np.uint8)
            at += part.nbytes
        return out.data

    def frame_parts(self) -> list[memoryview]:
        """``frame()`` as the pieces it joins, without copying the arrays: for
        ``file.writelines`` or ``socket.sendmsg`` (gather writes), the bytes are the same."""
        arrays = [(name, np.ascontiguousarray(a)) for name, a in self._arrays()]
        header = {
            "index": self.index,
            "arrays": [[name, a.dtype.str, list(a.shape)] for name, a in arrays],
            "events": [len(e) for e in self.events],
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        parts = [memoryview(_MAGIC + len(head).to_bytes(4, "little") + head)]
        parts += [a.reshape(-1).data.cast("B") for _, a in arrays]
        parts += [memoryview(e) for e in self.events]
        return parts

    @classmethod
    def from_frame(cls, frame: bytes | memoryview) -> SampleBatch:
        data = memoryview(frame).cast("B")
        if bytes(data[:4]) != _MAGIC:
            raise ValueError("not a sample batch frame")
        size = int.from_bytes(data[4:8], "little")
        header = json.loads(bytes(data[8 : 8 + size]))
        at = 8 + size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in header["arrays"]:
            a = np.frombuffer(data, dtype=np.dtype(dtype), count=int(np.prod(shape)), offset=at)
            arrays[name] = a.reshape(shape)
            at += a.nbytes
        events = []
        for length in header["events"]:
            events.append(bytes(data[at : at + length]))
            at += length
        fixed = ("device", "seq", "t", "copies", "attempts", "is_acked", "wake_t", "held_samples")
        return cls(
            index=header["index"],
            readings={k[2:]: v for k, v in arrays.items() if k.startswith("r:")},
            events=events,
            **{k: arrays[k] for k in fixed},
        )

    def _arrays(self) -> list[tuple[str, np.ndarray]]:
        return [
            ("device", self.device),
            ("seq", self.seq),
            ("t", self.t),
            ("copies", self.copies),
            ("attempts", self.attempts),
            ("is_acked", self.is_acked),
            ("wake_t", self.wake_t),
            ("held_samples", self.held_samples),
            *((f"r:{name}", column) for name, column in self.readings.items()),
        ]
