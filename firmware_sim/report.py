"""``SimReport``: what a simulation run produced, reconciled across the devices, the
simulated radio and the far end, plus the ground truth detectors should find."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_sim.rounds import RadioCounts
from firmware_sim.truth import DeviceTruth

__all__ = ["SimReport"]


@dataclass(slots=True)
class SimReport:
    """What the far end acknowledged, what the radio did, and what detectors should find."""

    devices: int
    rounds: int = 0
    messages_acked: int = 0  # telemetry messages with at least one acknowledged copy
    samples_acked: int = 0  # samples in those messages
    state_messages_acked: int = 0
    events_acked: int = 0  # alarm messages with at least one acknowledged copy
    copies_published: int = 0  # everything put on the wire, duplicates included
    copies_acked: int = 0
    refused: int = 0  # copies the far end refused (e.g. PUBACK 0x87 not authorised)
    downlinks_received: int = 0
    downlinks_applied: int = 0  # commands the devices carried out
    elapsed_s: float = 0.0
    transport: str = ""
    device_messages: dict[str, int] = field(default_factory=dict)  # telemetry acked per device
    truth: list[DeviceTruth] = field(default_factory=list)
    radio: RadioCounts = field(default_factory=RadioCounts)
    event_t: float = 0.0  # true event time the fleet has reached

    @property
    def samples_generated(self) -> int:
        return self.radio.samples_generated

    @property
    def messages_per_s(self) -> float:
        return self.messages_acked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        degrading = [t for t in self.truth if t.is_degrading]
        r = self.radio
        lines = [
            f"simulated devices:      {self.devices}",
            f"rounds:                 {self.rounds}",
            f"telemetry acknowledged: {self.messages_acked} messages, {self.samples_acked} samples",
            f"state acknowledged:     {self.state_messages_acked} (retained)",
            f"events acknowledged:    {self.events_acked}",
            f"refused by far end:     {self.refused}",
            f"elapsed:                {self.elapsed_s:.2f} s ({self.messages_per_s:.0f} msg/s)",
            f"transport:              {self.transport}",
            f"devices sent:           {r.messages} messages ({r.telemetry_messages} telemetry, "
            f"{r.event_messages} events), {r.samples_generated} samples",
            f"radio:                  {r.transmissions} transmissions, {r.messages_lost} "
            f"messages lost, {r.duplicate_copies} duplicate copies, {r.messages_unacked} "
            f"unacknowledged (samples resent {r.samples_resent}, dropped {r.samples_dropped})",
            f"on the wire:            {self.copies_published} copies published, "
            f"{self.copies_acked} acknowledged",
            f"downlink:               {self.downlinks_received} received, "
            f"{self.downlinks_applied} carried out",
            f"degrading devices:      {len(degrading)}",
        ]
        lines += [f"  {t.device_id}  onset t={t.onset_t:.0f}  {t.mode}" for t in degrading[:20]]
        if len(degrading) > 20:
            lines.append(f"  ... and {len(degrading) - 20} more")
        return "\n".join(lines)
