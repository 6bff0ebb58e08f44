"""``python -m composition.bench.dynsec``: per-device broker identities at fleet scale.

Starts a Mosquitto with the dynamic-security plugin, provisions N device identities through
``sealscope.broker_admin`` (timing each chunk: the broker is blocked while one runs),
then every device connects with its own credentials and publishes one QoS 1 telemetry
message through a pool of connections, to an ingest identity on a shared subscription.
Prints provisioning time, the longest broker stall, connects/s and what arrived.
"""

from __future__ import annotations

import argparse
import queue
import secrets
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from composition.servers import MosquittoServer
from sealscope.broker_admin import (
    DEVICE_ACL_PATTERNS,
    BrokerAdmin,
    DynsecControl,
    write_initial_config,
)
from sealscope.topics import device_filter, device_topic, parse_device_topic

__all__ = ["DynsecBroker", "FleetRun", "publish_once_per_device", "start_dynsec_broker"]

_ADMIN = "sealscope-broker-admin"
_STEP_S = 0.05


@dataclass(frozen=True)
class DynsecBroker:
    server: MosquittoServer
    admin_username: str
    admin_password: str = field(repr=False)

    def control(self, **kwargs: Any) -> DynsecControl:
        return DynsecControl(
            host=self.server.host,
            port=self.server.port,
            username=self.admin_username,
            password=self.admin_password,
            **kwargs,
        )


