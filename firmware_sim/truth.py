"""Ground truth: what the simulator did to each device, for scoring detectors against it.

``FleetTruth.write(path)`` writes it as JSON (``.json``: one object with a ``devices``
list, sensor faults nested) or CSV (``.csv``: one row per device; sensor faults as a
``;``-separated ``sensor:kind@start-end`` list). Times are true event times (Unix s, UTC),
not the device's drifting clock; ``None`` / empty means "does not happen".
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

__all__ = ["DegradationMode", "DeviceTruth", "FleetTruth", "SensorFault", "SensorFaultKind"]

DegradationMode = Literal["none", "leak_gradual", "leak_step", "friction_gradual"]
SensorFaultKind = Literal["drift", "stuck", "spikes", "dropout"]


@dataclass(frozen=True, slots=True)
class SensorFault:
    sensor: Literal["leak", "pressure"]  # leak_mm3s, or p_in_kpa
    kind: SensorFaultKind
    start_t: float
    end_t: float | None  # None: lasts beyond any run (a drift until recalibration)


@dataclass(frozen=True, slots=True)
class DeviceTruth:
    """What the simulator knows and detectors must find out, per device."""

    device_id: str
    kind: str
    is_degrading: bool
    onset_t: float | None  # event time the seat or seal starts to degrade
    leak_coeff_baseline: float | None  # mm3/s per kPa^n, valves only
    allowable_leak_mm3s: float | None  # ISO 5208 rate for class and DN, valves only
    mode: DegradationMode = "none"
    batch: str = ""
    is_bad_batch: bool = False
    limit_crossing_t: float | None = None  # leak at test ΔP (valves) passes the class limit;
    # for friction wear: required torque passes the actuator's rating
    leak_exponent: float | None = None
    sensor_faults: tuple[SensorFault, ...] = ()
    clock_offset_s: float = 0.0  # device clock minus true time at the start
    clock_drift_ppm: float = 0.0
    rsrp_dbm: float | None = None  # coverage: the device's mean RSRP
    battery_empty_t: float | None = None


@dataclass(frozen=True, slots=True)
class FleetTruth:
    devices: tuple[DeviceTruth, ...]
    until_t: float  # the truth covers event times up to here

    def by_id(self) -> dict[str, DeviceTruth]:
        return {d.device_id: d for d in self.devices}

    def as_dict(self) -> dict[str, Any]:
        return {
            "until_t": self.until_t,
            "devices": [_clean(asdict(d)) for d in self.devices],
        }

    def write(self, path: str | Path) -> Path:
        """Write as JSON or CSV, chosen by the suffix."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            self._write_csv(path)
        elif path.suffix.lower() == ".json":
            path.write_text(json.dumps(self.as_dict(), indent=1, allow_nan=False))
        else:
            raise ValueError(f"truth file must end in .json or .csv, not {path.name!r}")
        return path

    def _write_csv(self, path: Path) -> None:
        names = [f.name for f in fields(DeviceTruth)]
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for device in self.devices:
                row = []
                for name in names:
                    value = getattr(device, name)
                    if name == "sensor_faults":
                        value = ";".join(
                            f"{sf.sensor}:{sf.kind}@{sf.start_t:.0f}-"
                            + ("" if sf.end_t is None else f"{sf.end_t:.0f}")
                            for sf in value
                        )
                    elif value is None:
                        value = ""
                    row.append(value)
                writer.writerow(row)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
