"""Builds the telemetry store the settings name (the only place that chooses an adapter)."""

from __future__ import annotations

from sealscope.config import Settings
from sealscope.storage import TelemetryStore

__all__ = ["open_telemetry_store"]


async def open_telemetry_store(settings: Settings) -> TelemetryStore:
    if settings.store == "influxdb":
        from sealscope.storage.influxdb import InfluxStore

        return InfluxStore.from_settings(settings)
    from sealscope.storage.sqlite import SqliteTelemetryStore

    return SqliteTelemetryStore(settings.telemetry_db)