def start_dynsec_broker(workdir: Path) -> DynsecBroker:
    """A broker on a free loopback port: dynsec for identities, the device ACL patterns."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "dynamic-security.json"
    password = secrets.token_urlsafe(24)
    write_initial_config(config, admin_username=_ADMIN, admin_password=password)
    server = MosquittoServer(
        workdir=workdir,
        allow_anonymous=False,
        acl_lines=list(DEVICE_ACL_PATTERNS),
        dynsec_config_file=config,
    )
    server.start()
    return DynsecBroker(server, _ADMIN, password)


@dataclass
class FleetRun:
    """What a fleet of one-shot connections got back from the broker."""

    connack: dict[str, str] = field(default_factory=dict)  # device -> CONNACK reason
    puback: dict[str, str] = field(default_factory=dict)  # device -> PUBACK reason
    elapsed_s: float = 0.0

    @property
    def connects_per_s(self) -> float:
        return len(self.connack) / self.elapsed_s if self.elapsed_s else 0.0


def _one_shot(
    host: str, port: int, device_id: str, password: str, timeout_s: float
) -> tuple[str, str]:
    """Connect as the device, publish one QoS 1 telemetry message, disconnect."""
    box: dict[str, str] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, password)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        box.setdefault("connack", str(reason))

    def on_publish(_c: Any, _u: Any, _m: Any, reason: Any, _p: Any) -> None:
        box.setdefault("puback", str(reason))

    client.on_connect = on_connect
    client.on_publish = on_publish
    deadline = time.monotonic() + timeout_s
    try:
        client.connect(host, port)
        while "connack" not in box and time.monotonic() < deadline:
            client.loop(_STEP_S)
        if box.get("connack") != "Success":
            return box.get("connack", "timeout"), ""
        client.publish(device_topic(device_id, "telemetry"), b'{"v":1}', qos=1)
        while "puback" not in box and time.monotonic() < deadline:
            client.loop(_STEP_S)
        client.disconnect()
    except OSError as exc:
        return box.get("connack", f"error: {exc}"), ""
    return box["connack"], box.get("puback", "timeout")


def publish_once_per_device(
    host: str,
    port: int,
    credentials: Mapping[str, str],
    *,
    workers: int = 16,
    timeout_s: float = 30.0,
) -> FleetRun:
    """Each device in turn, ``workers`` connections at a time (each thread runs its own loop)."""
    todo: queue.Queue[str] = queue.Queue()
    for device_id in credentials:
        todo.put(device_id)
    run = FleetRun()
    lock = threading.Lock()

    def work() -> None:
        while True:
            try:
                device_id = todo.get_nowait()
            except queue.Empty:
                return
            connack, puback = _one_shot(host, port, device_id, credentials[device_id], timeout_s)
            with lock:
                run.connack[device_id] = connack
                run.puback[device_id] = puback

    started = time.perf_counter()
    threads = [threading.Thread(target=work, name=f"fleet-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.elapsed_s = time.perf_counter() - started
    return run


class UplinkCounter:
    """An ingest identity on a shared subscription, collecting which devices arrived."""

    def __init__(self, broker: DynsecBroker, username: str, password: str) -> None:
        self.devices: set[str] = set()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{username}-1", protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = lambda c, *_a: c.subscribe(
            device_filter("telemetry", shared_group="bench"), qos=1
        )
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._host, self._port = broker.server.host, broker.server.port

    def __enter__(self) -> UplinkCounter:
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        if not self._subscribed.wait(30):
            raise TimeoutError("the ingest identity did not get its SUBACK")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.devices.add(parse_device_topic(message.topic).device_id)

    def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.devices) >= count:
                    return True
            time.sleep(_STEP_S)
        return False


def run_bench_dynsec(*, devices: int, chunk_commands: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sealscope-dynsec-") as tmp:
        broker = start_dynsec_broker(Path(tmp))
        try:
            _bench(broker, devices=devices, chunk_commands=chunk_commands, workers=workers)
        finally:
            broker.server.stop()


def _bench(broker: DynsecBroker, *, devices: int, chunk_commands: int, workers: int) -> None:
    ids = [f"BENCH-V-{i:06d}" for i in range(devices)]
    with broker.control(chunk_commands=chunk_commands, timeout_s=600) as control:
        admin = BrokerAdmin(control)
        ingest_password = admin.provision_service("ingest")
        chunk_s: list[float] = []
        started = time.perf_counter()
        passwords: dict[str, str] = {}
        for start in range(0, devices, chunk_commands):
            t = time.perf_counter()
            passwords |= admin.provision_devices(ids[start : start + chunk_commands])
            chunk_s.append(time.perf_counter() - t)
        provision_s = time.perf_counter() - started
        t = time.perf_counter()
        passwords |= admin.provision_devices(ids[:chunk_commands])  # existing: new passwords
        again_s = time.perf_counter() - t
    config_bytes = (broker.server.workdir / "dynamic-security.json").stat().st_size
    print(f"provisioned {devices} devices in {provision_s:.1f} s ({devices / provision_s:.0f}/s)")
    print(
        f"  chunks of {chunk_commands}: first {chunk_s[0]:.2f} s, last {chunk_s[-1]:.2f} s "
        f"(the broker serves nobody else while a chunk runs); config file {config_bytes} bytes"
    )
    print(f"  re-provisioning {chunk_commands} existing devices: {again_s:.2f} s")
    with UplinkCounter(broker, "sealscope-ingest", ingest_password) as ingest:
        run = publish_once_per_device(
            broker.server.host, broker.server.port, passwords, workers=workers
        )
        arrived = ingest.wait_for(devices, timeout_s=60)
    refused = sum(1 for r in run.connack.values() if r != "Success")
    not_acked = sum(1 for r in run.puback.values() if r not in ("Success", ""))
    print(
        f"{devices} devices connected and published once: {run.elapsed_s:.1f} s, "
        f"{run.connects_per_s:.0f} connects/s with {workers} connections at a time; "
        f"refused {refused}, PUBACK not success {not_acked}, "
        f"arrived at ingest {len(ingest.devices)}{'' if arrived else ' (timed out)'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=25, help="dynsec commands per message")
    parser.add_argument("--workers", type=int, default=16, help="connections at a time")
    args = parser.parse_args()
    run_bench_dynsec(devices=args.devices, chunk_commands=args.chunk, workers=args.workers)


if __name__ == "__main__":
    main()
