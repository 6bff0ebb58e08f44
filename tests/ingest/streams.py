"""Known telemetry streams for the ingest tests, and a publisher that waits for every PUBACK."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope.registry import Device

T0 = 1_763_000_000  # event times in the past, on a whole second


def fleet(n: int, prefix: str = "TST") -> list[Device]:
    return [
        Device(
            device_id=f"{prefix}-V-{i:04d}",
            kind="valve",
            manufacturer=prefix,
            model="GV-50",
            batch=f"B{i % 3}",
            site="site-a",
            region="test",
            dn=50,
            pn=16,
            leakage_class="D",
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class Stream:
    """``messages`` uplinks round-robin over ``devices``, ``samples`` each, all values known."""

    devices: list[Device]
    messages: int
    samples: int = 12

    def payloads(self) -> Iterable[tuple[str, bytes]]:
        for m in range(self.messages):
            device = self.devices[m % len(self.devices)]
            seq = m // len(self.devices)
            samples = [
                {
                    "t": T0 + seq * self.samples + j,
                    "p_in_kpa": 500.0 + m + j / 100,
                    "p_out_kpa": 0.0,
                    "leak_mm3s": 0.25,
                    "position_pct": 0.0,
                }
                for j in range(self.samples)
            ]
            body = {"v": 1, "seq": seq, "samples": samples}
            yield f"sealscope/v1/dev/{device.device_id}/telemetry", json.dumps(body).encode()

    @property
    def points(self) -> int:
        return self.messages * self.samples

    @property
    def p_in_sum(self) -> float:
        return sum(500.0 + m + j / 100 for m in range(self.messages) for j in range(self.samples))


def publish_all(
    host: str,
    port: int,
    messages: Iterable[tuple[str, bytes]],
    *,
    client_id: str,
    timeout_s: float = 60.0,
    between: Callable[[int], None] | None = None,
) -> int:
    """Publish at QoS 1 and return once the broker acknowledged every message."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = []
        for i, (topic, payload) in enumerate(messages):
            infos.append(client.publish(topic, payload, qos=1))
            if between is not None:
                between(i)
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError(f"broker did not acknowledge message {info.mid}")
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()
