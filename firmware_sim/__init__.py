"""Simulated NB-IoT smart valves and pumps: physics, wear, radio, and the transports.

``Fleet`` (fleet.py, over state.py and the modules of one round) models devices and
produces v1 payloads, a ``Transport`` (transport.py, device_mqtt.py, coap.py) carries them,
``run_simulation`` (runner.py) paces rounds and reconciles counts in a ``SimReport``
(report.py). ``CoapTransport`` is imported lazily (aiocoap, cbor2).
"""

from typing import Any

from firmware_sim.batch import SampleBatch
from firmware_sim.device_mqtt import DeviceMqttTransport, DeviceSession
from firmware_sim.fleet import (
    DeviceTruth,
    Fleet,
    FleetSpec,
    RadioCounts,
    RoundOutput,
    Uplink,
    allowable_leak_mm3s,
)
from firmware_sim.progress import ProgressBar
from firmware_sim.publisher import (
    AckTimeout,
    ConnectFailed,
    MqttPublisher,
    OutgoingMessage,
    PublishError,
    PublishResult,
    Refusal,
)
from firmware_sim.report import SimReport
from firmware_sim.runner import run_simulation
from firmware_sim.transport import (
    Delivery,
    DeviceMessage,
    MemoryTransport,
    SharedMqttTransport,
    Transport,
)
from firmware_sim.truth import FleetTruth, SensorFault

__all__ = [
    "AckTimeout",
    "CoapTransport",
    "ConnectFailed",
    "Delivery",
    "DeviceMessage",
    "DeviceMqttTransport",
    "DeviceSession",
    "DeviceTruth",
    "Fleet",
    "FleetSpec",
    "FleetTruth",
    "MemoryTransport",
    "MqttPublisher",
    "OutgoingMessage",
    "ProgressBar",
    "PublishError",
    "PublishResult",
    "RadioCounts",
    "Refusal",
    "RoundOutput",
    "SampleBatch",
    "SensorFault",
    "SharedMqttTransport",
    "SimReport",
    "Transport",
    "Uplink",
    "allowable_leak_mm3s",
    "run_simulation",
]


def __getattr__(name: str) -> Any:
    if name == "CoapTransport":
        from firmware_sim.coap import CoapTransport

        return CoapTransport
    raise AttributeError(f"module 'firmware_sim' has no attribute {name!r}")
