"""Ingest: MQTT consumer -> validate -> enrich -> durable spool -> telemetry store."""

from ingest.consumer import Delivery, MqttConsumer
from ingest.service import BatchSink, Detection, IngestService, IngestStats
from ingest.translate import DeviceCache, Translated, translate
from sealscope.spool import Spool, SpoolPosition, SpoolRecord

__all__ = [
    "BatchSink",
    "Delivery",
    "Detection",
    "DeviceCache",
    "IngestService",
    "IngestStats",
    "MqttConsumer",
    "Spool",
    "SpoolPosition",
    "SpoolRecord",
    "Translated",
    "translate",
]
