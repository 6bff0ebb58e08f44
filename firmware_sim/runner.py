"""Run a simulated fleet against a broker: register, publish state, then paced uplink rounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_sim.fleet import DeviceTruth, Fleet
from firmware_sim.publisher import MqttPublisher, OutgoingMessage, Protocol
from sealscope.registry import DeviceRegistry
from sealscope.topics import device_topic
from sealscope.wire import encode

__all__ = ["SimReport", "run_simulation"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SimReport:
    """What the broker acknowledged, and what the detectors should have found."""

    devices: int
    rounds: int = 0
    messages_acked: int = 0  # telemetry messages
    samples_acked: int = 0
    state_messages_acked: int = 0
    refused: int = 0  # PUBACKs with a failure reason code
    elapsed_s: float = 0.0
    device_messages: dict[str, int] = field(default_factory=dict)  # telemetry acked per device
    truth: list[DeviceTruth] = field(default_factory=list)

    @property
    def messages_per_s(self) -> float:
        return self.messages_acked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        degrading = [t for t in self.truth if t.is_degrading]
        lines = [
            f"simulated devices:      {self.devices}",
            f"rounds:                 {self.rounds}",
            f"telemetry acknowledged: {self.messages_acked} messages, {self.samples_acked} samples",
            f"state acknowledged:     {self.state_messages_acked} (retained)",
            f"refused by broker:      {self.refused}",
            f"elapsed:                {self.elapsed_s:.2f} s ({self.messages_per_s:.0f} msg/s)",
            f"degrading valves:       {len(degrading)}",
        ]
        lines += [f"  {t.device_id}  onset t={t.onset_t:.0f}" for t in degrading[:20]]
        if len(degrading) > 20:
            lines.append(f"  ... and {len(degrading) - 20} more")
        return "\n".join(lines)


def _telemetry_round(fleet: Fleet) -> tuple[list[str], list[OutgoingMessage], int]:
    # CPU-bound for big fleets: runs in a worker thread so the event loop stays responsive.
    uplinks = fleet.next_uplinks()
    messages = [
        OutgoingMessage(device_topic(u.device_id, "telemetry"), encode(u.telemetry))
        for u in uplinks
    ]
    return [u.device_id for u in uplinks], messages, fleet.spec.samples_per_uplink


async def run_simulation(
    *,
    host: str,
    port: int,
    fleet: Fleet,
    uplinks: int | None,
    interval_s: float,
    username: str | None = None,
    password: str | None = None,
    registry: DeviceRegistry | None = None,
    protocol: Protocol = "5",
    progress: Callable[[SimReport], None] | None = None,
    stop: asyncio.Event | None = None,
    window: int = 1000,
    hold_at_wall_clock: bool = False,
) -> SimReport:
    """Publish ``uplinks`` rounds (None: until ``stop`` is set), one per ``interval_s``.

    Rounds start on a fixed wall-clock grid; a round that overruns starts the next one at
    once rather than bursting to catch up. A set ``stop`` ends the run after the round in
    flight is fully acknowledged. With ``hold_at_wall_clock``, a fleet whose event time has
    caught up with the wall clock waits for it, so a backfilled fleet turns live instead of
    publishing the future.
    """
    if uplinks is None and stop is None:
        raise ValueError("uplinks=None runs until `stop` is set; pass a stop event")
    if uplinks is not None and uplinks < 0:
        raise ValueError("uplinks must be >= 0")
    if interval_s < 0:
        raise ValueError("interval_s must be >= 0")
    stop = stop or asyncio.Event()
    report = SimReport(
        devices=fleet.spec.devices,
        device_messages=dict.fromkeys(fleet.device_ids, 0),
        truth=fleet.truth(),
    )
    if registry is not None:
        registered = registry.upsert_many(fleet.devices)
        log.info("registered %d simulated devices", registered)

    started = time.monotonic()
    async with MqttPublisher(
        host=host,
        port=port,
        username=username,
        password=password,
        protocol=protocol,
        window=window,
    ) as publisher:
        states = [
            OutgoingMessage(device_topic(device_id, "state"), encode(state), retain=True)
            for device_id, state in fleet.states()
        ]
        result = await publisher.publish_many(states)
        report.state_messages_acked = result.acked
        report.refused += len(result.refused)

        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while (uplinks is None or report.rounds < uplinks) and not stop.is_set():
            device_ids, messages, samples_each = await asyncio.to_thread(_telemetry_round, fleet)
            result = await publisher.publish_many(messages)
            refused = result.refused_indices()
            for i, device_id in enumerate(device_ids):
                if i not in refused:
                    report.device_messages[device_id] += 1
            report.rounds += 1
            report.messages_acked += result.acked
            report.samples_acked += result.acked * samples_each
            report.refused += len(refused)
            report.elapsed_s = time.monotonic() - started
            if progress is not None:
                progress(report)
            if uplinks is not None and report.rounds >= uplinks:
                break
            wait_s = interval_s
            if hold_at_wall_clock:
                wait_s = max(interval_s, fleet.now_t + fleet.spec.uplink_span_s - time.time())
            next_round = max(next_round + wait_s, loop.time())
            await _sleep_until(loop, next_round, stop)
    report.elapsed_s = time.monotonic() - started
    return report


async def _sleep_until(
    loop: asyncio.AbstractEventLoop, deadline: float, stop: asyncio.Event
) -> None:
    delay = deadline - loop.time()
    if delay <= 0:
        return
    with contextlib.suppress(TimeoutError):  # the deadline passing is the normal case
        await asyncio.wait_for(stop.wait(), timeout=delay)
