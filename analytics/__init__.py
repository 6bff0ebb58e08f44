"""Streaming, numpy-vectorised seal-health detectors and the service that runs them."""

from analytics.base import (
    CATEGORY_NAMES,
    CategoryCode,
    Detector,
    DeviceTable,
    SampleBatch,
    Status,
    Verdicts,
)
from analytics.seat_leak import SeatLeakDetector
from analytics.service import AlertChange, DetectionService

__all__ = [
    "CATEGORY_NAMES",
    "AlertChange",
    "CategoryCode",
    "DetectionService",
    "Detector",
    "DeviceTable",
    "SampleBatch",
    "SeatLeakDetector",
    "Status",
    "Verdicts",
]
