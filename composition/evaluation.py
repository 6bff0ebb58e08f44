"""Evaluation: a simulated fleet with ground truth through the detectors (``sealscope eval``).

In-process and broker-free: ``firmware_sim.Fleet`` produces each round's uplinks, their
samples go straight into the detectors as one ``SampleBatch`` per flush, and every verdict
that turns from normal to a category is an *alert*, as ``DetectionService`` would raise it.
Alerts are dated at the true time of the flush that raised them, i.e. when a technician
would have seen them (arrival, not event time, so sleeping devices and wrong device clocks
cost what they cost in the field). First seal alerts feed ``FleetRisk``, which is
evaluated every ``risk_every_days``.

Scores (``score_alerts`` does the arithmetic, on any truth and alert list):

* caught before the limit: degrading devices whose limit crossing falls in the run and
  that had an alert at or after onset and at or before the crossing, over all such
  devices; sudden steps that cross at onset (no warning possible) are counted apart;
* lead time: crossing minus first alert, for those caught; delay: first alert at or
  after onset minus onset, for every degrading device alerted;
* false alarms per 1,000 device-months: alerts on devices with no degradation, alerts on
  degrading devices before onset, and seal alerts during a sensor fault; sensor-cause
  alerts count as false only outside every fault episode of that device;
* fleet risk: for each truly bad batch, when ``batch:<name>`` was first flagged; flagged
  batches that are not bad are false risk alerts.
"""

from __future__ import annotations

import logging
import math
import operator
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import numpy as np

from analytics.base import Detector
from analytics.fleet_risk import FleetRisk
from analytics.service import DetectionService, default_detectors
from sealscope.alerts import Alert, Category
from sealscope.memory_alerts import MemoryAlertStore

__all__ = ["AlertRecord", "EvalReport", "SeedResult", "TruthRecord", "run_eval", "score_alerts"]

log = logging.getLogger(__name__)

_DAY_S: Final = 86_400.0
_MONTH_D: Final = 365.25 / 12
_INSTANT_S: Final = 3_600.0  # a crossing this soon after onset could not have been warned of
_FAULT_GRACE_S: Final = 2 * _DAY_S  # a sensor alert may trail its fault by this much


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """What ``score_alerts`` needs to know about one device."""

    device_id: str
    onset_t: float | None = None  # degradation onset; None: healthy
    crossing_t: float | None = None  # limit crossing; None: not within the run
    mode: str = "none"
    batch: str = ""
    is_bad_batch: bool = False
    sensor_faults: tuple[tuple[float, float | None], ...] = ()  # (start, end) episodes


@dataclass(frozen=True, slots=True)
class AlertRecord:
    device_id: str
    cause: str
    t: float  # true time the alert became visible


@dataclass(slots=True)
class SeedResult:
    seed: int
    devices: int
    days: float
    device_months: float
    degrading: int = 0  # onset within the run
    crossed: int = 0  # limit crossed within the run (warnable + instant)
    instant: int = 0  # crossed within _INSTANT_S of onset
    caught_before_limit: int = 0  # of the warnable crossings
    detected: int = 0  # degrading devices alerted at or after onset (any time)
    lead_times_s: list[float] = field(default_factory=list)
    delays_s: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # warnable, not caught before the limit
    false_alarms: int = 0
    false_alarm_devices: list[str] = field(default_factory=list)
    false_alarms_sensor_fault: int = 0  # of false_alarms: on devices with a sensor fault
    false_alarms_by_cause: dict[str, int] = field(default_factory=dict)
    sensor_fault_devices: int = 0
    bad_batches: dict[str, float | None] = field(default_factory=dict)  # -> days to flag
    # per bad batch: devices, onsets within the run, day of its first onset (None: none)
    bad_batch_truth: dict[str, tuple[int, int, float | None]] = field(default_factory=dict)
    false_risk_batches: list[str] = field(default_factory=list)
    other_risk_flags: list[str] = field(default_factory=list)
    samples: int = 0
    elapsed_s: float = 0.0

    @property
    def warnable(self) -> int:
        return self.crossed - self.instant

    @property
    def caught_share(self) -> float:
        return self.caught_before_limit / self.warnable if self.warnable else math.nan

    @property
    def median_lead_days(self) -> float:
        return statistics.median(self.lead_times_s) / _DAY_S if self.lead_times_s else math.nan

    @property
    def median_delay_days(self) -> float:
        return statistics.median(self.delays_s) / _DAY_S if self.delays_s else math.nan

    @property
    def onset_to_risk_days(self) -> list[float]:
        """Per flagged bad batch: days from its first seal onset to its risk alert."""
        out = []
        for b, flagged in self.bad_batches.items():
            first = self.bad_batch_truth.get(b, (0, 0, None))[2]
            if flagged is not None and first is not None:
                out.append(flagged - first)
        return out

    @property
    def false_alarms_per_1000_device_months(self) -> float:
        return 1000.0 * self.false_alarms / self.device_months if self.device_months else math.nan


