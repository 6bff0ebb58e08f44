"""A simulated fleet of NB-IoT smart valves and pumps: devices, physics, wear, radio.

State is struct-of-arrays in numpy, one slot per device. ``Fleet.step()`` advances one
uplink interval of event time: every device takes ``samples_per_uplink`` samples (physics
in ``physics``, sensor faults in ``faults``), checks its local alarm thresholds, and wakes
once to send its buffer; the radio (``radio``) decides what reached the network. The
payloads are JSON bytes made straight from the columns (``encoding``), never a Python
object per sample, so a round of 100,000 devices costs about a second.

Everything is drawn from one seed, in separate streams for the devices, the physics, the
sensor faults and the radio: the same ``FleetSpec`` gives the same devices, the same
payload bytes and the same radio outcomes, round after round.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from firmware_sim import catalog, faults, physics, radio
from firmware_sim.catalog import allowable_leak_mm3s
from firmware_sim.encoding import DECIMALS, encode_telemetry_rows
from firmware_sim.spec import FleetSpec
from firmware_sim.truth import DegradationMode, DeviceTruth, FleetTruth, SensorFault
from sealscope.registry import Device
from sealscope.wire import SCHEMA_VERSION, Event, Sample, State, Telemetry, decode_telemetry

__all__ = [
    "DeviceTruth",
    "Fleet",
    "FleetSpec",
    "RadioCounts",
    "RoundOutput",
    "Uplink",
    "allowable_leak_mm3s",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MessageKind = Literal["telemetry", "event"]

_VALVE_FIELDS: Final = (
    "p_in_kpa",
    "p_out_kpa",
    "leak_mm3s",
    "position_pct",
    "stroke_s",
    "torque_nm",
    "motor_a",
    "temp_c",
    "battery_v",
    "rsrp_dbm",
    "sinr_db",
)
_PUMP_FIELDS: Final = (
    "p_in_kpa",
    "p_out_kpa",
    "leak_mm3s",
    "motor_a",
    "temp_c",
    "vib_mms",
    "flow_m3h",
    "speed_rpm",
    "battery_v",
    "rsrp_dbm",
    "sinr_db",
)
_ALL_FIELDS: Final = tuple(dict.fromkeys(_VALVE_FIELDS + _PUMP_FIELDS))
_MODES: Final[tuple[DegradationMode, ...]] = (
    "none",
    "leak_gradual",
    "leak_step",
    "friction_gradual",
)
_CHUNK: Final = 8192  # devices encoded per numpy pass: bounds the temporary arrays
_LOW_BATTERY_V: Final = 3.3
_WRONG_CLOCK_OFFSETS_S: Final = (-365 * 86_400.0, -30 * 86_400.0, -8 * 3600.0, 86_400.0)


class Uplink(NamedTuple):
    device_id: str
    telemetry: Telemetry


@dataclass(slots=True)
class RoundOutput:
    """The messages one round produced, in order of their (true) wake-up time."""

    index: int
    device: I64  # device slot per message
    kind: list[MessageKind]
    payload: list[bytes]
    seq: I64
    copies: I64  # copies that reached the network: 0 = lost, > 1 = retries duplicated it
    attempts: I64  # transmissions the device made
    is_acked: npt.NDArray[np.bool_]  # the device saw an acknowledgement
    wake_t: F64  # true event time of the transmission
    samples: I64  # samples carried per message (0 for events)

    def __len__(self) -> int:
        return len(self.payload)


@dataclass(slots=True)
class RadioCounts:
    """Cumulative over the fleet's life: what devices generated and what the radio did."""

    samples_generated: int = 0
    messages: int = 0  # telemetry + event messages the devices sent (first attempts)
    telemetry_messages: int = 0
    event_messages: int = 0
    transmissions: int = 0  # including retries
    copies_delivered: int = 0  # transmissions that reached the network
    duplicate_copies: int = 0  # copies beyond the first of a message
    messages_lost: int = 0  # no copy reached the network
    messages_unacked: int = 0  # the device saw no acknowledgement (and kept the samples)
    samples_resent: int = 0  # samples sent again after an unacknowledged uplink
    samples_dropped: int = 0  # buffer overflow while uplinks kept failing
    charge_used_mah: float = 0.0
    events: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


