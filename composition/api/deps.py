"""Dependency aliases: routes ask for the stores the lifespan put on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sealscope.alerts import AlertStore
from sealscope.config import Settings
from sealscope.deadletters import DeadLetterStore
from sealscope.registry import DeviceRegistry
from sealscope.risk import RiskStore
from sealscope.storage import TelemetryStore

__all__ = [
    "AlertsDep",
    "DeadLettersDep",
    "RegistryDep",
    "RiskStoreDep",
    "SettingsDep",
    "TelemetryDep",
]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> DeviceRegistry:
    return request.app.state.registry


def get_alerts(request: Request) -> AlertStore:
    return request.app.state.alerts


def get_dead_letters(request: Request) -> DeadLetterStore:
    return request.app.state.dead_letters


def get_telemetry_store(request: Request) -> TelemetryStore:
    return request.app.state.telemetry_store


def get_risk_store(request: Request) -> RiskStore:
    return request.app.state.risk_store


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[DeviceRegistry, Depends(get_registry)]
AlertsDep = Annotated[AlertStore, Depends(get_alerts)]
DeadLettersDep = Annotated[DeadLetterStore, Depends(get_dead_letters)]
TelemetryDep = Annotated[TelemetryStore, Depends(get_telemetry_store)]
RiskStoreDep = Annotated[RiskStore, Depends(get_risk_store)]