@dataclass(slots=True)
class EvalReport:
    seeds: list[SeedResult] = field(default_factory=list)
    spec: str = ""

    def summary(self) -> str:
        lines = [f"fleet: {self.spec}"]
        head = (
            f"{'seed':>4} {'devices':>7} {'days':>5} {'degr':>5} {'cross':>5} {'inst':>4} "
            f"{'caught':>9} {'lead d':>7} {'delay d':>7} {'FA':>4} {'FA/1k dm':>8} "
            f"{'samples':>11} {'wall s':>7}"
        )
        lines.append(head)
        for r in self.seeds:
            caught_text = f"{r.caught_before_limit}/{r.warnable}"
            lines.append(
                f"{r.seed:>4} {r.devices:>7} {r.days:>5.0f} {r.degrading:>5} {r.crossed:>5} "
                f"{r.instant:>4} {caught_text:>9} {r.median_lead_days:>7.1f} "
                f"{r.median_delay_days:>7.1f} {r.false_alarms:>4} "
                f"{r.false_alarms_per_1000_device_months:>8.2f} {r.samples:>11} "
                f"{r.elapsed_s:>7.1f}"
            )
        for r in self.seeds:
            found = "; ".join(
                _bad_batch_line(b, d, r.bad_batch_truth.get(b))
                for b, d in sorted(r.bad_batches.items())
            )
            lines.append(f"seed {r.seed} bad batches: {found or 'none in truth'}")
            if r.false_risk_batches:
                lines.append(f"seed {r.seed} false risk alerts: {', '.join(r.false_risk_batches)}")
            if r.other_risk_flags:
                lines.append(f"seed {r.seed} other groups flagged: {', '.join(r.other_risk_flags)}")
            if r.missed:
                more = f" (+{len(r.missed) - 10})" if len(r.missed) > 10 else ""
                lines.append(f"seed {r.seed} missed before limit: {', '.join(r.missed[:10])}{more}")
            if r.false_alarm_devices:
                lines.append(
                    f"seed {r.seed} false alarms on: {', '.join(r.false_alarm_devices[:10])}"
                    + (
                        f" (+{len(r.false_alarm_devices) - 10})"
                        if len(r.false_alarm_devices) > 10
                        else ""
                    )
                    + f"; {r.false_alarms_sensor_fault} of them on devices with a sensor fault; "
                    + "by cause: "
                    + ", ".join(f"{c} {k}" for c, k in sorted(r.false_alarms_by_cause.items()))
                )
        if self.seeds:
            warn = sum(r.warnable for r in self.seeds)
            caught = sum(r.caught_before_limit for r in self.seeds)
            leads = [x for r in self.seeds for x in r.lead_times_s]
            delays = [x for r in self.seeds for x in r.delays_s]
            fa = sum(r.false_alarms for r in self.seeds)
            dm = sum(r.device_months for r in self.seeds)
            bad = [d for r in self.seeds for d in r.bad_batches.values()]
            to_risk = [x for r in self.seeds for x in r.onset_to_risk_days]
            lines.append(
                "all seeds: caught before limit "
                + (f"{caught}/{warn} = {100 * caught / warn:.1f} %" if warn else "n/a")
                + (f", median lead {statistics.median(leads) / _DAY_S:.1f} d" if leads else "")
                + (f", median delay {statistics.median(delays) / _DAY_S:.1f} d" if delays else "")
                + f", false alarms {fa} = {1000 * fa / dm:.2f} per 1,000 device-months"
                + (
                    f", bad batches flagged {sum(d is not None for d in bad)}/{len(bad)}"
                    if bad
                    else ""
                )
                + (
                    f", median first onset to risk alert {statistics.median(to_risk):.0f} d"
                    if to_risk
                    else ""
                )
                + f", false risk alerts {sum(len(r.false_risk_batches) for r in self.seeds)}"
            )
        return "\n".join(lines)


