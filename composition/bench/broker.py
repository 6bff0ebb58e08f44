"""``sealscope bench broker``: what Mosquitto's persistence settings cost and what they keep.

For each autosave setting: a QoS 1 publisher sends as fast as the broker acknowledges
(its publish rate is the cost), to a persistent-session subscriber that is either online
(consuming, as ingest does) or offline (a backlog piles up, as while ingest is down).
Then the broker is SIGKILLed and restarted on the same persistence file, the subscriber
reconnects, and every message the broker acknowledged but never delivered, before the
kill or after the restart, counts as lost.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from composition.servers import MosquittoServer

__all__ = ["BrokerTrial", "run_bench_broker"]

_TOPIC = "sealscope/v1/dev/BENCH-0001/telemetry"
# setting -> (autosave_interval, autosave_on_changes)
_SETTINGS: dict[str, tuple[int, bool]] = {
    "autosave every 1 s": (1, False),
    "autosave every 100 changes": (100, True),
    "autosave every change": (1, True),
}


@dataclass
class BrokerTrial:
    setting: str
    subscriber: str
    acked: int
    publish_per_s: float
    lost: int


class _Subscriber:
    def __init__(self, server: MosquittoServer) -> None:
        self.server = server
        self.seen: set[int] = set()
        self.last_s = time.monotonic()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-sub", clean_session=False
        )
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.add(int(msg.payload))
            self.last_s = time.monotonic()

    def connect(self, subscribe: bool) -> None:
        self._connected.clear()
        self.last_s = time.monotonic()  # drain() waits for quiet from here on
        self.client.connect(self.server.host, self.server.port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("subscriber could not connect")
        if subscribe:
            self.client.subscribe(_TOPIC, qos=1)
            time.sleep(0.2)  # bench only: let SUBACK land

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drain(self, quiet_s: float = 1.0, max_s: float = 60.0) -> None:
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and time.monotonic() - self.last_s < quiet_s:
            time.sleep(0.05)


def _publish(server: MosquittoServer, seconds: float) -> tuple[set[int], float]:
    acked: set[int] = set()
    mids: dict[int, int] = {}
    lock = threading.Lock()

    def on_publish(_c: mqtt.Client, _u: object, mid: int, *_: object) -> None:
        with lock:
            if mid in mids:
                acked.add(mids.pop(mid))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    client.max_inflight_messages_set(20)
    client.max_queued_messages_set(100)
    client.on_publish = on_publish
    client.connect(server.host, server.port)
    client.loop_start()
    start = time.monotonic()
    seq = 0
    while time.monotonic() - start < seconds:
        info = client.publish(_TOPIC, str(seq).encode(), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
            continue
        with lock:
            mids[info.mid] = seq
        seq += 1
    elapsed = time.monotonic() - start
    with lock:
        result = set(acked)
    server.kill()  # the publisher still has messages in flight: a crash mid-stream
    client.loop_stop()
    return result, elapsed


def _trial(setting: str, online: bool, seconds: float, workdir: Path) -> BrokerTrial:
    interval, on_changes = _SETTINGS[setting]
    server = MosquittoServer(
        workdir=workdir, autosave_interval=interval, autosave_on_changes=on_changes
    )
    server.start()
    sub = _Subscriber(server)
    try:
        sub.connect(subscribe=True)
        if not online:
            sub.disconnect()
        acked, elapsed = _publish(server, seconds)
        if online:
            sub.client.loop_stop()
        server.start()
        sub.connect(subscribe=False)
        sub.drain()
        sub.disconnect()
    finally:
        server.stop()
    return BrokerTrial(
        setting=setting,
        subscriber="online" if online else "offline",
        acked=len(acked),
        publish_per_s=len(acked) / elapsed,
        lost=len(acked - sub.seen),
    )


def run_bench_broker(seconds: float = 5.0, rounds: int = 2) -> list[BrokerTrial]:
    logging.getLogger("composition.servers").setLevel(logging.WARNING)  # a start per trial
    trials: list[BrokerTrial] = []
    print(f"Mosquitto persistence, QoS 1 publisher for {seconds:.0f} s, then SIGKILL and restart")
    print(f"{'setting':28} {'subscriber':10} {'acked':>8} {'publish/s':>10} {'lost':>6}")
    with tempfile.TemporaryDirectory(prefix="sealscope-bench-broker-") as tmp:
        for n in range(rounds):
            for setting in _SETTINGS:
                for online in (True, False):
                    workdir = Path(tmp) / f"{n}-{len(trials)}"
                    trial = _trial(setting, online, seconds, workdir)
                    trials.append(trial)
                    print(
                        f"{trial.setting:28} {trial.subscriber:10} {trial.acked:>8} "
                        f"{trial.publish_per_s:>10.0f} {trial.lost:>6}",
                        flush=True,
                    )
    return trials
