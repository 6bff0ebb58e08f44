"""``sealscope bench sim``: how fast the simulator makes a fleet, and how fast it ships it.

Figures, all from one run on this machine:

1. generation: simulated device-samples per second for a field fleet (``FleetSpec.field``:
   5-minute samples, hourly uplinks, NB-IoT radio, wear, sensor faults) of ``devices``
   devices over ``rounds`` uplink rounds — physics, faults, alarms, radio and the JSON
   bytes of every uplink — with the process's peak resident memory;
2. publishing over MQTT to a Mosquitto started here on a free port, three ways:
   * ceiling (C): ``mosquitto_pub -l`` at QoS 1 publishing the same payloads;
   * ceiling (Python): the simulator's publisher with pre-built messages (no generation);
   * simulator: ``run_simulation`` over one shared connection, generation included;
3. per-device identity: wake-ups per second of ``DeviceMqttTransport`` (connect, publish,
   disconnect per device) for a slice of the fleet.

With ``days`` (``--days 365``) it runs ``run_bench_sim_span`` instead: that much event time
of a field fleet, generation and encoding only, no broker, within a wall-time budget;
see there.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import multiprocessing
import os
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from composition.servers import MosquittoServer
from firmware_sim import (
    Fleet,
    FleetSpec,
    MqttPublisher,
    OutgoingMessage,
    SampleBatch,
    alarms,
    run_simulation,
    sampling,
    transmission,
)
from firmware_sim.device_mqtt import DeviceMqttTransport
from firmware_sim.transport import DeviceMessage
from sealscope.topics import device_topic

__all__ = ["run_bench_sim", "run_bench_sim_span"]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _generation(devices: int, rounds: int) -> tuple[Fleet, float]:
    started = time.perf_counter()
    fleet = Fleet(FleetSpec.field(devices=devices, seed=2026))
    build_s = time.perf_counter() - started
    step_started = time.perf_counter()
    payload_bytes = 0
    for _ in range(rounds):
        out = fleet.step()
        payload_bytes += sum(map(len, out.payload))
    gen_s = time.perf_counter() - step_started
    samples = fleet.counts.samples_generated
    print(
        f"generation: {devices} devices x {rounds} rounds ({fleet.spec.samples_per_uplink} "
        f"samples per uplink): {samples} samples in {gen_s:.2f} s = "
        f"{samples / gen_s:,.0f} device-samples/s "
        f"({samples / gen_s * fleet.spec.sample_interval_s / devices:,.0f}x real time at "
        f"{devices} devices); fleet built in {build_s:.2f} s; "
        f"{payload_bytes / max(len(out.payload) * rounds, 1):.0f} B per uplink",
        flush=True,
    )
    print(
        f"radio: {fleet.counts.transmissions} transmissions, {fleet.counts.messages_lost} "
        f"messages lost, {fleet.counts.duplicate_copies} duplicates; "
        f"peak memory {_peak_rss_mib():.0f} MiB (process RSS)",
        flush=True,
    )
    return fleet, samples / gen_s


async def _ceiling_c(server: MosquittoServer, payloads: list[bytes]) -> float | None:
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        return None
    lines = b"\n".join(payloads) + b"\n"
    cmd = [binary, "-h", server.host, "-p", str(server.port), "-q", "1"]
    cmd += ["-t", "bench/sim/ceiling", "-l", "-i", "bench-ceiling"]
    started = time.perf_counter()
    await asyncio.to_thread(
        subprocess.run, cmd, input=lines, check=True, timeout=600, stdout=subprocess.DEVNULL
    )
    return len(payloads) / (time.perf_counter() - started)


async def _ceiling_python(server: MosquittoServer, payloads: list[bytes], ids: list[str]) -> float:
    messages = [
        OutgoingMessage(device_topic(d, "telemetry"), p) for d, p in zip(ids, payloads, strict=True)
    ]
    async with MqttPublisher(host=server.host, port=server.port) as publisher:
        started = time.perf_counter()
        result = await publisher.publish_many(messages)
        elapsed = time.perf_counter() - started
    return result.acked / elapsed


async def run_bench_sim(*, devices: int = 100_000, rounds: int = 3) -> int:
    if devices < 1 or rounds < 1:
        raise ValueError("devices and rounds must be >= 1")
    print(f"sealscope bench sim: {devices} devices, {rounds} rounds", flush=True)
    fleet, _ = await asyncio.to_thread(_generation, devices, rounds)

    # payloads of one more round, for the ceilings
    out = await asyncio.to_thread(fleet.step)
    payloads = list(out.payload)
    ids = [fleet.device_ids[d] for d in out.device.tolist()]
    size = sum(map(len, payloads)) / len(payloads)

    with tempfile.TemporaryDirectory(prefix="sealscope-bench-sim-") as tmp:
        server = MosquittoServer(workdir=Path(tmp) / "mosquitto")
        server.start()
        try:
            c_rate = await _ceiling_c(server, payloads)
            py_rate = await _ceiling_python(server, payloads, ids)
            sim_fleet = Fleet(FleetSpec.field(devices=devices, seed=2027))
            report = await run_simulation(
                host=server.host,
                port=server.port,
                fleet=sim_fleet,
                uplinks=1,
                interval_s=0,
                publish_state=False,
            )
            sim_rate = report.copies_acked / report.elapsed_s
            print(f"publishing over MQTT (QoS 1, one connection, ~{size:.0f} B messages):")
            if c_rate is not None:
                print(f"  ceiling, mosquitto_pub (C):        {c_rate:,.0f} msg/s")
            print(f"  ceiling, simulator publisher:      {py_rate:,.0f} msg/s (pre-built)")
            print(
                f"  simulator, generate + publish:     {sim_rate:,.0f} msg/s = "
                f"{report.samples_acked / report.elapsed_s:,.0f} samples/s "
                f"({report.copies_acked} copies acknowledged)"
            )
            # per-device identities: a slice of the fleet, each device its own session
            slice_n = min(devices, 5000)
            messages = [
                DeviceMessage(d, "telemetry", p)
                for d, p in zip(ids[:slice_n], payloads, strict=False)
            ]
            transport = DeviceMqttTransport(host=server.host, port=server.port, connections=64)
            async with transport:
                started = time.perf_counter()
                delivery = await transport.send(messages)
                elapsed = time.perf_counter() - started
            print(
                f"  per-device identity (64 awake at a time): {slice_n / elapsed:,.0f} "
                f"wake-ups/s ({delivery.acked_copies} of {slice_n} acknowledged); a "
                f"{devices}-device round takes ~{devices / (slice_n / elapsed):,.0f} s"
            )
        finally:
            server.stop()
    print(f"peak memory: {_peak_rss_mib():.0f} MiB (process RSS)", flush=True)
    return 0


# issue 13: a simulated year of 100,000 devices in at most this long on this machine
_YEAR_CEILING_MIN = 15.0


class _CountingRng:
    """Passes draws through to a ``Generator``, counting the variates of each method."""

    def __init__(self, rng: np.random.Generator, drawn: dict[str, int]) -> None:
        self._rng, self._drawn = rng, drawn

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._rng, name)

        def draw(*args: Any, **kwargs: Any) -> Any:
            out = method(*args, **kwargs)
            self._drawn[name] = self._drawn.get(name, 0) + int(np.size(out))
            return out

        return draw


def _ceilings(spec: FleetSpec, rounds: int) -> dict[str, float]:
    """Seconds per round of each part of a round, on a fresh fleet of the same spec.

    On the numpy engine, ``random draws`` is the floor of its physics: the variates a
    round takes from the physics and fault streams, drawn alone in as few calls as there
    are kinds (the compiled engine draws one at a time, inside its loop)."""
    fleet = Fleet(spec)
    drawn: dict[str, int] = {}
    if spec.engine == "numpy":
        fleet.physics_rng = _CountingRng(fleet.physics_rng, drawn)  # type: ignore[assignment]
        fleet.fault_rng = _CountingRng(fleet.fault_rng, drawn)  # type: ignore[assignment]
    parts = dict.fromkeys(("physics", "alarms, modem, radio", "batch frame", "json"), 0.0)
    for r in range(rounds + 1):  # round 0 untimed: it loads (or compiles) the kernel
        a = time.perf_counter()
        times, cols, dropped, actuation = sampling.take_samples(fleet)
        b = time.perf_counter()
        alarms.local_events(fleet, times, cols, dropped, actuation)
        transmission.wake_modem(fleet, cols)
        transmission.transmit_batch(fleet, fleet.battery_used_mah < spec.battery_mah, [])
        c = time.perf_counter()
        clock = np.round(fleet.device_clock(times, np.arange(spec.devices)[:, None]), 3)
        seq = fleet.seq
        batch = SampleBatch(
            index=0, device=seq, seq=seq, t=clock, readings=cols, copies=seq, attempts=seq,
            is_acked=seq > 0, wake_t=clock[:, -1], held_samples=seq, events=[],
        )  # fmt: skip
        batch.frame_parts()  # stand-ins for the radio's arrays: the same sizes
        d = time.perf_counter()
        sampling.encode_round(fleet, times, cols, fleet.seq)
        e = time.perf_counter()
        fleet._uplinks_done += 1  # the parts of a step, timed one by one
        for name, dt in zip(parts, (b - a, c - b, d - c, e - d), strict=True):
            parts[name] += dt / rounds if r else 0.0
    if drawn:
        rng = np.random.default_rng(0)
        a = time.perf_counter()
        for name, count in drawn.items():
            getattr(rng, name)(size=count // (rounds + 1))
        parts["random draws"] = time.perf_counter() - a
    return parts


def _keep_freed_memory() -> None:
    """glibc maps every block over 32 MB afresh and gives freed memory at the top of the
    heap back to the OS; a round of 50,000 devices allocates ~150 MB of arrays, and the
    page faults of fresh memory cost as much as the physics. Raise both thresholds so a
    round reuses the memory the last one freed (this process only; no-op off glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)