def _bad_batch_line(
    batch: str, flagged_day: float | None, truth: tuple[int, int, float | None] | None
) -> str:
    devices, onsets, first = truth if truth is not None else (0, 0, None)
    head = f"{batch} ({devices} devices, {onsets} onsets"
    head += f", first on day {first:.0f})" if first is not None else ")"
    if flagged_day is None:
        return f"{head}: not flagged"
    after = f", {flagged_day - first:.0f} d after its first onset" if first is not None else ""
    return f"{head}: flagged day {flagged_day:.0f}{after}"


# -- scoring -----------------------------------------------------------------------------


def _is_sensor(cause: str) -> bool:
    return cause.startswith("sensor")


def score_alerts(
    truth: Sequence[TruthRecord],
    alerts: Iterable[AlertRecord],
    *,
    start_t: float,
    until_t: float,
    seed: int = 0,
    risk_flags: dict[str, float] | None = None,
) -> SeedResult:
    """Score alerts against truth over [start_t, until_t]; ``risk_flags``: group key -> first
    flagged time."""
    days = (until_t - start_t) / _DAY_S
    result = SeedResult(
        seed=seed, devices=len(truth), days=days, device_months=len(truth) * days / _MONTH_D
    )
    by_device: dict[str, list[AlertRecord]] = {}
    for a in sorted(alerts, key=lambda a: (a.t, a.device_id, a.cause)):
        by_device.setdefault(a.device_id, []).append(a)
    for d in truth:
        mine = by_device.get(d.device_id, [])
        faults = d.sensor_faults
        if faults:
            result.sensor_fault_devices += 1

        def in_fault(t: float, faults: tuple[tuple[float, float | None], ...] = faults) -> bool:
            return any(
                s <= t <= (e if e is not None else math.inf) + _FAULT_GRACE_S for s, e in faults
            )

        # None unless the device starts degrading within the run
        onset_t = d.onset_t if d.onset_t is not None and d.onset_t <= until_t else None
        first_after_onset: float | None = None
        for a in mine:
            if _is_sensor(a.cause):
                false = not in_fault(a.t)
            elif onset_t is not None and a.t >= onset_t:
                false = False
                if first_after_onset is None:
                    first_after_onset = a.t
            else:
                false = True
            if false:
                result.false_alarms += 1
                by_cause = result.false_alarms_by_cause
                by_cause[a.cause] = by_cause.get(a.cause, 0) + 1
                result.false_alarm_devices.append(d.device_id)
                if faults:
                    result.false_alarms_sensor_fault += 1
        if onset_t is None:
            continue
        result.degrading += 1
        onset = float(onset_t)
        if first_after_onset is not None:
            result.detected += 1
            result.delays_s.append(first_after_onset - onset)
        if d.crossing_t is None or d.crossing_t > until_t:
            continue
        result.crossed += 1
        if d.crossing_t - onset <= _INSTANT_S:
            result.instant += 1
            continue
        if first_after_onset is not None and first_after_onset <= d.crossing_t:
            result.caught_before_limit += 1
            result.lead_times_s.append(d.crossing_t - first_after_onset)
        else:
            result.missed.append(d.device_id)
    result.false_alarm_devices = sorted(set(result.false_alarm_devices))
    flags = risk_flags or {}
    bad = sorted({d.batch for d in truth if d.is_bad_batch and d.batch})
    for b in bad:
        t = flags.get(f"batch:{b}")
        result.bad_batches[b] = None if t is None else (t - start_t) / _DAY_S
        members = [d for d in truth if d.batch == b]
        onsets = [d.onset_t for d in members if d.onset_t is not None and d.onset_t <= until_t]
        first = (min(onsets) - start_t) / _DAY_S if onsets else None
        result.bad_batch_truth[b] = (len(members), len(onsets), first)
    result.false_risk_batches = sorted(
        k for k in flags if k.startswith("batch:") and k.removeprefix("batch:") not in bad
    )
    result.other_risk_flags = sorted(k for k in flags if not k.startswith("batch:"))
    return result


