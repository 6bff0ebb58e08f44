"""Streaming, numpy-vectorised seal-health detectors and the service that runs them."""

from analytics.actuation import ActuationWearDetector
from analytics.base import (
    CATEGORY_NAMES,
    CategoryCode,
    Detector,
    DeviceTable,
    SampleBatch,
    Status,
    Verdicts,
)
from analytics.multivariate import MultivariateDetector, MultivariateScores, RobustMahalanobis
from analytics.pump_seal import PumpSealDetector
from analytics.seat_leak import SeatLeakDetector
from analytics.sensor_faults import SensorFaultDetector
from analytics.service import AlertChange, DetectionService, default_detectors

__all__ = [
    "CATEGORY_NAMES",
    "ActuationWearDetector",
    "AlertChange",
    "CategoryCode",
    "DetectionService",
    "Detector",
    "DeviceTable",
    "MultivariateDetector",
    "MultivariateScores",
    "PumpSealDetector",
    "RobustMahalanobis",
    "SampleBatch",
    "SeatLeakDetector",
    "SensorFaultDetector",
    "Status",
    "Verdicts",
    "default_detectors",
]
