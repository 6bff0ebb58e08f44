"""Sensor faults are not seal faults: one screen per instrument fault, run as one detector.

* ``stuck.py``: ``StuckScreen``, the same non-zero reading implausibly long while the
  process moved;
* ``missing.py``: ``MissingScreen``, a channel that was always there, gone;
* ``spikes.py``: ``SpikeScreen``, outliers (Hampel, per operating state) too often;
* ``pressure_drift.py``: ``PressureDriftScreen``, the pressure pair off its physics;
* ``leak_drift.py``: ``LeakDriftScreen``, a leak reading that stopped scaling with
  pressure (a zero offset, not a leak);
* ``screen.py``: the contract they share (``ChannelScreen``, ``SignalScreen``, ``Step``);
* ``detector.py``: ``SensorFaultDetector``, the screens run together as the service's
  ``Gate``.
"""

from analytics.sensor_faults.detector import SCREEN_NAMES, SensorFaultDetector
from analytics.sensor_faults.leak_drift import LeakDriftScreen
from analytics.sensor_faults.missing import MissingScreen
from analytics.sensor_faults.pressure_drift import PressureDriftScreen
from analytics.sensor_faults.screen import FAULT_NAMES, ChannelScreen, SignalScreen, Step
from analytics.sensor_faults.spikes import SpikeScreen
from analytics.sensor_faults.stuck import StuckScreen

__all__ = [
    "FAULT_NAMES",
    "SCREEN_NAMES",
    "ChannelScreen",
    "LeakDriftScreen",
    "MissingScreen",
    "PressureDriftScreen",
    "SensorFaultDetector",
    "SignalScreen",
    "SpikeScreen",
    "Step",
    "StuckScreen",
]