# -- simulation ----------------------------------------------------------------------------


class _RecordingAlerts(MemoryAlertStore):
    """An AlertStore that keeps nothing: the eval reads the service's changes instead."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def raise_alert(
        self,
        *,
        device_id: str,
        cause: str,
        category: Category,
        severity: int,
        summary: str,
        evidence: dict[str, Any],
        t: float,
    ) -> Alert:
        self._next += 1
        return Alert(
            id=self._next, device_id=device_id, cause=cause, category=category,
            severity=severity, status="open", summary=summary, evidence=evidence,
            opened_at=t, updated_at=t,
        )  # fmt: skip

    def clear(self, *, device_id: str, cause: str, t: float) -> Alert | None:
        return None


def _truth_records(fleet: Any, until_t: float) -> list[TruthRecord]:
    get = getattr(fleet, "fleet_truth", None)
    devices = get().devices if callable(get) else fleet.truth()
    by_id = {d.device_id: d for d in fleet.devices}
    need_crossing = devices and not hasattr(devices[0], "limit_crossing_t")
    crossing = _crossings(fleet, until_t) if need_crossing else {}
    out = []
    for d in devices:
        faults = tuple(
            (float(f.start_t), None if f.end_t is None else float(f.end_t))
            for f in getattr(d, "sensor_faults", ())
        )
        out.append(
            TruthRecord(
                device_id=d.device_id,
                onset_t=d.onset_t if d.is_degrading else None,
                crossing_t=getattr(d, "limit_crossing_t", crossing.get(d.device_id)),
                mode=getattr(d, "mode", "leak_gradual" if d.is_degrading else "none"),
                batch=getattr(d, "batch", "") or by_id[d.device_id].batch,
                is_bad_batch=bool(getattr(d, "is_bad_batch", False)),
                sensor_faults=faults,
            )
        )
    return out


def _crossings(fleet: Any, until_t: float) -> dict[str, float]:
    """First time each valve's true leak at test ΔP exceeds its class (older simulators)."""
    start = fleet.spec.start_t
    grid = np.arange(start, until_t + 3600.0, 3600.0)
    out: dict[str, float] = {}
    c = fleet.leak_coeff(np.broadcast_to(grid, (fleet.spec.devices, len(grid))))
    dp_test = 110.0 * np.asarray(fleet.pn, dtype=np.float64)
    leak = c * np.sqrt(dp_test)[:, None]
    over = leak > np.asarray(fleet.allowable_mm3s)[:, None]
    for i in np.flatnonzero(over.any(axis=1)).tolist():
        out[fleet.device_ids[i]] = float(grid[int(np.argmax(over[i]))])
    return out


def _field_spec(devices: int, seed: int, overrides: dict[str, Any]) -> Any:
    from firmware_sim import FleetSpec

    days = overrides.pop("_days")
    factory = getattr(FleetSpec, "field", None)
    if callable(factory):
        return factory(devices=devices, seed=seed, **overrides)
    # the first simulator: hourly samples, daily uplinks, onsets over the run
    values: dict[str, Any] = {
        "devices": devices,
        "seed": seed,
        "sample_interval_s": 3600.0,
        "samples_per_uplink": 24,
        "degrading_share": 0.1,
        "onset_uplinks": (14, max(15, int(0.8 * days))),
        "degrade_span_uplinks": 90,
        "degrade_factor": 30.0,
    }
    values.update(overrides)
    return FleetSpec(**values)


class _Decoder:
    """Telemetry payload bytes -> rows of (t, fields...) floats, NaN where absent."""

    def __init__(self, fields: Sequence[str]) -> None:
        sample = msgspec.defstruct(
            "_EvalSample", [("t", float), *((f, float, math.nan) for f in fields)]
        )
        # built at run time from the fields asked for, so no static type to name
        body = msgspec.defstruct("_EvalTelemetry", [("samples", list[sample])])  # type: ignore[valid-type]
        self._decode: Callable[[bytes], Any] = msgspec.json.Decoder(body).decode
        self._row = operator.attrgetter("t", *fields)

    def rows(self, payload: bytes) -> list[tuple[float, ...]]:
        return [self._row(s) for s in self._decode(payload).samples]


