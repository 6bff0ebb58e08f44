"""What a round of the fleet produced (``RoundOutput``) and the radio's running counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from sealscope.wire import Telemetry

__all__ = ["MessageKind", "RadioCounts", "RoundOutput", "Uplink"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MessageKind = Literal["telemetry", "event"]


class Uplink(NamedTuple):
    device_id: str
    telemetry: Telemetry


@dataclass(slots=True)
class RoundOutput:
    """The messages one round produced, in order of their (true) wake-up time."""

    index: int
    device: I64  # device slot per message
    kind: list[MessageKind]
    payload: list[bytes]
    seq: I64
    copies: I64  # copies that reached the network: 0 = lost, > 1 = retries duplicated it
    attempts: I64  # transmissions the device made
    is_acked: npt.NDArray[np.bool_]  # the device saw an acknowledgement
    wake_t: F64  # true event time of the transmission
    samples: I64  # samples carried per message (0 for events)

    def __len__(self) -> int:
        return len(self.payload)


@dataclass(slots=True)
class RadioCounts:
    """Cumulative over the fleet's life: what devices generated and what the radio did."""

    samples_generated: int = 0
    messages: int = 0  # telemetry + event messages the devices sent (first attempts)
    telemetry_messages: int = 0
    event_messages: int = 0
    transmissions: int = 0  # including retries
    copies_delivered: int = 0  # transmissions that reached the network
    duplicate_copies: int = 0  # copies beyond the first of a message
    messages_lost: int = 0  # no copy reached the network
    messages_unacked: int = 0  # the device saw no acknowledgement (and kept the samples)
    samples_resent: int = 0  # samples sent again after an unacknowledged uplink
    samples_dropped: int = 0  # buffer overflow while uplinks kept failing
    charge_used_mah: float = 0.0
    events: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}
