"""A simulated fleet of smart valves and pumps: device records, physical state, uplinks.

State is struct-of-arrays in numpy, one slot per device, so a round of uplinks for the
whole fleet is a handful of vector operations per sample slot; only wrapping the numbers
into ``Telemetry`` objects is done per device.

Physics of this first cut:

* valves sit mostly closed and open now and then (a two-state Markov chain per sample);
  closed, the downstream side drains to ~0 kPa and the seat leaks ``C * sqrt(dP)``
  (turbulent orifice flow), read through a sensor with noise and 0.001 mm3/s resolution;
* ``C`` per valve puts its leakage at ISO 5208 test pressure (1.1 x PN) at 5-30 % of the
  allowable rate of its leakage class for its DN, so healthy valves are well inside class;
* degrading valves: from an onset time, ``C`` grows exponentially to ``degrade_factor``
  times baseline over ``degrade_span_uplinks`` uplinks, then stays there;
* pumps run at a speed following demand (affinity laws for flow and head), stop now and
  then, and report mechanical-seal leakage, vibration and temperature.

Everything is drawn from one seed: the same ``FleetSpec`` gives the same devices and the
same payload bytes, round after round.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from sealscope.registry import Device
from sealscope.wire import SAMPLE_FIELDS, SCHEMA_VERSION, Sample, State, Telemetry

__all__ = ["DeviceTruth", "Fleet", "FleetSpec", "Uplink", "allowable_leak_mm3s"]

# ISO 5208 seat leakage, liquid test medium: allowable rate in mm3/s per mm of DN.
# Rates A/AA ("no visible leakage") have no finite rate and are not simulated yet.
_ISO5208_LIQUID_MM3S_PER_DN = {
    "B": 0.01,
    "C": 0.03,
    "CC": 0.08,
    "D": 0.1,
    "E": 0.3,
    "EE": 0.39,
    "F": 1.0,
    "G": 2.0,
}
_DN_SIZES = np.array([15, 20, 25, 32, 40, 50, 65, 80, 100, 125, 150, 200, 250, 300, 400, 500])
_PN_CLASSES = np.array([10, 16, 25, 40])
_UTC_OFFSET_S = 8 * 3600  # the simulated sites keep China Standard Time for demand cycles


@dataclass(frozen=True, slots=True)
class _ValveModel:
    name: str
    valve_type: str  # ball, butterfly, gate, globe
    dn_range: tuple[int, int]
    seats: tuple[tuple[str, str], ...]  # (seat material, ISO 5208 leakage class)


@dataclass(frozen=True, slots=True)
class _Maker:
    code: str
    valves: tuple[_ValveModel, ...]
    pumps: tuple[str, ...]
    firmware: str


_SOFT_BALL = (("PTFE", "B"), ("RPTFE", "C"), ("PEEK", "C"))
_MAKERS = (
    _Maker(
        "ACME",
        (
            _ValveModel("BV-200", "ball", (15, 200), (*_SOFT_BALL, ("metal", "D"))),
            _ValveModel("BF-150", "butterfly", (50, 500), (("EPDM", "B"), ("NBR", "C"))),
        ),
        ("CP-80", "CP-125"),
        "2.3.1",
    ),
    _Maker(
        "YJV",
        (
            _ValveModel("Q41F-16", "ball", (15, 150), _SOFT_BALL),
            _ValveModel("Z41H-25", "gate", (50, 400), (("metal", "D"), ("metal", "E"))),
            _ValveModel("J41H-40", "globe", (15, 200), (("metal", "D"), ("PTFE", "C"))),
        ),
        ("ISG-65",),
        "1.8.0",
    ),
    _Maker(
        "OUHAI",
        (
            _ValveModel("D371X", "butterfly", (50, 500), (("EPDM", "B"), ("PTFE", "CC"))),
            _ValveModel("Z45X", "gate", (50, 300), (("EPDM", "B"),)),
        ),
        ("OH-SP100",),
        "3.0.4",
    ),
    _Maker(
        "WZPV",
        (_ValveModel("WZ-Q11", "ball", (15, 100), (*_SOFT_BALL, ("metal", "E"))),),
        ("WZ-CP50", "WZ-CP150"),
        "0.9.7",
    ),
)
_MAKER_WEIGHTS = np.array([0.35, 0.3, 0.2, 0.15])
_REGIONS = ("zj-wenzhou", "zj-taizhou", "zj-hangzhou", "js-suzhou", "gd-foshan", "sd-zibo")
_DEVICES_PER_SITE = 40
_BATCHES_PER_MAKER = 4
# Induction motors on 50 Hz mains: 4-pole or 2-pole synchronous speed less slip.
_PUMP_SPEEDS_RPM = np.array([1450.0, 2900.0])


def allowable_leak_mm3s(leakage_class: str, dn: int) -> float:
    """ISO 5208 allowable seat leakage (liquid) for a class and DN; ``inf`` if unknown."""
    per_dn = _ISO5208_LIQUID_MM3S_PER_DN.get(leakage_class)
    return math.inf if per_dn is None else per_dn * dn


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What fleet to simulate. All times are device event times.

    Defaults are tuned for a live demo: at one round per wall second, baselines settle
    within ~6 rounds (50 closed samples), degradation starts between round 8 and 30 and is
    several times baseline ~10 rounds later.
    """

    devices: int = 100
    seed: int = 0
    valve_share: float = 0.7
    degrading_share: float = 0.1  # of the valves
    start_t: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z; fixed so runs are reproducible
    sample_interval_s: float = 60.0
    samples_per_uplink: int = 10
    onset_uplinks: tuple[int, int] = (8, 30)  # degradation starts in this uplink range
    degrade_span_uplinks: int = 30
    degrade_factor: float = 30.0

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
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def uplink_span_s(self) -> float:
        """Event time covered by one uplink."""
        return self.sample_interval_s * self.samples_per_uplink