def _delivered(fleet: Any, decoder: _Decoder) -> tuple[list[int], list[tuple[float, ...]]]:
    """One round: the telemetry rows that reached the network (retry copies included)."""
    step = getattr(fleet, "step", None)
    slots: list[int] = []
    rows: list[tuple[float, ...]] = []
    if callable(step):
        out = step()
        for k, kind in enumerate(out.kind):
            copies = int(out.copies[k])
            if kind != "telemetry" or copies == 0:
                continue
            got = decoder.rows(out.payload[k])
            for _ in range(copies):
                rows.extend(got)
                slots.extend([int(out.device[k])] * len(got))
        return slots, rows
    for i, u in enumerate(fleet.next_uplinks()):  # the first simulator: no radio
        got = [decoder._row(s) for s in u.telemetry.samples]
        got = [tuple(math.nan if v is None else v for v in r) for r in got]
        rows.extend(got)
        slots.extend([i] * len(got))
    return slots, rows


class _BatchRounds:
    """``_delivered`` from ``Fleet.step_batch()``: the same rows in the same order, from
    the round's columns instead of parsing its JSON (the readings are equal: the JSON
    writes them at the resolution they were rounded to).

    The order is the payloads': messages by true wake-up time, each copy of a message
    being the samples it still held from unacknowledged uplinks, then its own."""

    def __init__(self, fleet: Any, fields: Sequence[str]) -> None:
        self._fleet, self._fields = fleet, list(fields)
        self._held: dict[int, np.ndarray] = {}  # device -> rows of its last unacked uplink

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        b = self._fleet.step_batch()
        s = b.t.shape[1]
        new = np.stack([b.t, *(b.readings[f] for f in self._fields)], axis=-1)  # (rows, s, F)
        order = np.argsort(b.wake_t, kind="stable")
        order = order[b.copies[order] > 0]
        pos = np.repeat(order, b.copies[order])  # one entry per copy that arrived
        held = b.held_samples[pos]
        lengths = held + s
        starts = np.cumsum(lengths) - lengths
        index = np.empty(int(lengths.sum()), dtype=np.int64)
        index[((starts + held)[:, None] + np.arange(s)).ravel()] = (
            pos[:, None] * s + np.arange(s)
        ).ravel()
        pool = [new.reshape(-1, new.shape[-1])]
        at = pool[0].shape[0]
        for m in np.flatnonzero(held).tolist():
            carried = self._held[int(b.device[pos[m]])][-int(held[m]) :]
            index[starts[m] : starts[m] + held[m]] = np.arange(at, at + carried.shape[0])
            pool.append(carried)
            at += carried.shape[0]
        rows = np.concatenate(pool)[index] if len(pool) > 1 else pool[0][index]
        for r in np.flatnonzero(~b.is_acked).tolist():
            d, h = int(b.device[r]), int(b.held_samples[r])
            older = self._held[d][-h:] if h else new[r, :0]
            self._held[d] = np.concatenate([older, new[r]])
        for r in np.flatnonzero(b.is_acked & (b.held_samples > 0)).tolist():
            self._held.pop(int(b.device[r]), None)
        slots = np.repeat(b.device[pos], lengths)
        return slots, rows


