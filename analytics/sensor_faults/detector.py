"""SensorFaultDetector: the screens of ``sensor_faults`` run as one detector and gate.

Each monitored channel (a wire field) of each device learns, during its first
``train_samples`` samples, how its own readings normally behave, and is then judged
against that by the channel screens (``stuck``, ``missing``, ``spiking``); the worst of
their judgements is latched per channel and clears after ``clear_samples`` healthy
readings in a row. The signal screens (``pressure_drift``, ``leak_drift``) latch
verdicts of their own from physics. A device's verdict is its worst fault (stuck >
missing > drifting > spiking; a drifting pair is named before a drifting leak sensor).

The detector is the service's ``Gate``: ``screen(batch)`` updates it and returns the batch
with every reading judged faulty at its event time replaced by NaN, and
``faulty(signals, n)`` says which devices have an active fault (other than spiking) on
any of ``signals``, so the verdicts of detectors reading them are held.

``engine`` picks how ``update`` runs the screens: ``"compiled"`` (the default) in one
numba loop over the batch (``kernel.py``), ``"numpy"`` one numpy pass per screen and per
sample slot (the screens' own ``step``, the reference the kernel is tested against).
Both keep the same state, so a detector may switch between them.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from analytics.base import (
    F64,
    I64,
    CategoryCode,
    Detector,
    DeviceTable,
    SampleBatch,
    Status,
    Verdicts,
    fmt_time,
)
from analytics.baseline import robust_level
from analytics.changepoint import confidence
from analytics.params import Param, check_params
from analytics.sensor_faults.leak_drift import RESIDUAL_NAME as _LEAK_RESIDUAL_NAME
from analytics.sensor_faults.leak_drift import LeakDriftScreen
from analytics.sensor_faults.missing import MissingScreen
from analytics.sensor_faults.pressure_drift import RESIDUAL_NAMES as _PAIR_RESIDUAL_NAMES
from analytics.sensor_faults.pressure_drift import PressureDriftScreen
from analytics.sensor_faults.screen import (
    DRIFTING,
    FAULT_NAMES,
    ChannelScreen,
    SignalScreen,
    Spec,
    State,
    Step,
    count_dtype,
    reduce_rows,
)
from analytics.sensor_faults.spikes import SpikeScreen, batcher
from analytics.sensor_faults.stuck import StuckScreen

__all__ = ["ENGINES", "SCREEN_NAMES", "SensorFaultDetector"]

SCREEN_NAMES: Final = ("stuck", "missing", "spiking", "pressure_drift", "leak_drift")
ENGINES: Final = ("compiled", "numpy")
_CATEGORY_OF_FAULT: Final = np.array(
    [
        CategoryCode.NONE,
        CategoryCode.MAINTENANCE_REQUIRED,
        CategoryCode.OUT_OF_SPECIFICATION,
        CategoryCode.FAILURE,
        CategoryCode.FAILURE,
    ],
    dtype=np.int8,
)
_CHANNELS: Final = ("p_in_kpa", "p_out_kpa", "leak_mm3s", "temp_c", "vib_mms", "flow_m3h")
_SEVERITY_OF_FAULT: Final = np.array([0, 2, 2, 3, 3], dtype=np.int8)
_DRIFT_NAMES: Final = (*_PAIR_RESIDUAL_NAMES, _LEAK_RESIDUAL_NAME)
# the state ``kernel.screen_rows`` takes, in its order
_KERNEL_STATE: Final = (
    *("rows_n", "fault", "fault_since", "ok_n", "category", "changed_t"),
    *("pair_n", "rep_n", "last_v", "run_n", "run_t0", "idle"),
    *("pres_n", "gap_n", "gap_cont_n", "miss_run", "miss_t0"),
    *("hampel_n", "hampel_out_n", "spike_window", "spike_window_n", "spike_ewma"),
    *("step_scale", "regime"),
    *("drift_n", "drift_buf", "drift_med", "drift_sigma", "drift_value"),
    *("drift_cusum", "drift_start", "drift_level", "drift_on", "drift_clear_n"),
    "drift_since",
    *("lk_xtx", "lk_xty", "lk_yy", "lk_n", "lk_t0", "lk_u0", "lk_on"),
)
_EVIDENCE: Final = (
    "run_samples",
    "run_needed",
    "spike_rate",
    "spike_rate_limit",
    "drift_residual",
    "drift_kpa",
    "drift_baseline_kpa",
    "leak_ratio",
    "leak_elasticity",
    "leak_elasticity_baseline",
    "leak_evidence",
    "stuck_value",
)


def _network(n: int) -> npt.NDArray[np.int64]:
    """Comparators that sort ``n`` values (``kernel._sort``)."""
    return np.array(batcher(n), dtype=np.int64).reshape(-1, 2)


class SensorFaultDetector(Detector):
    """Stuck, missing, spiking and drifting instruments; cause ``sensor_fault``.

    NAMUR NE 107 for the instrument: stuck and missing are ``failure`` (its signal is
    invalid), drift is ``out_of_specification``, spiking ``maintenance_required``.
    ``screens`` picks which of ``SCREEN_NAMES`` run (all by default); the other
    hyper-parameters are passed to the screens that use them (see their modules).
    """

    cause: ClassVar[str] = "sensor_fault"
    # how ``update`` runs the screens (``ENGINES``); not a hyper-parameter: same results
    engine: str = "compiled"
    signals: ClassVar[tuple[str, ...]] = (
        "p_in_kpa",
        "p_out_kpa",
        "leak_mm3s",
        "temp_c",
        "vib_mms",
        "flow_m3h",
        "position_pct",
        "speed_rpm",
    )
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("channels", _CHANNELS, signals, "",
              "wire fields watched (changing them makes saved state unloadable)"),
        Param("screens", SCREEN_NAMES, SCREEN_NAMES, "",
              "screens that run"),
        Param("train_samples", 96, "[8, inf)", "samples",
              "each channel's training window"),
        Param("alpha", 1e-8, "(0, 1)", "probability",
              "a stuck or missing run less likely than this is a fault"),
        Param("min_run", 6, "[2, inf)", "samples",
              "shortest stuck or missing run"),
        Param("hampel_window", 7, "[3, 101]", "readings",
              "Hampel window, per operating state"),
        Param("hampel_k", 8.0, "(0, inf)", "robust sigmas",
              "a reading this far from the window's median is an outlier"),
        Param("spike_rate", 0.15, "(0, 1)", "share",
              "outlier rate (and 3x the training rate) above which a sensor is spiking"),
        Param("spike_alpha", 0.02, "(0, 1]", "",
              "EWMA weight of the outlier rate"),
        Param("open_min_pct", 90.0, "[0, 100]", "%",
              "position at or above which the valve counts as open"),
        Param("closed_max_pct", 2.0, "[0, 100]", "%",
              "position at or below which the valve counts as closed"),
        Param("drift_kpa", 30.0, "(0, inf)", "kPa",
              "pressure-pair drift the CUSUM is tuned to (at least 3 sigma)"),
        Param("drift_baseline", 24, "[3, 1024]", "samples",
              "commissioning baseline of each pressure-pair residual"),
        Param("clear_samples", 12, "[1, inf)", "samples",
              "healthy readings in a row that clear a fault"),
        Param("learn_samples", 2016, "[8, inf)", "samples",
              "memory of the stuck and missing counts (at least `train_samples`)"),
        Param("min_duration_s", 3600.0, "[0, inf)", "s",
              "shortest stuck or missing run, in event time"),
        Param("missing_exempt", ("leak_mm3s",), signals, "",
              "channels that may come and go with the process"),
        Param("leak_block", 576, "[12, inf)", "samples",
              "samples per leak-elasticity fit"),
        Param("leak_commission_blocks", 3, "[1, inf)", "blocks",
              "blocks that give the commissioning elasticity"),
        Param("leak_min_dp_kpa", 100.0, "(0, inf)", "kPa",
              "ΔP a closed valve's leak reading needs to be fitted"),
        Param("leak_min_speed_rpm", 100.0, "[0, inf)", "rpm",
              "speed at or above which the pump counts as running"),
        Param("leak_min_mm3s", 1e-3, "(0, inf)", "mm³/s",
              "smaller leak readings are not fitted"),
        Param("leak_h", 6.0, "(0, inf)", "log-likelihood",
              "evidence above which the leak sensor is drifting"),
        Param("leak_llr_k", 0.1, "[0, inf)", "log-likelihood",
              "taken off each block's evidence"),
        Param("leak_llr_clip", 4.0, "(0, inf)", "log-likelihood",
              "most evidence one block adds"),
        Param("leak_se_floor", 0.02, "(0, inf)", "",
              "floor of an elasticity's standard error"),
    )  # fmt: skip

    def __init__(
        self,
        *,
        channels: tuple[str, ...] = _CHANNELS,
        screens: Collection[str] = SCREEN_NAMES,
        train_samples: int = 96,
        alpha: float = 1e-8,
        min_run: int = 6,
        hampel_window: int = 7,
        hampel_k: float = 8.0,
        spike_rate: float = 0.15,
        spike_alpha: float = 0.02,
        open_min_pct: float = 90.0,
        closed_max_pct: float = 2.0,
        drift_kpa: float = 30.0,
        drift_baseline: int = 24,
        clear_samples: int = 12,
        learn_samples: int = 2016,
        min_duration_s: float = 3600.0,
        missing_exempt: tuple[str, ...] = ("leak_mm3s",),
        leak_block: int = 576,
        leak_commission_blocks: int = 3,
        leak_min_dp_kpa: float = 100.0,
        leak_min_speed_rpm: float = 100.0,
        leak_min_mm3s: float = 1e-3,
        leak_h: float = 6.0,
        leak_llr_k: float = 0.1,
        leak_llr_clip: float = 4.0,
        leak_se_floor: float = 0.02,
    ) -> None:
        check_params(type(self).__name__, self.PARAMS, locals())
        if not channels or not screens:
            raise ValueError("channels and screens must not be empty")
        if learn_samples < train_samples:
            raise ValueError("need learn_samples >= train_samples")
        self.channels = tuple(channels)
        self.train_samples = train_samples
        self.clear_samples = clear_samples
        self.learn_samples = learn_samples
        c, n_c = self.channels, len(self.channels)
        # every screen is built, so bad hyper-parameters are refused whichever run (and
        # kept by type: the compiled engine reads their hyper-parameters)
        self._stuck = StuckScreen(
            channels=n_c, alpha=alpha, min_run=min_run, min_duration_s=min_duration_s,
            closed_max_pct=closed_max_pct,
        )  # fmt: skip
        self._missing = MissingScreen(
            channels=c, alpha=alpha, min_run=min_run, min_duration_s=min_duration_s,
            exempt=tuple(missing_exempt), train_samples=train_samples,
        )  # fmt: skip
        self._spikes = SpikeScreen(
            channels=n_c, window=hampel_window, k=hampel_k, rate=spike_rate,
            alpha=spike_alpha, train_samples=train_samples,
        )  # fmt: skip
        self._pair = PressureDriftScreen(
            channels=c, open_min_pct=open_min_pct, closed_max_pct=closed_max_pct,
            drift_kpa=drift_kpa, baseline=drift_baseline, clear_samples=clear_samples,
        )  # fmt: skip
        self._leak = LeakDriftScreen(
            channels=c, closed_max_pct=closed_max_pct, block=leak_block,
            commission_blocks=leak_commission_blocks, min_dp_kpa=leak_min_dp_kpa,
            min_speed_rpm=leak_min_speed_rpm, min_mm3s=leak_min_mm3s, h=leak_h,
            llr_k=leak_llr_k, llr_clip=leak_llr_clip, se_floor=leak_se_floor,
        )  # fmt: skip
        channel_made: dict[str, ChannelScreen] = {
            "stuck": self._stuck, "missing": self._missing, "spiking": self._spikes,
        }  # fmt: skip
        signal_made: dict[str, SignalScreen] = {
            "pressure_drift": self._pair, "leak_drift": self._leak,
        }  # fmt: skip
        # state shapes of every screen, those off too: the kernel takes an array for each
        self._every_spec: Spec = {}
        for made in (self._stuck, self._missing, self._spikes, self._pair, self._leak):
            self._every_spec.update(made.state_spec())
        on = [name for name in SCREEN_NAMES if name in screens]
        # channel screens in increasing precedence, so the latch keeps the worst
        self.channel_screens: tuple[ChannelScreen, ...] = tuple(
            sorted((channel_made[n] for n in on if n in channel_made), key=lambda sc: sc.code)
        )
        # signal screens in order of precedence when both are on
        self.signal_screens: tuple[SignalScreen, ...] = tuple(
            signal_made[n] for n in on if n in signal_made
        )
        super().__init__()

    def _state_spec(self) -> Spec:
        c = (len(self.channels),)
        spec: Spec = {
            # samples carrying any channel, up to training
            "rows_n": (count_dtype(self.train_samples), (), 0),
            # the channel latch: worst channel-screen fault, its onset, healthy run since
            "fault": (np.dtype(np.int8), c, 0),
            "fault_since": (np.dtype(np.float64), c, 0.0),
            "ok_n": (count_dtype(self.clear_samples), c, 0),  # up to clear_samples
            "category": (np.dtype(np.int8), (), 0),
            "changed_t": (np.dtype(np.float64), (), 0.0),
        }
        for screen in self._screens():
            own = screen.state_spec()
            if own.keys() & spec.keys():
                raise ValueError(f"screen {screen.name} reuses state {own.keys() & spec.keys()}")
            spec.update(own)
        return spec

    # -- the gate ------------------------------------------------------------------------

    def as_gate(self) -> SensorFaultDetector:
        return self

    def screen(self, batch: SampleBatch, devices: DeviceTable | None = None) -> SampleBatch:
        """Update, then return ``batch`` with readings judged faulty replaced by NaN."""
        self._bad = np.zeros((0, len(self.channels)), dtype=bool)
        self._last_keep = np.empty(0, np.int64)
        self.update(batch, devices)
        keep = self._last_keep
        if not len(batch) or not len(keep) or not self._bad.any():
            return batch
        signals = dict(batch.signals)
        for j, name in enumerate(self.channels):
            col = signals.get(name)
            bad = keep[self._bad[:, j]]
            if col is None or not len(bad):
                continue
            col = col.copy()
            col[bad] = np.nan
            signals[name] = col
        return SampleBatch(batch.slot, batch.t_s, signals)

    def faulty(self, signals: Collection[str], n: int) -> npt.NDArray[np.bool_]:
        """Slots (0..n-1) with a fault other than spiking on any of ``signals``."""
        out = np.zeros(n, dtype=bool)
        m = min(n, self._n_slots)
        if not m:
            return out
        cols = [j for j, c in enumerate(self.channels) if c in signals]
        if cols:
            out[:m] = (self._state["fault"][:m][:, cols] >= DRIFTING).any(axis=1)
        for screen in self.signal_screens:
            if any(p in signals for p in screen.signals):
                out[:m] |= screen.on(self._state, slice(0, m))
        return out

    # -- learning ------------------------------------------------------------------------

    def _update(self, batch: SampleBatch, devices: DeviceTable | None) -> None:
        if self.engine == "compiled":
            self._update_compiled(batch)
            return
        if self.engine != "numpy":
            raise ValueError(f"engine {self.engine!r} not among {ENGINES}")
        x = np.stack([batch.signal(c) for c in self.channels], axis=1)
        self._bad = np.zeros(x.shape, dtype=bool)
        inputs = [sc.prepare(batch) for sc in self._screens()]
        decay = np.float32(1.0 - 1.0 / self.learn_samples)
        # Rows are sorted by (slot, t). Devices with the most rows first: step j (every
        # device's j-th row) then covers a leading block of them, and the screens work on
        # views of that block instead of gathering and scattering state every step.
        slot = batch.slot
        first = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        count = np.diff(np.r_[first, len(slot)])
        by_count = np.argsort(-count, kind="stable")
        first, count = first[by_count], count[by_count]
        dev = slot[first]
        contiguous = bool(np.all(np.diff(dev) == 1))
        if contiguous:  # every slot of a range, as equal uplinks give: views, no copies
            s = {k: v[dev[0] : dev[-1] + 1] for k, v in self._state.items()}
        else:
            s = {k: v[dev] for k, v in self._state.items()}
        n_at = np.searchsorted(-count, -np.arange(1, int(count[0]) + 1), side="right")
        uniform = count[0] == count[-1]  # as many rows of every device: steps are strides
        for j, n in enumerate(n_at):
            rows: Any = slice(j, len(slot), int(count[0])) if uniform else first[:n] + j
            here = slice(0, int(n))
            xr = x[rows]
            present = np.isfinite(xr)
            all_present = bool(present.all())
            any_present = (
                np.ones(len(xr), dtype=bool) if all_present else reduce_rows(np.logical_or, present)
            )
            x32 = xr.astype(np.float32)  # the readings as stored, 0 where absent
            if not all_present:
                x32[~present] = 0.0
            training = s["rows_n"][here] < self.train_samples
            s["rows_n"][here] += any_present & training
            st = Step(
                slots=here,
                t=batch.t_s[rows],
                x=xr,
                x32=x32,
                present=present,
                any_present=any_present,
                training=training,
                fault=s["fault"][here].copy(),
                decay=decay,
            )
            ins = iter([None if a is None else a[rows] for a in inputs])
            now = np.zeros(present.shape, np.int8)
            for sc in self.channel_screens:
                np.copyto(now, np.int8(sc.code), where=sc.step(s, st, next(ins)))
            self._latch(s, st, now)
            bad = np.zeros(present.shape, dtype=bool)
            for sc in self.channel_screens:
                bad |= sc.withheld(st)
            for sg in self.signal_screens:
                sg.step(s, st, next(ins))
                bad |= sg.withheld(s, st)
            self._bad[rows] = bad
            self._set_category(s, here, st.t)
        if not contiguous:
            for k, v in self._state.items():
                v[dev] = s[k]

    def _update_compiled(self, batch: SampleBatch) -> None:
        """``_update`` by ``kernel.screen_rows``: every device's rows in one compiled loop,
        stopping where a numpy step is due (a full drift baseline, a full leak block)."""
        from analytics.sensor_faults import kernel  # numba loads on the first update

        s = self._state
        on = {sc.name for sc in self._screens()}
        slot, t = batch.slot, batch.t_s
        n, n_ch = len(slot), len(self.channels)
        start = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        stop = np.r_[start[1:], n]
        resume = np.zeros(len(start), dtype=bool)
        chans = tuple(np.ascontiguousarray(batch.signal(c)) for c in self.channels)
        pos, speed = batch.signal("position_pct"), batch.signal("speed_rpm")
        p_in, p_out = batch.signal("p_in_kpa"), batch.signal("p_out_kpa")
        leak_on = "leak_drift" in on and self._leak.channel >= 0
        # the leak fit's logs by numpy (``LeakDriftScreen.prepare``), the rest compiled
        lq = lp = np.zeros(0)
        if leak_on:
            press = kernel.leak_pressure(
                pos, speed, p_in, p_out, batch.signal("flow_m3h"),
                closed_max=self._leak.closed_max_pct, min_dp=self._leak.min_dp_kpa,
                min_speed=self._leak.min_speed_rpm,
            )  # fmt: skip
            with np.errstate(invalid="ignore", divide="ignore"):
                lq, lp = np.log(batch.signal("leak_mm3s")), np.log(press)
        # the state of a screen that is off: an array of its shape, never read
        state = [
            s[k] if k in s else np.zeros((1, *shape), dtype) for k, (dtype, shape, _) in (
                (k, self._every_spec.get(k) or self._spec[k]) for k in _KERNEL_STATE
            )
        ]  # fmt: skip
        sp, pair, leak, test = self._spikes, self._pair, self._leak, self._pair._test
        c = self.channels
        fixed = (
            "spiking" in on, "missing" in on, "stuck" in on, "pressure_drift" in on, leak_on,
            self.train_samples, self.clear_samples,
            np.float32(1.0 - 1.0 / self.learn_samples),
            self._stuck.min_run, math.log(self._stuck.alpha),
            np.float32(math.log(self._missing.alpha)), self._stuck.min_duration_s,
            self._stuck.closed_max_pct, pair.open_min_pct, self._missing._watch,
            sp.window, (sp.window - 2) // 4, np.float32(sp.k), np.float32(0.5 * sp.rate),
            np.float32(sp.alpha), sp.rate, _network(sp.window), _network(sp.window - 1),
            pair.baseline, pair.drift_kpa, test.h_shifts, test.h_sigmas, test.alpha,
            test.clear_fraction * 2.0,
            leak.block, leak.channel,
            c.index("p_in_kpa") if "p_in_kpa" in c else -1,
            c.index("p_out_kpa") if "p_out_kpa" in c else -1,
            np.array(leak._fit_ix, dtype=np.int64), math.log(leak.min_mm3s), _CATEGORY_OF_FAULT,
        )  # fmt: skip
        bad = np.zeros((n, n_ch), dtype=bool)
        work = kernel.scratch(n_ch, sp.window)
        while len(start):
            pause_row = np.empty(len(start), np.int64)
            pause_why = np.empty(len(start), np.int64)
            kernel.screen_rows(
                start, stop, resume, slot, t, chans, pos, speed, p_in, p_out, lq, lp,
                *fixed, *state, bad, pause_row, pause_why, *work,
            )  # fmt: skip
            paused = np.flatnonzero(pause_row >= 0)
            rows, why = pause_row[paused], pause_why[paused]
            dev = slot[rows]
            for j in range(2):  # a pressure residual's baseline is full
                done = dev[(why >> j) & 1 == 1]
                if len(done):
                    med, sig = robust_level(s["drift_buf"][done, j], 1.0)
                    s["drift_med"][done, j] = med
                    s["drift_sigma"][done, j] = sig
            full = (why & kernel.PAUSE_BLOCK) != 0
            if full.any():  # a leak block is full
                leak._block_done(s, dev[full], t[rows[full]])
            start, stop = rows, stop[paused]
            resume = np.ones(len(start), dtype=bool)
        self._bad = bad

    def _latch(self, s: State, st: Step, now: npt.NDArray[np.int8]) -> None:
        """Raise a channel's fault to the worst judged now; clear it after a healthy run."""
        slots, fault = st.slots, st.fault
        ok_n = np.where(now > 0, 0, np.where(st.present, s["ok_n"][slots] + 1, s["ok_n"][slots]))
        rise = now > fault
        keep = (fault > 0) & (now <= fault) & (ok_n < self.clear_samples)
        new = np.where(rise, now, np.where(keep, np.maximum(fault, now), 0)).astype(np.int8)
        s["fault_since"][slots] = np.where(
            (new > 0) & (fault == 0), st.t[:, None], np.where(new > 0, s["fault_since"][slots], 0.0)
        )
        s["fault"][slots] = new
        s["ok_n"][slots] = np.where(new > 0, ok_n, 0)
        st.latched = new

    def _worst(
        self, s: State, slots: I64 | slice
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
        """(fault code, channel index (-1: the pressure pair), since, and per signal screen
        where it is the one shown) of each slot's worst fault."""
        fault = s["fault"][slots]
        worst_ch = np.argmax(fault, axis=1)
        code = np.take_along_axis(fault, worst_ch[:, None], axis=1)[:, 0]
        since = np.take_along_axis(s["fault_since"][slots], worst_ch[:, None], axis=1)[:, 0]
        ch = worst_ch
        shown: list[Any] = []
        taken = np.zeros(len(code), dtype=bool)
        for sg in self.signal_screens:
            use = sg.on(s, slots) & (code < DRIFTING) & ~taken
            taken |= use
            ch = np.where(use, sg.channel, ch)
            since = np.where(use, sg.since(s, slots), since)
            shown.append(use)
        code = np.where(taken, DRIFTING, code).astype(np.int8)
        return code, ch, since, shown

    def _set_category(self, s: State, slots: slice, t: F64) -> None:
        # the code of ``_worst``, without what only a verdict needs
        code = reduce_rows(np.maximum, s["fault"][slots])
        for sg in self.signal_screens:
            code = np.where(sg.on(s, slots) & (code < DRIFTING), DRIFTING, code)
        cat = _CATEGORY_OF_FAULT[code]
        changed = cat != s["category"][slots]
        s["category"][slots] = cat
        s["changed_t"][slots] = np.where(changed, t, s["changed_t"][slots])

    # -- reading -------------------------------------------------------------------------

    def verdicts(self) -> Verdicts:
        n = self._n_slots
        s = {k: v[:n] for k, v in self._state.items()}
        code, ch, since, sig_shown = self._worst(self._state, slice(0, n))
        cat = _CATEGORY_OF_FAULT[code]
        rows = np.arange(n)
        chi = np.maximum(ch, 0)
        margin = np.full(n, np.nan)
        evidence = {k: np.full(n, np.nan) for k in _EVIDENCE}

        def show(shown: np.ndarray, m: F64, ev: dict[str, F64]) -> None:
            margin[shown] = m[shown]
            for k, a in ev.items():
                evidence[k] = np.where(shown, a, evidence[k])

        for sc in self.channel_screens:
            shown = code == sc.code
            show(shown, *sc.explain(s, rows, chi, shown))
        for sg, shown in zip(self.signal_screens, sig_shown, strict=True):
            show(shown, *sg.explain(s, rows, shown))
        status = np.where(
            s["rows_n"] == 0,
            Status.NO_DATA,
            np.where(
                s["rows_n"] < self.train_samples,
                Status.LEARNING,
                np.where(cat > 0, Status.ALARM, Status.NORMAL),
            ),
        ).astype(np.int8)
        return Verdicts(
            cause=self.cause,
            signal="sensor readings",
            status=status,
            category=cat,
            severity=_SEVERITY_OF_FAULT[code],
            since_s=np.where(code > 0, since, np.nan),
            changed_s=np.where(s["changed_t"] > 0, s["changed_t"], np.nan),
            confidence=np.where(code > 0, confidence(1.0 + np.maximum(margin - 1, 0)), np.nan),
            evidence={
                "fault": code.astype(np.float64),
                "channel": np.where(code > 0, ch, np.nan).astype(np.float64),
                **evidence,
            },
        )

    def _screens(self) -> tuple[ChannelScreen | SignalScreen, ...]:
        return (*self.channel_screens, *self.signal_screens)

    def _signal_screen(self, residual: int) -> SignalScreen:
        return next(sg for sg in self.signal_screens if residual in sg.residual)

    def _shown_screen(self, v: Verdicts, i: int) -> ChannelScreen | SignalScreen | None:
        code = int(v.evidence["fault"][i])
        if code == DRIFTING:
            return self._signal_screen(int(v.evidence["drift_residual"][i]))
        return next((sc for sc in self.channel_screens if sc.code == code), None)

    def evidence(self, v: Verdicts, i: int) -> dict[str, Any]:
        out = super().evidence(v, i)
        code = int(v.evidence["fault"][i])
        out["fault"] = FAULT_NAMES[code] or None
        ch = v.evidence["channel"][i]
        if code == DRIFTING:
            residual = int(v.evidence["drift_residual"][i])
            out["signal"] = _DRIFT_NAMES[residual]
            out["channel"] = "/".join(self._signal_screen(residual).signals)
        elif math.isfinite(ch) and ch >= 0:
            out["channel"] = self.channels[int(ch)]
            out["signal"] = out["channel"]
        else:
            out["channel"] = None
        return out

    def summary(self, v: Verdicts, i: int) -> str:
        screen = self._shown_screen(v, i)
        if screen is None:
            return "Sensors healthy"
        e = self.evidence(v, i)
        return screen.describe(e, fmt_time(e["since"]))
