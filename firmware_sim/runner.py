"""Run a simulated fleet through a transport: register, publish state, then paced rounds.

Each round the fleet advances one uplink interval of event time (in a worker thread: it is
CPU-bound), the messages whose radio transmission reached the network go to the transport
(with the radio's duplicate copies), and commands that came back are handed to the devices
that were listening. The report reconciles both sides: what the devices generated, what
the simulated radio lost or duplicated, and what the far end acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TextIO

from firmware_sim.fleet import Fleet
from firmware_sim.progress import ProgressBar
from firmware_sim.publisher import Protocol
from firmware_sim.report import SimReport
from firmware_sim.rounds import RoundOutput
from firmware_sim.transport import DeviceMessage, SharedMqttTransport, Transport
from sealscope.registry import DeviceRegistry
from sealscope.wire import encode

__all__ = ["SimReport", "run_simulation"]

log = logging.getLogger(__name__)


def _round_messages(fleet: Fleet, out: RoundOutput) -> tuple[list[DeviceMessage], list[int]]:
    ids = fleet.device_ids
    messages, positions = [], []
    copies = out.copies.tolist()
    for k, (d, kind, payload) in enumerate(
        zip(out.device.tolist(), out.kind, out.payload, strict=True)
    ):
        if copies[k]:  # zero copies: the radio lost every transmission
            messages.append(DeviceMessage(ids[d], kind, payload, copies[k]))
            positions.append(k)
    return messages, positions


def _step(fleet: Fleet) -> tuple[RoundOutput, list[DeviceMessage], list[int]]:
    out = fleet.step()
    messages, positions = _round_messages(fleet, out)
    return out, messages, positions


async def run_simulation(
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    fleet: Fleet,
    uplinks: int | None,
    interval_s: float = 0.0,
    username: str | None = None,
    password: str | None = None,
    registry: DeviceRegistry | None = None,
    protocol: Protocol = "5",
    progress: Callable[[SimReport], None] | None = None,
    stop: asyncio.Event | None = None,
    window: int = 1000,
    hold_at_wall_clock: bool = False,
    transport: Transport | None = None,
    speed: float | None = None,
    progress_bar: bool | TextIO = False,
    publish_state: bool = True,
) -> SimReport:
    """Publish ``uplinks`` rounds (None: until ``stop`` is set), one per ``interval_s``.

    ``speed`` (simulated seconds per wall second) sets the interval from the fleet's uplink
    interval instead: 3600 runs an hour of event time per wall second. Rounds start on a
    fixed wall-clock grid; a round that overruns starts the next one at once rather than
    bursting to catch up. A set ``stop`` ends the run after the round in flight is fully
    acknowledged. With ``hold_at_wall_clock``, a fleet whose event time has caught up with
    the wall clock waits for it, so a backfilled fleet turns live instead of publishing the
    future. ``transport`` defaults to one shared MQTT connection to ``host:port``.
    """
    if uplinks is None and stop is None:
        raise ValueError("uplinks=None runs until `stop` is set; pass a stop event")
    if uplinks is not None and uplinks < 0:
        raise ValueError("uplinks must be >= 0")
    if interval_s < 0:
        raise ValueError("interval_s must be >= 0")
    if speed is not None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        interval_s = fleet.spec.uplink_span_s / speed
    stop = stop or asyncio.Event()
    if transport is None:
        transport = SharedMqttTransport(
            host=host,
            port=port,
            username=username,
            password=password,
            protocol=protocol,
            window=window,
        )
    report = SimReport(
        devices=fleet.spec.devices,
        device_messages=dict.fromkeys(fleet.device_ids, 0),
        truth=fleet.truth(),
        transport=transport.name,
    )
    bar = None
    if progress_bar:
        bar = ProgressBar(
            total_rounds=uplinks, stream=None if progress_bar is True else progress_bar
        )
    if registry is not None:
        registered = registry.upsert_many(fleet.devices)
        log.info("registered %d simulated devices", registered)

    started = time.monotonic()
    try:
        async with transport:
            if publish_state:
                states = [
                    DeviceMessage(device_id, "state", encode(state), 1, retain=True)
                    for device_id, state in fleet.states()
                ]
                delivery = await transport.send(states)
                report.state_messages_acked = delivery.acked_copies
                report.refused += len(delivery.refused)
                _apply_downlinks(fleet, report, transport, delivery.downlinks, listening=None)

            loop = asyncio.get_running_loop()
            next_round = loop.time()
            while (uplinks is None or report.rounds < uplinks) and not stop.is_set():
                out, messages, positions = await asyncio.to_thread(_step, fleet)
                delivery = await transport.send(messages)
                _account(fleet, report, out, messages, positions, delivery.acked)
                report.refused += sum(
                    m.copies - a for m, a in zip(messages, delivery.acked, strict=True)
                )
                listening = {
                    fleet.device_ids[d]
                    for d, ok in zip(out.device.tolist(), out.is_acked.tolist(), strict=True)
                    if ok
                }
                _apply_downlinks(fleet, report, transport, delivery.downlinks, listening=listening)
                report.rounds += 1
                report.radio = dataclasses.replace(fleet.counts, events=dict(fleet.counts.events))
                report.event_t = fleet.now_t
                report.elapsed_s = time.monotonic() - started
                if progress is not None:
                    progress(report)
                if bar is not None:
                    bar.update(report, fleet.now_t)
                if uplinks is not None and report.rounds >= uplinks:
                    break
                wait_s = interval_s
                if hold_at_wall_clock:
                    wait_s = max(interval_s, fleet.round_end_t - time.time())
                next_round = max(next_round + wait_s, loop.time())
                await _sleep_until(loop, next_round, stop)
        report.elapsed_s = time.monotonic() - started
        report.truth = fleet.truth()  # sensor faults that started during the run included
    finally:  # on an error too: the live display must give the terminal back
        if bar is not None:
            bar.close(report, fleet.now_t)
    return report


def _account(
    fleet: Fleet,
    report: SimReport,
    out: RoundOutput,
    messages: list[DeviceMessage],
    positions: list[int],
    acked: list[int],
) -> None:
    samples = out.samples.tolist()
    for m, k, a in zip(messages, positions, acked, strict=True):
        report.copies_published += m.copies
        report.copies_acked += a
        if not a:
            continue
        if m.kind == "telemetry":
            report.messages_acked += 1
            report.samples_acked += samples[k]
            report.device_messages[m.device_id] += 1
        else:
            report.events_acked += 1


def _apply_downlinks(
    fleet: Fleet,
    report: SimReport,
    transport: Transport,
    downlinks: list[tuple[str, bytes]],
    *,
    listening: set[str] | None,
) -> None:
    for device_id, payload in downlinks:
        report.downlinks_received += 1
        # the radio decides whether the device heard the response to its uplink
        if listening is not None and device_id not in listening:
            continue
        ok = fleet.deliver_downlink(device_id, payload)
        report.downlinks_applied += ok
        outcome = getattr(transport, "command_outcome", None)
        if outcome is not None:
            outcome(device_id, payload, ok)


async def _sleep_until(
    loop: asyncio.AbstractEventLoop, deadline: float, stop: asyncio.Event
) -> None:
    delay = deadline - loop.time()
    if delay <= 0:
        return
    with contextlib.suppress(TimeoutError):  # the deadline passing is the normal case
        await asyncio.wait_for(stop.wait(), timeout=delay)
