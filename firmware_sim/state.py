"""The fleet's devices as struct-of-arrays: one slot per device, built from a ``FleetSpec``.

``FleetState`` draws everything static (registry records, site hydraulics, seat leakage,
wear, actuators, pumps, coverage, clocks, batteries, sensor faults) from the seed in a
fixed order, and holds the dynamic state a round moves on (valve positions, alarms
latched, sequence numbers, charge used, samples held back by unacknowledged uplinks).
Its queries (leak coefficient, friction, device clocks, battery voltage) are what the
physics, the alarms and the ground truth read; ``Fleet`` adds the rounds on top.

Everything comes from one seed, in separate streams for the devices, the physics, the
sensor faults and the radio, so the same spec gives the same fleet, round after round.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from firmware_sim import catalog, faults, radio
from firmware_sim.catalog import allowable_leak_mm3s
from firmware_sim.physics import required_torque_nm
from firmware_sim.rounds import RadioCounts
from firmware_sim.spec import FleetSpec
from firmware_sim.wear import Wear
from sealscope.registry import Device

__all__ = ["FleetState"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_WRONG_CLOCK_OFFSETS_S = (-365 * 86_400.0, -30 * 86_400.0, -8 * 3600.0, 86_400.0)


class FleetState:
    """Deterministic devices plus their physical and radio state; see the module docstring."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        static, physics_seq, fault_seq, radio_seq, secret_seq = np.random.SeedSequence(
            spec.seed
        ).spawn(5)
        # the compiled engine draws through numba, fastest from SFC64 (same distributions)
        bits = np.random.SFC64 if spec.engine == "compiled" else np.random.PCG64
        self.physics_rng = np.random.Generator(bits(physics_seq))
        self.fault_rng = np.random.default_rng(fault_seq)
        self.radio_rng = np.random.default_rng(radio_seq)
        self._secret = secret_seq.generate_state(4).tobytes()
        self._build(np.random.default_rng(static))
        self._uplinks_done = 0
        self.counts = RadioCounts()
        # samples a device still holds because its uplink was not acknowledged
        self.pending: dict[int, list[tuple[bytes, int]]] = {}
        # the same, counted, for rounds kept as columns (``Fleet.step_batch``)
        self.held_samples = np.zeros(spec.devices, dtype=np.int64)
        # charge used when the first round started: the battery-life projection's origin
        self.battery_used0_mah = self.battery_used_mah.copy()

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
                        leakage_class=leak_class,
                        **common,
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
                        **common,
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
        self.wear = Wear.draw(
            self.spec,
            rng,
            is_valve=self.is_valve,
            valve_idx=self.valve_idx,
            batch_code=self.batch_code,
        )
        # the same arrays under the names readers of the fleet know
        self.bad_batch = self.wear.bad_batch
        self.age_s = self.wear.age_s
        self.mode = self.wear.mode
        self.onset_t = self.wear.onset_t
        self.degrade_span_s = self.wear.degrade_span_s
        self.step_factor = self.wear.step_factor
        self.degrading = self.wear.degrading

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
        everyone = np.arange(n)
        healthy_at_pn = required_torque_nm(self, everyone, 100.0 * self.pn, np.ones(n))
        self.rated_torque_nm = np.maximum(1.5 * healthy_at_pn, 1.0)
        self.motor_rated_a = 0.3 + self.rated_torque_nm / 150.0
        self.motor_idle_a = 0.3 * self.motor_rated_a
        # a third of the valves run a daily schedule (filling, flushing, zone supply)
        self.is_scheduled = (rng.random(n) < 0.3) & self.is_valve
        self.sched_open_h = rng.uniform(0.0, 24.0, n)
        self.sched_len_h = rng.uniform(0.5, 3.0, n)

    # -- queries ------------------------------------------------------------------------

    def leak_coeff_at(self, t: F64, idx: I64) -> F64:
        """True leak coefficient (mm3/s per kPa^n) of devices ``idx`` at event times ``t``."""
        return self.wear.leak_coeff_at(t, idx, self.leak_c0)

    def friction_multiplier(self, t: F64, idx: I64) -> F64:
        return self.wear.friction_multiplier(t, idx)

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

    def round_clock(self, times: F64) -> F64:
        """Every device's clock at ``times`` (devices x slots), to the millisecond."""
        if self.spec.engine == "compiled":
            from firmware_sim import kernel

            return kernel.device_clock(self, times)
        return np.round(self.device_clock(times, np.arange(self.spec.devices)[:, None]), 3)

    def battery_v(self) -> F64:
        return radio.battery_voltage(self.battery_used_mah / self.spec.battery_mah)
