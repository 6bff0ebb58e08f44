"""Simulated NB-IoT smart valves and pumps: fleet physics, MQTT publishing, a runner.

``Fleet`` (fleet.py) models devices and produces v1 payloads, ``MqttPublisher``
(publisher.py) carries them to a broker, ``run_simulation`` (runner.py) paces rounds.
"""

from firmware_sim.fleet import DeviceTruth, Fleet, FleetSpec, Uplink, allowable_leak_mm3s
from firmware_sim.publisher import (
    AckTimeout,
    ConnectFailed,
    MqttPublisher,
    OutgoingMessage,
    PublishError,
    PublishResult,
    Refusal,
)
from firmware_sim.runner import SimReport, run_simulation

__all__ = [
    "AckTimeout",
    "ConnectFailed",
    "DeviceTruth",
    "Fleet",
    "FleetSpec",
    "MqttPublisher",
    "OutgoingMessage",
    "PublishError",
    "PublishResult",
    "Refusal",
    "SimReport",
    "Uplink",
    "allowable_leak_mm3s",
    "run_simulation",
]