@dataclass(frozen=True, slots=True)
class DeviceTruth:
    """What the simulator knows and detectors must find out."""

    device_id: str
    kind: str
    is_degrading: bool
    onset_t: float | None  # event time the seat starts to degrade
    leak_coeff_baseline: float | None  # mm3/s per sqrt(kPa), valves only
    allowable_leak_mm3s: float | None  # ISO 5208 rate for class and DN, valves only


class Uplink(NamedTuple):
    device_id: str
    telemetry: Telemetry


@dataclass(slots=True)
class _Columns:
    """One round's readings, shape (devices, samples); NaN = not measured."""

    shape: tuple[int, int]
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def put(self, name: str, rows: np.ndarray, col: int, data: np.ndarray, decimals: int) -> None:
        if name not in self.values:
            self.values[name] = np.full(self.shape, np.nan)
        # + 0.0 turns -0.0 into 0.0 so payloads never carry "-0.0"
        self.values[name][rows, col] = np.round(data, decimals) + 0.0


class Fleet:
    """Deterministic devices plus their physical state; ``next_uplinks()`` advances time."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        static_seq, dynamic_seq = np.random.SeedSequence(spec.seed).spawn(2)
        # Separate streams: adding a device attribute later does not shift every reading.
        self._rng = np.random.default_rng(dynamic_seq)
        self._build(np.random.default_rng(static_seq))
        self._uplinks_done = 0

    # -- construction -------------------------------------------------------------------

    def _build(self, rng: np.random.Generator) -> None:
        spec, n = self.spec, self.spec.devices
        n_valves = round(n * spec.valve_share)
        is_valve = np.zeros(n, dtype=bool)
        is_valve[rng.permutation(n)[:n_valves]] = True
        self.is_valve = is_valve
        self.valve_idx = np.flatnonzero(is_valve)
        self.pump_idx = np.flatnonzero(~is_valve)

        maker_of = rng.choice(len(_MAKERS), size=n, p=_MAKER_WEIGHTS)
        batch_of = rng.integers(0, _BATCHES_PER_MAKER, size=n)
        n_sites = max(1, math.ceil(n / _DEVICES_PER_SITE))
        site_of = rng.integers(0, n_sites, size=n)
        batch_names = [
            [f"{m.code}-{22 + b}{int(w):02d}" for b, w in enumerate(rng.integers(1, 53, 4))]
            for m in _MAKERS
        ]
        model_pick = rng.random(n)
        seat_pick = rng.random(n)
        dn_pick = rng.random(n)
        pn = rng.choice(_PN_CLASSES, size=n, p=[0.3, 0.4, 0.2, 0.1])

        devices: list[Device] = []
        dn = np.zeros(n, dtype=np.int64)
        allow = np.full(n, np.nan)
        valve_type: list[str] = []
        for i in range(n):
            maker = _MAKERS[maker_of[i]]
            site = f"{_REGIONS[site_of[i] % len(_REGIONS)]}-s{site_of[i] + 1:03d}"
            common = {
                "manufacturer": maker.code,
                "batch": batch_names[maker_of[i]][batch_of[i]],
                "site": site,
                "region": _REGIONS[site_of[i] % len(_REGIONS)],
                "pn": int(pn[i]),
                "firmware": maker.firmware,
            }
            if is_valve[i]:
                model = maker.valves[int(model_pick[i] * len(maker.valves))]
                seat, leak_class = model.seats[int(seat_pick[i] * len(model.seats))]
                sizes = _DN_SIZES[
                    (model.dn_range[0] <= _DN_SIZES) & (model.dn_range[1] >= _DN_SIZES)
                ]
                dn[i] = sizes[int(dn_pick[i] * len(sizes))]
                allow[i] = allowable_leak_mm3s(leak_class, int(dn[i]))
                valve_type.append(model.valve_type)
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
                dn[i] = _DN_SIZES[4 + int(dn_pick[i] * 8)]  # DN40..DN200 discharge
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
        self.dn = dn
        self.pn = pn.astype(np.float64)
        self.allowable_mm3s = allow
        self.valve_type = tuple(valve_type)  # "" for pumps; for the valve-type physics to come

        # Site hydraulics and environment
        site_p_kpa = rng.uniform(250.0, 800.0, n_sites)
        site_temp_c = rng.uniform(8.0, 24.0, n_sites)
        self.p_nom_kpa = np.minimum(site_p_kpa[site_of], 0.7 * 100.0 * self.pn)
        self.temp_base_c = site_temp_c[site_of] + rng.normal(0.0, 1.5, n)
        self.phase_s = np.round(rng.uniform(0.0, spec.sample_interval_s, n), 3)

        # Seat leakage: baseline C from a fraction of the class allowance at test pressure.
        test_dp_kpa = 110.0 * self.pn
        frac = np.exp(rng.uniform(math.log(0.05), math.log(0.3), n))
        self.leak_c0 = np.where(is_valve, frac * allow / np.sqrt(test_dp_kpa), np.nan)
        n_degrading = round(len(self.valve_idx) * spec.degrading_share)
        self.degrading = np.zeros(n, dtype=bool)
        if n_degrading:
            self.degrading[rng.choice(self.valve_idx, n_degrading, replace=False)] = True
        lo, hi = spec.onset_uplinks
        onset_uplink = rng.uniform(lo, hi, n)
        self.onset_t = np.where(
            self.degrading, spec.start_t + onset_uplink * spec.uplink_span_s, np.inf
        )

        # Actuation: stroke time and break torque scale with DN.
        self.stroke_base_s = (8.0 + 0.12 * dn) * rng.uniform(0.85, 1.15, n)
        self.torque_base_nm = 0.05 * dn**1.6 * rng.uniform(0.8, 1.2, n)
        # Quarter-turn and gate valves run fully open; the others may throttle.
        self.is_on_off = np.array([t in ("ball", "gate") for t in valve_type], dtype=bool)

        # Pumps
        self.n_nom_rpm = rng.choice(_PUMP_SPEEDS_RPM, n)
        self.q_nom_m3h = 0.004 * dn**2 * rng.uniform(0.8, 1.2, n)
        self.dp_nom_kpa = rng.uniform(200.0, 600.0, n)
        self.p_suction_kpa = rng.uniform(50.0, 250.0, n)
        self.seal_c = rng.uniform(0.005, 0.02, n)  # mm3/s per sqrt(kPa), a sound seal weeps
        self.vib_base_mms = rng.uniform(0.8, 2.2, n)
        self.motor_nom_a = 0.02 * self.q_nom_m3h * self.dp_nom_kpa / 100.0 + 1.0

        # Radio
        self.rsrp_base_dbm = np.clip(rng.normal(-95.0, 12.0, n), -135.0, -60.0)

        # Dynamic state
        self.is_open = np.zeros(n, dtype=bool)
        self.open_pct = np.zeros(n)
        self.is_running = rng.random(n) < 0.9
        self.battery_v = rng.uniform(3.58, 3.67, n)
        self.battery_drain_v = rng.uniform(2e-6, 8e-6, n)  # per sample
        self.seq = np.zeros(n, dtype=np.int64)

    # -- ground truth ---------------------------------------------------------------------

    def truth(self) -> list[DeviceTruth]:
        out = []
        for i, device in enumerate(self.devices):
            valve = bool(self.is_valve[i])
            out.append(
                DeviceTruth(
                    device_id=device.device_id,
                    kind=device.kind,
                    is_degrading=bool(self.degrading[i]),
                    onset_t=float(self.onset_t[i]) if self.degrading[i] else None,
                    leak_coeff_baseline=float(self.leak_c0[i]) if valve else None,
                    allowable_leak_mm3s=float(self.allowable_mm3s[i]) if valve else None,
                )
            )
        return out

    def leak_coeff(self, t: np.ndarray | float) -> np.ndarray:
        """True seat leak coefficient (mm3/s per sqrt(kPa)) of every device at event time t.

        ``t`` is a scalar or an array broadcastable to (devices, k); pumps are NaN.
        """
        t = np.asarray(t, dtype=np.float64)
        extra = (1,) * max(t.ndim - 1, 0) if t.ndim else ()
        onset = self.onset_t.reshape(-1, *extra) if t.ndim else self.onset_t
        c0 = self.leak_c0.reshape(-1, *extra) if t.ndim else self.leak_c0
        with np.errstate(invalid="ignore"):
            progress = np.clip(
                (t - onset) / (self.spec.degrade_span_uplinks * self.spec.uplink_span_s), 0.0, 1.0
            )
        progress = np.where(np.isfinite(onset), progress, 0.0)
        return c0 * self.spec.degrade_factor**progress

    # -- time ---------------------------------------------------------------------------

    @property
    def uplinks_done(self) -> int:
        return self._uplinks_done

    @property
    def now_t(self) -> float:
        """Event time at the start of the next uplink's first sample slot."""
        return self.spec.start_t + self._uplinks_done * self.spec.uplink_span_s

    def states(self) -> list[tuple[str, State]]:
        """The retained ``state`` message of every device, as at the current event time."""
        t = self.now_t
        cfg: dict[str, int | float | str | bool] = {
            "sample_interval_s": self.spec.sample_interval_s,
            "samples_per_uplink": self.spec.samples_per_uplink,
        }
        rsrp = np.round(self.rsrp_base_dbm).tolist()
        sinr = np.round(self._sinr(self.rsrp_base_dbm), 1).tolist()
        battery = np.round(self.battery_v, 3).tolist()
        return [
            (
                d.device_id,
                State(
                    v=SCHEMA_VERSION,
                    t=t,
                    fw=d.firmware,
                    seq=int(self.seq[i]),
                    config=cfg,
                    rsrp_dbm=rsrp[i],
                    sinr_db=sinr[i],
                    battery_v=battery[i],
                    last_wake_t=t,
                ),
            )
            for i, d in enumerate(self.devices)
        ]

    @staticmethod
    def _sinr(rsrp_dbm: np.ndarray) -> np.ndarray:
        return np.clip(0.4 * (rsrp_dbm + 120.0), -20.0, 30.0)

    # -- one round ------------------------------------------------------------------------

    def next_uplinks(self) -> list[Uplink]:
        """Advance one uplink interval; every device reports ``samples_per_uplink`` samples."""
        spec, n, s = self.spec, self.spec.devices, self.spec.samples_per_uplink
        rng = self._rng
        slot0 = self._uplinks_done * s
        times = np.round(
            spec.start_t + self.phase_s[:, None] + (slot0 + np.arange(s)) * spec.sample_interval_s,
            3,
        )
        cols = _Columns((n, s))
        demand = _demand(times)
        for j in range(s):
            self._valve_sample(cols, j, times[:, j], demand[:, j], rng)
            self._pump_sample(cols, j, demand[:, j], rng)
            self.battery_v = np.maximum(self.battery_v - self.battery_drain_v, 2.5)
        everyone = np.arange(n)
        rsrp = np.clip(self.rsrp_base_dbm + rng.normal(0.0, 3.0, n), -140.0, -44.0)
        sinr = self._sinr(rsrp) + rng.normal(0.0, 2.0, n)
        cols.put("rsrp_dbm", everyone, s - 1, rsrp, 0)
        cols.put("sinr_db", everyone, s - 1, np.clip(sinr, -20.0, 30.0), 1)
        cols.put("battery_v", everyone, s - 1, self.battery_v + rng.normal(0.0, 0.003, n), 3)

        uplinks = self._wrap(times, cols)
        self.seq = (self.seq + 1) % 2**32
        self._uplinks_done += 1
        return uplinks

    def _valve_sample(
        self,
        cols: _Columns,
        j: int,
        t: np.ndarray,
        demand: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        v = self.valve_idx
        if not len(v):
            return
        k = len(v)
        was_open = self.is_open[v]
        u = rng.random(k)
        # Mean closed run ~33 samples, mean open run ~4: closed ~89 % of the time.
        now_open = np.where(was_open, u > 0.25, u < 0.03)
        opening = now_open & ~was_open
        pct = np.where(self.is_on_off[v], 100.0, np.round(rng.uniform(30.0, 100.0, k)))
        self.open_pct[v] = np.where(opening, pct, self.open_pct[v])
        self.is_open[v] = now_open
        actuated = now_open != was_open

        p_in = self.p_nom_kpa[v] * (1.0 - 0.2 * demand[v]) * (1.0 + rng.normal(0.0, 0.01, k))
        drop = np.minimum(5.0 * (100.0 / np.maximum(self.open_pct[v], 1.0)) ** 2, 0.5 * p_in)
        p_out_open = p_in - drop + rng.normal(0.0, 1.0, k)
        p_out_closed = np.abs(rng.normal(2.0, 1.5, k))  # downstream drained
        p_out = np.where(now_open, p_out_open, p_out_closed)
        dp = np.maximum(p_in - p_out, 0.0)

        c = self.leak_coeff(t)[v]
        leak = c * np.sqrt(dp) * np.exp(rng.normal(0.0, 0.08, k)) + rng.normal(0.0, 0.0005, k)
        closed = v[~now_open]
        cols.put("p_in_kpa", v, j, p_in, 1)
        cols.put("p_out_kpa", v, j, p_out, 1)
        cols.put("position_pct", v, j, np.where(now_open, self.open_pct[v], 0.0), 1)
        cols.put("leak_mm3s", closed, j, np.maximum(leak[~now_open], 0.0), 3)

        torque = self.torque_base_nm[v] * (1.0 + 0.25 * p_in / (100.0 * self.pn[v]))
        torque = torque * (1.0 + rng.normal(0.0, 0.04, k))
        stroke = self.stroke_base_s[v] * (1.0 + rng.normal(0.0, 0.03, k))
        motor = 0.3 + 0.01 * torque * (1.0 + rng.normal(0.0, 0.05, k))
        moved = v[actuated]
        cols.put("stroke_s", moved, j, stroke[actuated], 2)
        cols.put("torque_nm", moved, j, torque[actuated], 1)
        cols.put("motor_a", moved, j, motor[actuated], 2)

        temp = self.temp_base_c[v] + 3.0 * (demand[v] - 0.5) + rng.normal(0.0, 0.2, k)
        cols.put("temp_c", v, j, temp, 1)

    def _pump_sample(
        self, cols: _Columns, j: int, demand: np.ndarray, rng: np.random.Generator
    ) -> None:
        p = self.pump_idx
        if not len(p):
            return
        k = len(p)
        was_running = self.is_running[p]
        u = rng.random(k)
        running = np.where(was_running, u > 0.01, u < 0.15)
        self.is_running[p] = running

        ratio = running * (0.7 + 0.3 * demand[p]) * (1.0 + rng.normal(0.0, 0.003, k))
        speed = self.n_nom_rpm[p] * ratio
        flow = np.maximum(self.q_nom_m3h[p] * ratio * (1.0 + rng.normal(0.0, 0.02, k)), 0.0)
        p_in = self.p_suction_kpa[p] * (1.0 - 0.1 * ratio) + rng.normal(0.0, 2.0, k)
        head = (
            self.dp_nom_kpa[p]
            * ratio**2
            * (1.15 - 0.15 * (flow / (self.q_nom_m3h[p] * np.maximum(ratio, 1e-6))) ** 2)
        )
        p_out = p_in + head + rng.normal(0.0, 3.0, k)
        chamber = np.maximum(p_in + 0.3 * (p_out - p_in), 0.0)
        leak = self.seal_c[p] * np.sqrt(chamber) * np.where(running, 1.0, 0.3)
        leak = leak * np.exp(rng.normal(0.0, 0.1, k))
        vib = np.where(
            running,
            self.vib_base_mms[p] * ratio**2 * np.exp(rng.normal(0.0, 0.08, k)),
            np.abs(rng.normal(0.05, 0.02, k)),
        )
        temp = self.temp_base_c[p] + 6.0 * ratio + rng.normal(0.0, 0.2, k)
        motor = np.where(
            running, self.motor_nom_a[p] * ratio**3 * (1 + rng.normal(0.0, 0.02, k)), 0.0
        )

        cols.put("p_in_kpa", p, j, p_in, 1)
        cols.put("p_out_kpa", p, j, p_out, 1)
        cols.put("flow_m3h", p, j, flow, 2)
        cols.put("speed_rpm", p, j, speed, 0)
        cols.put("leak_mm3s", p, j, leak, 3)
        cols.put("vib_mms", p, j, vib, 2)
        cols.put("temp_c", p, j, temp, 1)
        cols.put("motor_a", p, j, np.maximum(motor, 0.0), 2)

    def _wrap(self, times: np.ndarray, cols: _Columns) -> list[Uplink]:
        # Positional construction in the struct's own field order, absent fields as None.
        n, s = cols.shape
        nones: list[float | None] = [None] * (n * s)
        flat: list[list[float | None]] = [times.ravel().tolist()]
        for name in SAMPLE_FIELDS:
            flat.append(_nan_to_none(cols.values[name]) if name in cols.values else nones)
        samples = list(itertools.starmap(Sample, zip(*flat, strict=True)))
        seq = self.seq.tolist()
        return [
            Uplink(
                device_id,
                Telemetry(v=SCHEMA_VERSION, seq=seq[i], samples=samples[i * s : (i + 1) * s]),
            )
            for i, device_id in enumerate(self.device_ids)
        ]


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    flat = values.ravel()
    present = ~np.isnan(flat)
    if present.all():
        return flat.tolist()  # type: ignore[no-any-return]
    out: list[float | None] = [None] * flat.size
    for i, x in zip(np.flatnonzero(present).tolist(), flat[present].tolist(), strict=True):
        out[i] = x
    return out


def _demand(t: np.ndarray) -> np.ndarray:
    """Water demand in [0, 1] by local hour: morning and evening peaks, quiet nights."""
    hour = ((t + _UTC_OFFSET_S) % 86_400.0) / 3600.0
    d = (
        0.5
        + 0.3 * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
        + 0.15 * np.sin(4 * np.pi * (hour - 7.0) / 24.0)
    )
    return np.clip(d, 0.0, 1.0)