def _run_seed(
    *,
    devices: int,
    days: float,
    seed: int,
    spec_overrides: dict[str, Any],
    detectors: Callable[[], list[Detector]],
    flush_every_s: float,
    risk_every_days: float,
    progress: Callable[[str], None] | None,
    via_json: bool = False,
) -> tuple[SeedResult, str]:
    from firmware_sim import Fleet

    wall0 = time.perf_counter()
    spec = _field_spec(devices, seed, {**spec_overrides, "_days": days})
    fleet = Fleet(spec)
    dets = detectors()
    fields = sorted({f for d in dets for f in d.signals})
    service = DetectionService(alerts=_RecordingAlerts(), state_path=None, detectors=dets)
    for d in fleet.devices:
        service.observe(d, [])  # slot i is device i
    ids = [d.device_id for d in fleet.devices]
    decoder = _Decoder(fields)
    risk = FleetRisk()
    risk.add_devices(fleet.devices)
    risk_store = _RecordingAlerts()
    start_t = float(spec.start_t)
    until_t = start_t + days * _DAY_S
    span = float(spec.uplink_span_s)
    rounds = math.ceil(days * _DAY_S / span)
    per_flush = max(1, round(flush_every_s / span))
    per_risk = max(1, round(risk_every_days * _DAY_S / span))
    alerts: list[AlertRecord] = []
    risk_flags: dict[str, float] = {}
    slots: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    samples = 0
    # the round's columns straight from the fleet, unless it only speaks JSON
    batches = None if via_json or not hasattr(fleet, "step_batch") else _BatchRounds(fleet, fields)
    for r in range(rounds):
        if batches is not None:
            slot_r, rows_r = batches()
        else:
            s, rw = _delivered(fleet, decoder)
            slot_r = np.asarray(s, np.int64)
            rows_r = np.asarray(rw, np.float64).reshape(len(rw), 1 + len(fields))
        slots.append(slot_r)
        rows.append(rows_r)
        last = r == rounds - 1
        if (r + 1) % per_flush and not last:
            continue
        now = start_t + (r + 1) * span  # true time at the end of this round
        slot = np.concatenate(slots)
        if slot.size:
            arr = np.concatenate(rows)
            t = np.where(arr[:, 0] >= 1e11, arr[:, 0] / 1000.0, arr[:, 0])
            service.observe_arrays(slot, t, {f: arr[:, j + 1] for j, f in enumerate(fields)})
            lo = np.full(len(ids), np.inf)
            hi = np.full(len(ids), -np.inf)
            np.minimum.at(lo, slot, t)
            np.maximum.at(hi, slot, t)
            seen = np.flatnonzero(np.isfinite(lo))
            risk.observe_many([ids[i] for i in seen], lo[seen], hi[seen])
            samples += len(slot)
        slots, rows = [], []
        changes = service.flush()
        for c in changes:
            if c.action == "raised":
                alerts.append(AlertRecord(c.device_id, c.cause, now))
        risk.record_changes(changes)
        if (r + 1) % per_risk == 0 or last:
            risk.observe_detectors(service)
            for change in risk.apply(risk_store, t=now):
                if change.action == "raised":
                    risk_flags.setdefault(change.key, now)
            if progress is not None:
                progress(
                    f"seed {seed}: day {(now - start_t) / _DAY_S:.0f}/{days:.0f}, "
                    f"{samples} samples, {len(alerts)} alerts, "
                    f"{time.perf_counter() - wall0:.0f} s"
                )
    truth = _truth_records(fleet, until_t)
    result = score_alerts(
        truth, alerts, start_t=start_t, until_t=until_t, seed=seed, risk_flags=risk_flags
    )
    result.samples = samples
    result.elapsed_s = time.perf_counter() - wall0
    return result, _describe(spec)


def _describe(spec: Any) -> str:
    keys = ("sample_interval_s", "samples_per_uplink", "onset_model", "radio",
            "sensor_faults_per_year", "bad_batch_share", "bad_batch_hazard")  # fmt: skip
    parts = [f"{k}={getattr(spec, k)}" for k in keys if hasattr(spec, k)]
    return ", ".join(parts)


def run_eval(
    *,
    devices: int = 1000,
    days: float = 365.0,
    seeds: Sequence[int] = (0, 1, 2),
    spec_overrides: dict[str, Any] | None = None,
    detectors: Callable[[], list[Detector]] | None = None,
    flush_every_s: float = 6 * 3600.0,
    risk_every_days: float = 7.0,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Simulate ``devices`` for ``days`` on each seed, run the detectors, score them.

    ``spec_overrides`` go to ``FleetSpec.field`` (e.g. ``{"sample_interval_s": 900}`` for a
    faster run); ``detectors`` builds a fresh detector list per seed (default: the
    analytics defaults).
    """
    if devices < 1 or days <= 0 or not seeds:
        raise ValueError("need devices >= 1, days > 0 and at least one seed")
    report = EvalReport()
    for seed in seeds:
        result, desc = _run_seed(
            devices=devices,
            days=days,
            seed=seed,
            spec_overrides=dict(spec_overrides or {}),
            detectors=detectors or default_detectors,
            flush_every_s=flush_every_s,
            risk_every_days=risk_every_days,
            progress=progress,
        )
        report.seeds.append(result)
        report.spec = desc
    return report
