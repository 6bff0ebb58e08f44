"""``FleetSpec``: everything that decides which fleet is simulated, one seed for all of it.

Two starting points:

* ``FleetSpec(...)`` (the defaults) is the *demo* fleet of ``sealscope up --simulate``: a
  sample a minute, ten per uplink, an ideal radio, a fixed share of valves whose seats start
  leaking within the first half hour of event time, so detectors alarm within minutes.
* ``FleetSpec.field(...)`` is an NB-IoT *field* fleet: a sample every five minutes, an
  uplink an hour, Weibull wear-out onsets from the devices' installation ages (some
  manufacturing batches markedly worse), gradual and sudden seat leaks and actuator friction
  wear, sensor faults, lossy radio with retries, drifting and wrong clocks, local alarms.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FleetSpec"]

OnsetModel = Literal["window", "weibull"]
Radio = Literal["ideal", "nbiot"]
Engine = Literal["numpy", "compiled"]


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What fleet to simulate. All times are event times (Unix s)."""

    devices: int = 100
    seed: int = 0
    valve_share: float = 0.7
    start_t: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z; fixed so runs are reproducible
    sample_interval_s: float = 60.0
    samples_per_uplink: int = 10
    # Spread of the devices' wake-up phase: None = one sample interval (uplinks bunched
    # within it); the field preset spreads wake-ups over the whole uplink interval.
    phase_spread_s: float | None = None

    # -- degradation ---------------------------------------------------------------------
    onset_model: OnsetModel = "window"
    # window: exactly this share of the valves degrades, starting in this uplink range
    degrading_share: float = 0.1
    onset_uplinks: tuple[int, int] = (8, 30)
    degrade_span_uplinks: int = 30  # window: uplinks from onset to full degradation
    # weibull: onset = residual life of a Weibull(shape, scale) given the installation age
    weibull_shape: float = 2.5
    weibull_scale_days: float = 3650.0
    install_age_days: tuple[float, float] = (0.0, 1500.0)
    horizon_days: float = 3650.0  # weibull: onsets later than this after start_t: none
    degrade_span_days: tuple[float, float] = (20.0, 120.0)
    degrade_factor: float = 30.0  # leak coefficient at full gradual degradation, x baseline
    step_share: float = 0.25  # of the degrading seats: a sudden step (damage) instead
    friction_share: float = 0.0  # of the degrading valves: actuation friction grows instead
    friction_factor: float = 3.0  # friction torque at full wear, x baseline
    # of the manufacturing batches, rounded to a count (at least one unless 0)
    bad_batch_share: float = 0.2
    bad_batch_hazard: float = 4.0  # their wear-out hazard, x that of their peers
    leak_exponent: tuple[float, float] = (0.5, 0.5)  # n of Q = C * dP^n, drawn per valve
    transients_per_day: float = 4.0  # pressure transients (water hammer) per device

    # -- sensors -----------------------------------------------------------------------
    sensor_faults_per_year: float = 0.0  # episodes per device-year (drift, stuck, spikes, dropout)

    # -- NB-IoT --------------------------------------------------------------------------
    radio: Radio = "ideal"  # "nbiot": coverage-dependent losses and retries
    max_attempts: int = 4  # transmissions per message before the device gives up
    buffer_samples: int = 2000  # samples a device keeps while its uplinks fail
    clock_drift_ppm: float = 0.0  # standard deviation of the crystal error
    wrong_clock_share: float = 0.0  # devices that start with a clock hours to a year off
    local_alarms: bool = False  # alarm uplinks (wire Event) when a local threshold trips
    battery_mah: float = 19_000.0  # Li-SOCl2 D cell

    # -- computing it ------------------------------------------------------------------
    # "numpy": the reference (one numpy pass per sample slot; the seed's stream as it was
    # recorded). "compiled": the same physics compiled (``kernel``, numba), many times
    # faster, with the same statistics but another stream: other readings for a seed.
    engine: Engine = "numpy"

    def __post_init__(self) -> None:
        checks = (
            (self.devices >= 1, "devices must be >= 1"),
            (self.devices <= 999_999, "devices must fit a six-digit serial"),
            (0.0 <= self.valve_share <= 1.0, "valve_share must be in [0, 1]"),
            (0.0 <= self.degrading_share <= 1.0, "degrading_share must be in [0, 1]"),
            (self.sample_interval_s > 0, "sample_interval_s must be > 0"),
            (1 <= self.samples_per_uplink <= 10_000, "samples_per_uplink must be 1..10000"),
            (0 <= self.onset_uplinks[0] <= self.onset_uplinks[1], "onset_uplinks: 0 <= lo <= hi"),
            (self.degrade_span_uplinks >= 1, "degrade_span_uplinks must be >= 1"),
            (self.degrade_factor >= 1.0, "degrade_factor must be >= 1"),
            (self.onset_model in ("window", "weibull"), "onset_model: window or weibull"),
            (self.weibull_shape > 0 and self.weibull_scale_days > 0, "weibull: shape, scale > 0"),
            (0 <= self.install_age_days[0] <= self.install_age_days[1], "install_age_days"),
            (self.horizon_days > 0, "horizon_days must be > 0"),
            (0 < self.degrade_span_days[0] <= self.degrade_span_days[1], "degrade_span_days"),
            (0.0 <= self.step_share + self.friction_share <= 1.0, "step + friction share <= 1"),
            (self.friction_factor >= 1.0, "friction_factor must be >= 1"),
            (0.0 <= self.bad_batch_share <= 1.0, "bad_batch_share must be in [0, 1]"),
            (self.bad_batch_hazard >= 1.0, "bad_batch_hazard must be >= 1"),
            (0.3 <= self.leak_exponent[0] <= self.leak_exponent[1] <= 1.0, "leak_exponent"),
            (self.transients_per_day >= 0, "transients_per_day must be >= 0"),
            (self.sensor_faults_per_year >= 0, "sensor_faults_per_year must be >= 0"),
            (self.radio in ("ideal", "nbiot"), "radio: ideal or nbiot"),
            (1 <= self.max_attempts <= 16, "max_attempts must be 1..16"),
            (self.buffer_samples >= self.samples_per_uplink, "buffer_samples < one uplink"),
            (self.clock_drift_ppm >= 0, "clock_drift_ppm must be >= 0"),
            (0.0 <= self.wrong_clock_share <= 1.0, "wrong_clock_share must be in [0, 1]"),
            (self.battery_mah > 0, "battery_mah must be > 0"),
            (self.phase_spread_s is None or self.phase_spread_s >= 0, "phase_spread_s >= 0"),
            (self.engine in ("numpy", "compiled"), "engine: numpy or compiled"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def field(cls, *, devices: int = 1000, seed: int = 0, **overrides: Any) -> FleetSpec:
        """A realistic NB-IoT field fleet (see the module docstring); override any field."""
        values: dict[str, Any] = {
            "devices": devices,
            "seed": seed,
            "sample_interval_s": 300.0,
            "samples_per_uplink": 12,
            "phase_spread_s": 3600.0,
            "onset_model": "weibull",
            "weibull_shape": 2.5,
            "weibull_scale_days": 3650.0,
            "step_share": 0.3,
            "friction_share": 0.25,
            "leak_exponent": (0.5, 0.65),
            "transients_per_day": 2.0,
            "sensor_faults_per_year": 0.15,
            # a few percent of batches are bad: one of the 16 (4 makers x 4 batches)
            "bad_batch_share": 0.05,
            "radio": "nbiot",
            "clock_drift_ppm": 20.0,
            "wrong_clock_share": 0.02,
            "local_alarms": True,
        }
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> FleetSpec:
        return dataclasses.replace(self, **changes)

    @property
    def uplink_span_s(self) -> float:
        """Event time covered by one uplink (the uplink interval)."""
        return self.sample_interval_s * self.samples_per_uplink

    @property
    def phase_span_s(self) -> float:
        return self.sample_interval_s if self.phase_spread_s is None else self.phase_spread_s