class Fleet:
    """Deterministic devices plus their physical state; ``step()`` advances event time."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        static, physics_seq, fault_seq, radio_seq, secret_seq = np.random.SeedSequence(
            spec.seed
        ).spawn(5)
        self._rng = np.random.default_rng(physics_seq)
        self._fault_rng = np.random.default_rng(fault_seq)
        self._radio_rng = np.random.default_rng(radio_seq)
        self._secret = secret_seq.generate_state(4).tobytes()
        self._build(np.random.default_rng(static))
        self._uplinks_done = 0
        self.counts = RadioCounts()
        # samples a device still holds because its uplink was not acknowledged
        self._pending: dict[int, list[tuple[bytes, int]]] = {}

    # -- construction -------------------------------------------------------------------

    def _build(self, rng: np.random.Generator) -> None:
        spec, n = self.spec, self.spec.devices
        n_valves = round(n * spec.valve_share)
        is_valve = np.zeros(n, dtype=bool)
        is_valve[rng.permutation(n)[:n_valves]] = True
        self.is_valve = is_valve
        self.valve_idx = np.flatnonzero(is_valve)
        self.pump_idx = np.flatnonzero(~is_valve)

        makers = catalog.MAKERS
        maker_of = rng.choice(len(makers), size=n, p=catalog.MAKER_WEIGHTS)
        batch_of = rng.integers(0, catalog.BATCHES_PER_MAKER, size=n)
        n_sites = max(1, math.ceil(n / catalog.DEVICES_PER_SITE))
        site_of = rng.integers(0, n_sites, size=n)
        batch_names = [
            [f"{m.code}-{22 + b}{int(w):02d}" for b, w in enumerate(rng.integers(1, 53, 4))]
            for m in makers
        ]
        model_pick = rng.random(n)
        seat_pick = rng.random(n)
        dn_pick = rng.random(n)
        pn = rng.choice(catalog.PN_CLASSES, size=n, p=[0.3, 0.4, 0.2, 0.1])

        devices: list[Device] = []
        dn = np.zeros(n, dtype=np.int64)
        allow = np.full(n, np.nan)
        valve_type: list[str] = []
        soft_seat = np.zeros(n, dtype=bool)
        for i, (mk, b, st, is_v) in enumerate(
            zip(
                maker_of.tolist(),
                batch_of.tolist(),
                site_of.tolist(),
                is_valve.tolist(),
                strict=False,
            )
        ):
            maker = makers[mk]
            region = catalog.REGIONS[st % len(catalog.REGIONS)]
            common = {
                "manufacturer": maker.code,
                "batch": batch_names[mk][b],
                "site": f"{region}-s{st + 1:03d}",
                "region": region,
                "pn": int(pn[i]),
                "firmware": maker.firmware,
            }
            if is_v:
                model = maker.valves[int(model_pick[i] * len(maker.valves))]
                seat, leak_class = model.seats[int(seat_pick[i] * len(model.seats))]
                sizes = catalog.DN_SIZES[
                    (model.dn_range[0] <= catalog.DN_SIZES)
                    & (model.dn_range[1] >= catalog.DN_SIZES)
                ]
                dn[i] = sizes[int(dn_pick[i] * len(sizes))]
                allow[i] = allowable_leak_mm3s(leak_class, int(dn[i]))
                valve_type.append(model.valve_type)
                soft_seat[i] = seat in catalog.SOFT_SEATS
                devices.append(
                    Device(
                        device_id=f"{maker.code}-V-{i + 1:06d}",
                        kind="valve",
                        model=model.name,
                        dn=int(dn[i]),
                        seat_material=seat,
                        leakage_class=leak_class,  # type: ignore[arg-type]
                        **common,  # type: ignore[arg-type]
                    )
                )
            else:
                valve_type.append("")
                model_name = maker.pumps[int(model_pick[i] * len(maker.pumps))]
                dn[i] = catalog.DN_SIZES[4 + int(dn_pick[i] * 8)]  # DN40..DN200 discharge
                devices.append(
                    Device(
                        device_id=f"{maker.code}-P-{i + 1:06d}",
                        kind="pump",
                        model=model_name,
                        dn=int(dn[i]),
                        seat_material="SiC/carbon",  # mechanical seal faces
                        **common,  # type: ignore[arg-type]
                    )
                )
        self.devices: tuple[Device, ...] = tuple(devices)
        self.device_ids: tuple[str, ...] = tuple(d.device_id for d in devices)
        self.index_of: dict[str, int] = {d: i for i, d in enumerate(self.device_ids)}
        self.dn = dn
        self.pn = pn.astype(np.float64)
        self.allowable_mm3s = allow
        self.valve_type = tuple(valve_type)  # "" for pumps
        self.site_of = site_of
        self.batch_code = maker_of * catalog.BATCHES_PER_MAKER + batch_of
        self.batch_names = tuple(d.batch for d in devices)

        # Site hydraulics and environment
        site_p_kpa = rng.uniform(250.0, 800.0, n_sites)
        site_temp_c = rng.uniform(8.0, 24.0, n_sites)
        self.site_noise = rng.normal(0.0, 1.0, n_sites)
        self.p_nom_kpa = np.minimum(site_p_kpa[site_of], 0.7 * 100.0 * self.pn)
        self.temp_base_c = site_temp_c[site_of] + rng.normal(0.0, 1.5, n)
        self.phase_s = np.round(rng.uniform(0.0, spec.phase_span_s, n), 3)

        # Seat leakage Q = C dP^n: C puts the leak at ISO 5208 test pressure (1.1 x PN)
        # at 5-30 % of the class allowance, so healthy valves are well inside class.
        lo_n, hi_n = spec.leak_exponent
        self.leak_n = np.where(
            soft_seat, rng.uniform(lo_n, hi_n, n), rng.uniform(lo_n, lo_n + 0.3 * (hi_n - lo_n), n)
        )
        self.test_dp_kpa = 110.0 * self.pn
        frac = np.exp(rng.uniform(math.log(0.05), math.log(0.3), n))
        seal_c = rng.uniform(0.005, 0.02, n) * 14.0 ** (0.5 - self.leak_n)
        self.leak_c0 = np.where(is_valve, frac * allow / self.test_dp_kpa**self.leak_n, seal_c)

        self._build_wear(rng)
        self._build_actuators(rng)

        # Pumps
        self.n_nom_rpm = rng.choice(catalog.PUMP_SPEEDS_RPM, n)
        self.q_nom_m3h = 0.004 * dn**2 * rng.uniform(0.8, 1.2, n)
        self.dp_nom_kpa = rng.uniform(200.0, 600.0, n)
        self.p_suction_kpa = rng.uniform(50.0, 250.0, n)
        self.vib_base_mms = rng.uniform(0.8, 2.2, n)
        self.motor_nom_a = 0.02 * self.q_nom_m3h * self.dp_nom_kpa / 100.0 + 1.0

        # Radio, clock, battery
        self.rsrp_base_dbm = np.clip(rng.normal(-95.0, 12.0, n), -135.0, -60.0)
        self.clock_drift_ppm = rng.normal(0.0, 1.0, n) * spec.clock_drift_ppm
        wrong = rng.random(n) < spec.wrong_clock_share
        wrong_by = np.array(_WRONG_CLOCK_OFFSETS_S)[rng.integers(0, 4, n)]
        self.clock_offset0_s = np.round(
            np.where(wrong, wrong_by, rng.normal(0.0, 2.0, n) * (spec.clock_drift_ppm > 0)), 3
        )
        self.clock_base_s = self.clock_offset0_s.copy()
        self.clock_ref_t = np.full(n, spec.start_t)
        self.battery_used_mah = rng.uniform(0.0, 0.3, n) * spec.battery_mah

        # Sensor faults
        leak_scale = np.where(is_valve, np.nan_to_num(allow) * 0.1, 0.2)
        self.faults = faults.draw_faults(
            np.random.default_rng(rng.integers(2**63)),
            n=n,
            start_t=spec.start_t,
            per_year=spec.sensor_faults_per_year,
            leak_scale=np.maximum(leak_scale, 0.01),
            pressure_scale=self.p_nom_kpa,
        )

        # Dynamic state
        self.is_open = np.zeros(n, dtype=bool)
        self.open_pct = np.zeros(n)
        self.is_running = rng.random(n) < 0.9
        self.stroke_test_pending = np.zeros(n, dtype=bool)
        self.alarm_latched = np.zeros(n, dtype=bool)
        self.over_limit_prev = np.zeros(n, dtype=bool)
        self.low_battery_sent = np.zeros(n, dtype=bool)
        self.dropout_reported = np.zeros((n, faults.MAX_EPISODES), dtype=bool)
        self.seq = np.zeros(n, dtype=np.int64)

    def _build_wear(self, rng: np.random.Generator) -> None:
        spec, n = self.spec, self.spec.devices
        n_batches = len(catalog.MAKERS) * catalog.BATCHES_PER_MAKER
        self.bad_batch = rng.random(n_batches) < spec.bad_batch_share
        batch_hazard = np.where(self.bad_batch, spec.bad_batch_hazard, 1.0) * np.exp(
            rng.normal(0.0, 0.15, n_batches)
        )
        hazard = batch_hazard[self.batch_code]
        mode_pick = rng.random(n)
        age_s = rng.uniform(*spec.install_age_days, n) * 86_400.0
        residual = rng.exponential(1.0, n)
        span_pick = rng.uniform(*spec.degrade_span_days, n) * 86_400.0
        window_pick = rng.uniform(*spec.onset_uplinks, n)
        step_size = rng.uniform(0.3, 1.0, n)

        if spec.onset_model == "window":
            # a fixed share of the valves, picked with their batch's hazard as weight
            count = round(self.valve_idx.size * spec.degrading_share)
            degrading = np.zeros(n, dtype=bool)
            if count:
                w = hazard[self.valve_idx] / hazard[self.valve_idx].sum()
                degrading[rng.choice(self.valve_idx, count, replace=False, p=w)] = True
            onset = np.where(degrading, spec.start_t + window_pick * spec.uplink_span_s, np.inf)
            span = np.full(n, spec.degrade_span_uplinks * spec.uplink_span_s)
        else:
            # residual life of a Weibull(beta, eta) device that has survived to its age
            beta = spec.weibull_shape
            eta = spec.weibull_scale_days * 86_400.0 / hazard ** (1.0 / beta)
            life = eta * ((age_s / eta) ** beta + residual) ** (1.0 / beta)
            onset = spec.start_t + (life - age_s)
            onset = np.where(onset <= spec.start_t + spec.horizon_days * 86_400.0, onset, np.inf)
            span = span_pick
        self.age_s = age_s
        # mode: leak step, friction (valves), or gradual leak
        mode = np.where(np.isfinite(onset), 1, 0)
        is_step = mode_pick < spec.step_share
        is_friction = (
            self.is_valve
            & (mode_pick >= spec.step_share)
            & (mode_pick < spec.step_share + spec.friction_share)
        )
        mode = np.where(mode > 0, np.where(is_step, 2, np.where(is_friction, 3, 1)), 0)
        self.mode = mode.astype(np.int8)
        self.onset_t = np.where(mode > 0, onset, np.inf)
        self.degrade_span_s = span
        self.step_factor = spec.degrade_factor * step_size
        self.degrading = mode > 0

    def _build_actuators(self, rng: np.random.Generator) -> None:
        n = self.spec.devices
        types = [catalog.VALVE_TYPES.get(t) for t in self.valve_type]

        def per_type(attr: str, default: float) -> F64:
            return np.array([default if t is None else float(getattr(t, attr)) for t in types])

        dn = self.dn.astype(np.float64)
        self.seat_torque_nm = (
            per_type("seat_torque_nm_per_dn2", 0.0) * dn**2 * rng.uniform(0.8, 1.2, n)
        )
        self.dp_friction = (
            per_type("friction", 0.0) * per_type("dp_radius", 0.0) * rng.uniform(0.85, 1.15, n)
        )
        is_qt = per_type("is_quarter_turn", 0.0) > 0
        self.stroke_nominal_s = np.where(
            is_qt, per_type("stroke_s_base", 0.0), per_type("stroke_s_per_dn", 0.0) * dn
        ) * rng.uniform(0.9, 1.1, n)
        self.is_on_off = per_type("is_on_off", 0.0) > 0
        self.target_pct = np.where(self.is_on_off, 100.0, np.round(rng.uniform(30.0, 100.0, n)))
        # actuator sized for 1.5x the healthy breakaway torque at the PN rating
        from firmware_sim.physics import required_torque_nm

        everyone = np.arange(n)
        healthy_at_pn = required_torque_nm(self, everyone, 100.0 * self.pn, np.ones(n))
        self.rated_torque_nm = np.maximum(1.5 * healthy_at_pn, 1.0)
        self.motor_rated_a = 0.3 + self.rated_torque_nm / 150.0
        self.motor_idle_a = 0.3 * self.motor_rated_a
        # a third of the valves run a daily schedule (filling, flushing, zone supply)
        self.is_scheduled = (rng.random(n) < 0.3) & self.is_valve
        self.sched_open_h = rng.uniform(0.0, 24.0, n)
        self.sched_len_h = rng.uniform(0.5, 3.0, n)

    # -- wear and ground truth ----------------------------------------------------------

    def _progress(self, t: F64, idx: I64) -> F64:
        with np.errstate(invalid="ignore"):
            p = (t - self.onset_t[idx]) / self.degrade_span_s[idx]
        return np.where(np.isfinite(self.onset_t[idx]), np.clip(p, 0.0, 1.0), 0.0)

    def leak_coeff_at(self, t: F64, idx: I64) -> F64:
        """True leak coefficient (mm3/s per kPa^n) of devices ``idx`` at event times ``t``."""
        mode = self.mode[idx]
        c0 = self.leak_c0[idx]
        gradual = c0 * self.spec.degrade_factor ** self._progress(t, idx)
        step = np.where(t >= self.onset_t[idx], c0 * self.step_factor[idx], c0)
        return np.where(mode == 1, gradual, np.where(mode == 2, step, c0))

    def friction_multiplier(self, t: F64, idx: I64) -> F64:
        grow = 1.0 + (self.spec.friction_factor - 1.0) * self._progress(t, idx)
        return np.where(self.mode[idx] == 3, grow, 1.0)

    def leak_coeff(self, t: F64 | float) -> F64:
        """True leak coefficient of every device at event time ``t`` (scalar, or an array
        broadcastable to (devices, k)); for pumps, of the mechanical seal."""
        t_arr = np.asarray(t, dtype=np.float64)
        everyone = np.arange(self.spec.devices)
        if t_arr.ndim == 0:
            return self.leak_coeff_at(np.full(self.spec.devices, float(t_arr)), everyone)
        tt = np.broadcast_to(t_arr, (self.spec.devices, *t_arr.shape[1:]))
        shape = tt.shape
        flat_t = tt.reshape(self.spec.devices, -1)
        cols = [self.leak_coeff_at(flat_t[:, c], everyone) for c in range(flat_t.shape[1])]
        return np.stack(cols, axis=1).reshape(shape)

    def _limit_crossing_t(self) -> F64:
        """When each device passes its limit: valves' leak at test ΔP over the ISO 5208
        class allowance (or friction over the actuator rating), pumps' seal leak at the
        nominal chamber pressure over the seal limit."""
        n = self.spec.devices
        chamber = self.p_suction_kpa + 0.3 * self.dp_nom_kpa
        reference = np.where(
            self.is_valve,
            self.leak_c0 * self.test_dp_kpa**self.leak_n,
            self.leak_c0 * chamber**self.leak_n,
        )
        limit = np.where(self.is_valve, self.allowable_mm3s, catalog.PUMP_SEAL_LIMIT_MM3S)
        ratio = limit / reference
        out = np.full(n, np.nan)
        f = self.spec.degrade_factor
        with np.errstate(divide="ignore", invalid="ignore"):
            gradual = self.onset_t + self.degrade_span_s * np.log(ratio) / np.log(f)
        out = np.where((self.mode == 1) & (ratio <= f), gradual, out)
        out = np.where((self.mode == 2) & (self.step_factor >= ratio), self.onset_t, out)
        everyone = np.arange(n)
        healthy = physics.required_torque_nm(self, everyone, self.p_nom_kpa, np.ones(n))
        need = self.rated_torque_nm / np.maximum(healthy, 1e-9)
        ff = self.spec.friction_factor
        friction_t = self.onset_t + self.degrade_span_s * (need - 1.0) / max(ff - 1.0, 1e-9)
        out = np.where((self.mode == 3) & (need <= ff), friction_t, out)
        return np.where(ratio <= 1.0, self.spec.start_t, out)

    def _battery_empty_t(self) -> F64:
        """Projected from the charge used so far per second of event time."""
        elapsed = max(self.now_t - self.spec.start_t, 1.0)
        used0 = self._battery_used0
        rate = (self.battery_used_mah - used0) / elapsed
        with np.errstate(divide="ignore"):
            left_s = (self.spec.battery_mah - self.battery_used_mah) / rate
        return np.where(rate > 0, self.now_t + left_s, np.inf)

    def truth(self) -> list[DeviceTruth]:
        """Per-device ground truth as of now (sensor faults: those started by ``now_t``)."""
        return list(self.fleet_truth().devices)

    def fleet_truth(self) -> FleetTruth:
        until = self.now_t
        crossing = self._limit_crossing_t()
        empty = (
            self._battery_empty_t() if self._uplinks_done else np.full(self.spec.devices, np.inf)
        )
        out = []
        for i, device in enumerate(self.devices):
            valve = bool(self.is_valve[i])
            degrading = bool(self.degrading[i])
            out.append(
                DeviceTruth(
                    device_id=device.device_id,
                    kind=device.kind,
                    is_degrading=degrading,
                    onset_t=float(self.onset_t[i]) if degrading else None,
                    leak_coeff_baseline=float(self.leak_c0[i]) if valve else None,
                    allowable_leak_mm3s=float(self.allowable_mm3s[i]) if valve else None,
                    mode=_MODES[self.mode[i]],
                    batch=device.batch,
                    is_bad_batch=bool(self.bad_batch[self.batch_code[i]]),
                    limit_crossing_t=_finite(crossing[i]),
                    leak_exponent=round(float(self.leak_n[i]), 4),
                    sensor_faults=tuple(
                        SensorFault(s, k, a, b)  # type: ignore[arg-type]
                        for s, k, a, b in self.faults.episodes(i, until)
                    ),
                    clock_offset_s=float(self.clock_offset0_s[i]),
                    clock_drift_ppm=round(float(self.clock_drift_ppm[i]), 3),
                    rsrp_dbm=round(float(self.rsrp_base_dbm[i]), 1),
                    battery_empty_t=_finite(empty[i]),
                )
            )
        return FleetTruth(tuple(out), until_t=until)

    def write_truth(self, path: str) -> str:
        """Write the ground truth to ``path`` (.json or .csv); returns the path."""
        return str(self.fleet_truth().write(path))

    def credentials(self, device_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Per-device MQTT / CoAP secrets, derived from the seed (provision them as users)."""
        ids = self.device_ids if device_ids is None else device_ids
        return {d: hmac.new(self._secret, d.encode(), hashlib.sha256).hexdigest()[:24] for d in ids}

    # -- time ---------------------------------------------------------------------------

    @property
    def uplinks_done(self) -> int:
        return self._uplinks_done

    @property
    def now_t(self) -> float:
        """Event time at the start of the next round's first sample slot (phase 0)."""
        return self.spec.start_t + self._uplinks_done * self.spec.uplink_span_s

    @property
    def round_end_t(self) -> float:
        """Latest true event time the next round samples at."""
        return self.now_t + float(self.phase_s.max()) + self.spec.uplink_span_s

    def device_clock(self, t: F64, idx: I64) -> F64:
        """What the devices' clocks read at true event time ``t``."""
        drift = self.clock_drift_ppm[idx] * 1e-6 * (t - self.clock_ref_t[idx])
        return t + self.clock_base_s[idx] + drift

    def states(self) -> list[tuple[str, State]]:
        """The retained ``state`` message of every device, as at the current event time."""
        t = self.now_t
        everyone = np.arange(self.spec.devices)
        clock = np.round(self.device_clock(np.full(self.spec.devices, t), everyone), 3).tolist()
        cfg: dict[str, int | float | str | bool] = {
            "sample_interval_s": self.spec.sample_interval_s,
            "samples_per_uplink": self.spec.samples_per_uplink,
            "uplink_interval_s": self.spec.uplink_span_s,
            "psm": self.spec.radio == "nbiot",
        }
        rsrp = np.round(self.rsrp_base_dbm, 1).tolist()
        sinr = np.round(radio.sinr_db(self.rsrp_base_dbm), 1).tolist()
        battery = np.round(self._battery_v(), 3).tolist()
        return [
            (
                d.device_id,
                State(
                    v=SCHEMA_VERSION,
                    t=clock[i],
                    fw=d.firmware,
                    seq=int(self.seq[i]),
                    config=cfg,
                    rsrp_dbm=rsrp[i],
                    sinr_db=sinr[i],
                    battery_v=battery[i],
                    last_wake_t=clock[i],
                ),
            )
            for i, d in enumerate(self.devices)
        ]

    def _battery_v(self) -> F64:
        return radio.battery_voltage(self.battery_used_mah / self.spec.battery_mah)

    # -- downlink -----------------------------------------------------------------------

    def deliver_downlink(self, device_id: str, payload: bytes, *, t: float | None = None) -> bool:
        """A command reached the device right after its uplink; True if it carried it out.

        Understood: ``{"cmd": "stroke_test"}`` (a full stroke at the next sample, reporting
        stroke time, torque and motor current) and ``{"cmd": "time_sync", "t": <unix s>}``
        (the clock is set to ``t``, true time if omitted). ``"name"``/``"command"`` are
        accepted for ``"cmd"``, and ``"params"``/``"args"`` are looked into.
        """
        i = self.index_of.get(device_id)
        if i is None:
            return False
        try:
            body = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(body, dict):
            return False
        name = body.get("cmd") or body.get("name") or body.get("command")
        params = body.get("params") or body.get("args") or body
        if name == "stroke_test" and self.is_valve[i]:
            self.stroke_test_pending[i] = True
            return True
        if name == "time_sync":
            now = self.now_t if t is None else t
            target = params.get("t", now) if isinstance(params, dict) else now
            if not isinstance(target, int | float):
                return False
            self.clock_base_s[i] = float(target) - now
            self.clock_ref_t[i] = now
            return True
        return False

    # -- one round ----------------------------------------------------------------------

    def next_uplinks(self) -> list[Uplink]:
        """One round as ``Telemetry`` objects, in device order (compatibility and tests).

        Every telemetry message a device sent is returned, whatever the radio did with it.
        ``step()`` is the fast path: bytes, with the radio's outcome.
        """
        out = self.step()
        order = sorted(
            (d, k)
            for k, (d, kind) in enumerate(zip(out.device.tolist(), out.kind, strict=False))
            if kind == "telemetry"
        )
        return [
            Uplink(
                self.device_ids[d], decode_telemetry(out.payload[k], device_id=self.device_ids[d])
            )
            for d, k in order
        ]

    def step(self) -> RoundOutput:
        """Advance one uplink interval: sample, check alarms, wake, transmit."""
        spec, n, s = self.spec, self.spec.devices, self.spec.samples_per_uplink
        if self._uplinks_done == 0:
            self._battery_used0 = self.battery_used_mah.copy()
        slot0 = self._uplinks_done * s
        times = np.round(
            spec.start_t + self.phase_s[:, None] + (slot0 + np.arange(s)) * spec.sample_interval_s,
            3,
        )
        cols = {name: np.full((n, s), np.nan) for name in _ALL_FIELDS}
        actuation: list[tuple[int, int, str, str]] = []
        for j in range(s):
            physics.valve_slot(self, cols, j, times[:, j], self._rng, actuation)
            physics.pump_slot(self, cols, j, times[:, j], self._rng)
        dropped = faults.apply_faults(self.faults, self._fault_rng, times, cols)
        for name in _ALL_FIELDS:  # sensor resolution, and what a sensor cannot read
            np.round(cols[name], DECIMALS[name], out=cols[name])
        np.maximum(cols["leak_mm3s"], 0.0, out=cols["leak_mm3s"])
        np.clip(cols["p_in_kpa"], -101.3, 99_999.0, out=cols["p_in_kpa"])

        alive = self.battery_used_mah < spec.battery_mah
        events = self._local_events(times, cols, dropped, actuation) if spec.local_alarms else []

        # the uplink: radio fields on the last sample, measured when the modem wakes
        rsrp = np.clip(self.rsrp_base_dbm + self._radio_rng.normal(0.0, 3.0, n), -140.0, -44.0)
        sinr = np.clip(radio.sinr_db(rsrp) + self._radio_rng.normal(0.0, 2.0, n), -20.0, 30.0)
        self.battery_used_mah += s * radio.SAMPLE_MAH + radio.SLEEP_MA * spec.uplink_span_s / 3600
        cols["rsrp_dbm"][:, s - 1] = np.round(rsrp, 1)
        cols["sinr_db"][:, s - 1] = np.round(sinr, 1)
        cols["battery_v"][:, s - 1] = np.round(self._battery_v(), 3)
        self.counts.samples_generated += int(alive.sum()) * s

        # alarms went out when they tripped, before this wake-up: they take seqs first
        ev_payloads = self._event_payloads(events, times, cols) if events else []
        clock = np.round(self.device_clock(times, np.arange(n)[:, None]), 3)
        tele_seq = self.seq.copy()
        payloads = self._encode(clock, cols)
        wake_t = times[:, -1] + 1.0
        self.seq = (self.seq + 1) % 2**32  # encoded with the pre-increment seq

        out = self._transmit(payloads, wake_t, alive, events, ev_payloads, times, tele_seq)
        self._uplinks_done += 1
        return out

    def _encode(self, clock: F64, cols: dict[str, F64]) -> list[bytes]:
        n = self.spec.devices
        payloads: list[bytes] = [b""] * n
        for idx, names in ((self.valve_idx, _VALVE_FIELDS), (self.pump_idx, _PUMP_FIELDS)):
            for a in range(0, idx.size, _CHUNK):
                rows = idx[a : a + _CHUNK]
                chunk = encode_telemetry_rows(
                    self.seq[rows], clock[rows], {k: cols[k][rows] for k in names}, names
                )
                for i, p in zip(rows.tolist(), chunk, strict=True):
                    payloads[i] = p
        return payloads

    def _local_events(
        self,
        times: F64,
        cols: dict[str, F64],
        dropped: npt.NDArray[np.bool_],
        actuation: list[tuple[int, int, str, str]],
    ) -> list[tuple[int, int, str, str]]:
        """Alarms the firmware raises on its own readings: (device, slot, kind, detail)."""
        _spec, s = self.spec, self.spec.samples_per_uplink
        limit = np.where(self.is_valve, self.allowable_mm3s, catalog.PUMP_SEAL_LIMIT_MM3S)
        leak = cols["leak_mm3s"]
        out = list(actuation)
        prev = self.over_limit_prev
        for j in range(s):
            over = leak[:, j] > limit
            measured = ~np.isnan(leak[:, j])
            # two readings in a row over the limit: one spike does not wake the radio
            trip = over & np.where(measured, prev, False) & ~self.alarm_latched
            for i in np.flatnonzero(trip).tolist():
                out.append((i, j, "leak_alarm", f"leak over {limit[i]:.3g} mm3/s twice in a row"))
            self.alarm_latched |= trip
            rearm = measured & (leak[:, j] < 0.8 * limit)
            self.alarm_latched &= ~rearm
            prev = np.where(measured, over, prev)
        self.over_limit_prev = prev
        low = (self._battery_v() < _LOW_BATTERY_V) & ~self.low_battery_sent
        for i in np.flatnonzero(low).tolist():
            out.append((i, s - 1, "low_battery", "battery below 3.3 V"))
        self.low_battery_sent |= low
        # a sensor that stops answering is something the firmware does notice
        for i in np.flatnonzero(dropped.any(axis=1)).tolist():
            j = int(np.argmax(dropped[i]))
            live = (self.faults.start_t[i] <= times[i, j]) & (self.faults.end_t[i] > times[i, j])
            k = int(np.argmax(live))
            if not self.dropout_reported[i, k]:
                self.dropout_reported[i, k] = True
                out.append((i, j, "sensor_fault", "sensor not responding"))
        out.sort(key=lambda e: (times[e[0], e[1]], e[0]))
        return [(i, j, kind, detail) for i, j, kind, detail in out]

    def _event_payloads(
        self, events: list[tuple[int, int, str, str]], times: F64, cols: dict[str, F64]
    ) -> list[bytes]:
        out = []
        for i, j, kind, detail in events:
            t = float(np.round(self.device_clock(times[i : i + 1, j], np.array([i]))[0], 3))
            names = _VALVE_FIELDS if self.is_valve[i] else _PUMP_FIELDS
            reading = {k: float(cols[k][i, j]) for k in names if not math.isnan(cols[k][i, j])}
            event = Event(
                v=SCHEMA_VERSION,
                seq=int(self.seq[i]),
                t=t,
                kind=kind,  # type: ignore[arg-type]
                detail=detail,
                reading=Sample(t=t, **reading),
            )
            self.seq[i] = (self.seq[i] + 1) % 2**32
            out.append(msgspec.json.encode(event))
        return out

    def _transmit(
        self,
        payloads: list[bytes],
        wake_t: F64,
        alive: npt.NDArray[np.bool_],
        events: list[tuple[int, int, str, str]],
        ev_payloads: list[bytes],
        times: F64,
        tele_seq: I64,
    ) -> RoundOutput:
        spec, s = self.spec, self.spec.samples_per_uplink
        counts = self.counts
        # telemetry: one message per living device, carrying what it still holds
        tele_dev = np.flatnonzero(alive)
        tele_samples = np.full(tele_dev.size, s, dtype=np.int64)
        for pos, i in enumerate(tele_dev.tolist()):
            held = self._pending.get(i)
            if held:
                payloads[i], tele_samples[pos] = self._splice(i, payloads[i], held)
        ev_dev = np.array([e[0] for e in events], dtype=np.int64)
        ev_t = np.array([times[i, j] for i, j, _, _ in events]) if events else np.zeros(0)
        device = np.concatenate([tele_dev, ev_dev])
        copies, attempts, is_acked = radio.transmit(
            self._radio_rng,
            self.rsrp_base_dbm[device],
            spec.max_attempts,
            is_ideal=spec.radio == "ideal",
        )
        charge = radio.wake_charge_mah(attempts, self.rsrp_base_dbm[device])
        np.add.at(self.battery_used_mah, device, charge)
        counts.charge_used_mah += float(charge.sum())

        # unacknowledged telemetry: the device keeps those samples for the next uplink
        for pos, i in enumerate(tele_dev.tolist()):
            if is_acked[pos]:
                self._pending.pop(i, None)
            else:
                self._hold(i, payloads[i], int(tele_samples[pos]))
        counts.samples_resent += int(tele_samples.sum()) - tele_dev.size * s
        counts.messages += device.size
        counts.telemetry_messages += tele_dev.size
        counts.event_messages += ev_dev.size
        counts.transmissions += int(attempts.sum())
        counts.copies_delivered += int(copies.sum())
        counts.duplicate_copies += int(np.maximum(copies - 1, 0).sum())
        counts.messages_lost += int((copies == 0).sum())
        counts.messages_unacked += int((~is_acked).sum())
        for _, _, kind, _ in events:
            counts.events[kind] = counts.events.get(kind, 0) + 1

        seq_tele = tele_seq[tele_dev]
        ev_seq = np.array(
            [json.loads(p)["seq"] for p in ev_payloads], dtype=np.int64
        )  # few: alarms are rare
        all_t = np.concatenate([wake_t[tele_dev], ev_t])
        order = np.argsort(all_t, kind="stable")
        kinds: list[MessageKind] = ["telemetry"] * tele_dev.size + ["event"] * ev_dev.size
        all_payloads = [payloads[i] for i in tele_dev.tolist()] + ev_payloads
        order_l = order.tolist()
        return RoundOutput(
            index=self._uplinks_done,
            device=device[order],
            kind=[kinds[k] for k in order_l],
            payload=[all_payloads[k] for k in order_l],
            seq=np.concatenate([seq_tele, ev_seq])[order],
            copies=copies[order],
            attempts=attempts[order],
            is_acked=is_acked[order],
            wake_t=all_t[order],
            samples=np.concatenate([tele_samples, np.zeros(ev_dev.size, dtype=np.int64)])[order],
        )

    @staticmethod
    def _inner(payload: bytes) -> bytes:
        return payload[payload.index(b"[") + 1 : -2]

    def _splice(self, i: int, payload: bytes, held: list[tuple[bytes, int]]) -> tuple[bytes, int]:
        """Prepend the samples a device still holds; beyond its buffer the oldest go."""
        s = self.spec.samples_per_uplink
        block, count = held[0]
        room = self.spec.buffer_samples - s
        if count > room:
            drop = count - room
            parts = block.split(b"},{")[drop:]
            block = b"},{".join(parts) if room else b""
            if block and not block.startswith(b"{"):
                block = b"{" + block
            count = room
            self.counts.samples_dropped += drop
        head = payload[: payload.index(b"[") + 1]
        inner = self._inner(payload)
        joined = block + b"," + inner if block else inner
        return head + joined + b"]}", count + s

    def _hold(self, i: int, payload: bytes, samples: int) -> None:
        # the whole unacknowledged batch, old and new samples, waits for the next wake-up
        self._pending[i] = [(self._inner(payload), samples)]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
