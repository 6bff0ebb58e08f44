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
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from composition.servers import MosquittoServer
from firmware_sim import Fleet, FleetSpec, MqttPublisher, OutgoingMessage, run_simulation
from firmware_sim.device_mqtt import DeviceMqttTransport
from firmware_sim.transport import DeviceMessage
from sealscope.topics import device_topic

__all__ = ["run_bench_sim"]


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