def _span_run(
    devices: int, seed: int, rounds: int, budget_s: float, label: str, engine: str
) -> dict[str, float]:
    """Step one fleet as batches, framing each round, until ``rounds`` or the budget."""
    _keep_freed_memory()
    spec = FleetSpec.field(devices=devices, seed=seed, engine=engine)
    fleet = Fleet(spec)
    frame_bytes = done = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    report_every = max(1, round(30 * 86_400.0 / spec.uplink_span_s))
    while done < rounds and time.perf_counter() - started < budget_s:
        frame_bytes += sum(part.nbytes for part in fleet.step_batch().frame_parts())
        done += 1
        if done % report_every == 0:
            elapsed = time.perf_counter() - started
            print(
                f"  {label}day {done * spec.uplink_span_s / 86_400.0:.0f}: {elapsed:.0f} s, "
                f"{fleet.counts.samples_generated / elapsed:,.0f} device-samples/s",
                flush=True,
            )
    return {
        "rounds": done,
        "samples": fleet.counts.samples_generated,
        "elapsed_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
        "frame_bytes": frame_bytes,
        "peak_mib": _peak_rss_mib(),
    }


def run_bench_sim_span(
    *,
    devices: int = 100_000,
    days: float = 365.0,
    budget_s: float = 900.0,
    workers: int = 1,
    engine: str = "compiled",
) -> int:
    """A field fleet (hourly uplinks of 12 five-minute samples) over ``days`` of event time,
    each round generated and framed as a ``SampleBatch`` (``frame_parts``: the header and
    the arrays as buffers for a gather write, no copy; no JSON, no broker), until
    done or ``budget_s`` of wall time passed. Prints elapsed time, device-samples/s, peak
    memory, and per round the cost of each part (physics, alarms and radio, the binary
    frame, the JSON it replaces) and the floor (the round's random draws alone).

    ``workers`` > 1 splits the devices over that many processes, each its own fleet (its
    own seed, so the same statistics but not the same devices as one process).
    ``engine``: the fleet's physics, the compiled kernel or the numpy reference."""
    if devices < workers or days <= 0 or budget_s <= 0 or workers < 1:
        raise ValueError("devices >= workers >= 1, days > 0 and budget_s > 0")
    spec = FleetSpec.field(devices=devices, seed=2026, engine=engine)
    rounds = math.ceil(days * 86_400.0 / spec.uplink_span_s)
    print(
        f"sealscope bench sim: {devices} devices x {days:g} days = {rounds} rounds of "
        f"{spec.samples_per_uplink} samples, generation + binary batch encoding, "
        f"{spec.engine} engine, {workers} process(es), budget {budget_s:.0f} s; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    parts = _ceilings(spec, rounds=min(3, rounds))
    print("per round, measured on a fresh fleet of the same spec (one process):", flush=True)
    for name, seconds in parts.items():
        print(f"  {name:<22} {seconds * 1000:8.0f} ms", flush=True)

    shares = [devices // workers + (w < devices % workers) for w in range(workers)]
    if workers == 1:
        runs = [_span_run(devices, 2026, rounds, budget_s, "", engine)]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(_span_run, n, 2026 + w, rounds, budget_s, f"worker {w}: ", engine)
                for w, n in enumerate(shares)
            ]
            runs = [f.result() for f in futures]
    elapsed = max(r["elapsed_s"] for r in runs)
    done = int(min(r["rounds"] for r in runs))
    samples = int(sum(r["samples"] for r in runs))
    frame_bytes = sum(r["frame_bytes"] for r in runs)
    reached_days = done * spec.uplink_span_s / 86_400.0
    print(
        f"{'done' if done == rounds else 'stopped at the budget'}: {reached_days:.1f} of "
        f"{days:g} days ({done} rounds) in {elapsed:.1f} s; {samples:,} device-samples = "
        f"{samples / elapsed:,.0f} device-samples/s; {frame_bytes / max(done, 1) / 1e6:.0f} MB "
        f"of frames per round; peak memory {max(r['peak_mib'] for r in runs):.0f} MiB "
        f"(largest process RSS)",
        flush=True,
    )
    year_rounds = math.ceil(365 * 86_400.0 / spec.uplink_span_s)
    per_round = year_rounds / max(done, 1) / 60
    cpu = sum(r["cpu_s"] for r in runs)
    floor = ""
    if "random draws" in parts:
        floor = (
            f"; floor (random draws only, one process): "
            f"{parts['random draws'] * year_rounds / 60:.1f} min"
        )
    print(
        f"a year of {devices} devices ({year_rounds} rounds) at this rate: "
        f"{elapsed * per_round:.1f} min of wall time (ceiling: {_YEAR_CEILING_MIN:.0f} min, "
        f"{'met' if elapsed * per_round <= _YEAR_CEILING_MIN else 'NOT met'}); "
        f"{cpu * per_round:.1f} min of CPU over {workers} process(es){floor}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    return 0
