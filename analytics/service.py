"""DetectionService: the glue between ingest, the detectors and the alert store.

Ingest calls ``observe(device, samples)`` for each decoded telemetry message (cheap: the
readings are appended to flat buffers) and ``flush()`` on a timer. A flush builds one
``SampleBatch`` from everything pending, runs the sensor-fault screen over it first (if
configured: the detector whose ``as_gate()`` is a ``Gate``), then every other detector
(the ``gated`` ones on the screened readings, with their verdicts held where
``Detector.held`` says the gate distrusts a signal they read), and compares each
detector's verdicts with the ones it last acted on: only a change of category or
severity reaches the ``AlertStore``, so a device has one alert per cause however many
samples confirm it. A store error leaves that change pending, to be retried next flush.

State (device slots, registry attributes, every detector's learned state and the verdicts
already acted on) is saved with ``save()`` to one ``.npz`` file, written to a temporary
file and moved into place with ``os.replace`` so a crash never leaves half a file, and is
loaded again when a service is built on the same ``state_path``. Samples still pending at
``save()`` are not part of it: flush first.
"""

from __future__ import annotations

import io
import logging
import math
import os
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, cast

import numpy as np

from analytics.actuation import ActuationWearDetector
from analytics.base import (
    CATEGORY_NAMES,
    Detector,
    DeviceTable,
    Gate,
    SampleBatch,
    Status,
    Verdicts,
    sample_time_s,
)
from analytics.evidence import tidy_evidence
from analytics.pump_seal import PumpSealDetector
from analytics.seat_leak import SeatLeakDetector
from analytics.sensor_faults import SensorFaultDetector
from sealscope.alerts import Alert, AlertStore, Category
from sealscope.config import Settings
from sealscope.errors import ConfigError, SealscopeError
from sealscope.registry import Device
from sealscope.wire import Sample

__all__ = ["DEFAULT_DETECTORS", "AlertChange", "DetectionService", "default_detectors"]

log = logging.getLogger(__name__)

_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One call the service made on the alert store during a flush."""

    device_id: str
    cause: str
    action: Literal["raised", "updated", "cleared"]
    category: Category | None
    severity: int
    summary: str
    t: float  # device event time of the change
    evidence: dict[str, Any] = field(default_factory=dict)
    alert: Alert | None = None


# What ``sealscope up`` runs, in order: sensor screen first, then the physical seal checks.
DEFAULT_DETECTORS: Final[tuple[type[Detector], ...]] = (
    SensorFaultDetector,
    SeatLeakDetector,
    ActuationWearDetector,
    PumpSealDetector,
)


def default_detectors(
    section: Mapping[str, Mapping[str, object]] | None = None,
) -> list[Detector]:
    """The detectors ``sealscope up`` runs, with ``section`` (the settings' ``detectors``:
    cause -> {hyper-parameter: value}) over each one's defaults.

    Raises ConfigError naming the key (``detectors.seat_leak.alarm_ratio``) for an unknown
    detector or parameter, a value outside its ``PARAMS`` range, or a combination the
    detector refuses.
    """
    section = section or {}
    by_cause = {cls.cause: cls for cls in DEFAULT_DETECTORS}
    for cause in section:
        if cause not in by_cause:
            raise ConfigError(
                f"detectors.{cause}", f"unknown detector; known: {', '.join(by_cause)}"
            )
    out: list[Detector] = []
    for cause, cls in by_cause.items():
        table = section.get(cause) or {}
        params = {p.name: p for p in cls.PARAMS}
        kwargs: dict[str, Any] = {}
        for name, value in table.items():
            key = f"detectors.{cause}.{name}"
            param = params.get(name)
            if param is None:
                raise ConfigError(key, f"unknown parameter; known: {', '.join(params)}")
            problem = param.problem(value)
            if problem is not None:
                raise ConfigError(key, problem)
            kwargs[name] = param.coerce(value)
        try:
            out.append(cls(**kwargs))
        except ValueError as exc:
            raise ConfigError(f"detectors.{cause}", str(exc)) from exc
    return out


class DetectionService:
    def __init__(
        self,
        *,
        alerts: AlertStore,
        state_path: Path | None,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        dets = list(detectors) if detectors is not None else default_detectors()
        causes = [d.cause for d in dets]
        if not all(causes) or len(set(causes)) != len(causes):
            raise ValueError(f"detectors need distinct, non-empty causes, got {causes}")
        self._alerts = alerts
        self._state_path = Path(state_path) if state_path is not None else None
        self._detectors = dets
        gates = [(d, g) for d in dets if (g := d.as_gate()) is not None]
        if len(gates) > 1:
            raise ValueError(f"at most one gate detector, got {[d.cause for d, _ in gates]}")
        self._screen: Detector | None = gates[0][0] if gates else None
        self._gate: Gate | None = gates[0][1] if gates else None
        self._fields = tuple(sorted({f for d in dets for f in d.signals}))
        self._ids: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._known: dict[str, Device] = {}
        self._table = DeviceTable()
        # Verdicts already acted on, per cause: what the alert store believes.
        self._acted: dict[str, tuple[np.ndarray, np.ndarray]] = {
            c: (np.zeros(0, np.int8), np.zeros(0, np.int8)) for c in causes
        }
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "samples_observed",
                "samples_flushed",
                "flushes",
                "alerts_raised",
                "alerts_updated",
                "alerts_cleared",
                "alert_errors",
                "detector_errors",
                "saves",
            ),
            0,
        )
        self._new_pending()
        if self._state_path is not None and self._state_path.exists():
            self._load(self._state_path)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, alerts: AlertStore, **overrides: Any
    ) -> DetectionService:
        """The service ``up`` and ``ingest`` run: state at ``settings.detector_state_path``,
        detectors from ``settings.detectors`` (see ``default_detectors``)."""
        kwargs: dict[str, Any] = {
            "alerts": alerts,
            "state_path": settings.detector_state_path,
            "detectors": default_detectors(settings.detectors),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- intake --------------------------------------------------------------------------

    @property
    def detectors(self) -> tuple[Detector, ...]:
        return tuple(self._detectors)

    @property
    def counters(self) -> dict[str, int]:
        out = dict(self._counters)
        out["devices"] = len(self._ids)
        out["samples_pending"] = len(self._p_slot)
        out["late_samples"] = sum(d.late_samples for d in self._detectors)
        out["duplicate_samples"] = sum(d.duplicate_samples for d in self._detectors)
        return out

    @property
    def device_ids(self) -> tuple[str, ...]:
        """Device ids by slot."""
        return tuple(self._ids)

    def held(self, detector: Detector) -> np.ndarray:
        """Slots whose ``detector`` verdicts the sensor gate holds back right now."""
        return detector.held(self._gate, len(self._ids))

    def slot(self, device_id: str) -> int | None:
        return self._slot_of.get(device_id)

    def observe(self, device: Device, samples: Sequence[Sample]) -> None:
        """Queue one device's samples for the next flush."""
        slot = self._slot_for(device)
        nan = math.nan
        ps, pt, cols = self._p_slot, self._p_t, self._p_cols
        for sample in samples:
            ps.append(slot)
            pt.append(sample_time_s(sample.t))
            for name, col in cols.items():
                v = getattr(sample, name)
                col.append(nan if v is None else v)
        self._counters["samples_observed"] += len(samples)

    def observe_arrays(
        self, slots: np.ndarray, t_s: np.ndarray, cols: dict[str, np.ndarray]
    ) -> None:
        """Queue samples given as columns: ``slots`` (see ``slot``, each already assigned by
        ``observe``), event times in seconds, and any of the detectors' fields (absent
        ones are NaN). The bulk path of ``observe``, without a Python object per sample."""
        n = len(slots)
        if len(t_s) != n or any(len(v) != n for v in cols.values()):
            raise ValueError("slots, t_s and every column must have the same length")
        if n and (int(np.min(slots)) < 0 or int(np.max(slots)) >= len(self._ids)):
            raise ValueError("unknown slot: register each device with observe() first")
        self._p_slot.frombytes(np.ascontiguousarray(slots, np.int64).tobytes())
        self._p_t.frombytes(np.ascontiguousarray(t_s, np.float64).tobytes())
        for name, col in self._p_cols.items():
            v = cols.get(name)
            v = np.full(n, np.nan) if v is None else np.ascontiguousarray(v, np.float64)
            col.frombytes(v.tobytes())
        self._counters["samples_observed"] += n

    def _slot_for(self, device: Device) -> int:
        slot = self._slot_of.get(device.device_id)
        if slot is None:
            slot = len(self._ids)
            self._ids.append(device.device_id)
            self._slot_of[device.device_id] = slot
        if self._known.get(device.device_id) != device:
            # Registry edits (class, DN, PN) take effect from the next flush.
            self._table.set(slot, device)
            self._known[device.device_id] = device
        return slot

    def _new_pending(self) -> None:
        self._p_slot = array("q")
        self._p_t = array("d")
        self._p_cols = {f: array("d") for f in self._fields}

    # -- detection -----------------------------------------------------------------------

    def flush(self) -> list[AlertChange]:
        """Run the detectors over everything pending; act on verdicts that changed."""
        batch = SampleBatch(
            np.frombuffer(self._p_slot, dtype=np.int64).copy(),
            np.frombuffer(self._p_t, dtype=np.float64).copy(),
            {f: np.frombuffer(c, dtype=np.float64).copy() for f, c in self._p_cols.items()},
        )
        # Taken before running, so a batch that trips a detector cannot wedge the service.
        self._new_pending()
        self._counters["flushes"] += 1
        self._counters["samples_flushed"] += len(batch)
        self._table.ensure_capacity(len(self._ids))
        changes: list[AlertChange] = []
        screened = batch
        screen, gate = self._screen, self._gate
        if screen is not None and gate is not None:
            # First, so seal detectors see readings of faulty sensors withheld.
            try:
                if len(batch):
                    screened = gate.screen(batch, self._table)
            except Exception:
                self._counters["detector_errors"] += 1
                log.exception("sensor screen failed on a batch of %d", len(batch))
            else:
                changes.extend(self._act(screen))
        for det in self._detectors:
            if det is screen:
                continue
            if len(batch):
                try:
                    det.update(screened if det.gated else batch, self._table)
                except Exception:
                    self._counters["detector_errors"] += 1
                    log.exception("detector %s failed on a batch of %d", det.cause, len(batch))
                    continue
            changes.extend(self._act(det))
        return changes

    def _act(self, det: Detector) -> list[AlertChange]:
        v = det.verdicts()
        n = len(self._ids)
        cat = _padded(v.category, n)
        sev = _padded(v.severity, n)
        # A seal verdict resting on a sensor judged faulty is held back: the sensor fault
        # is the alert, and a seal alert it caused is cleared.
        held = det.held(self._gate, n)
        if held.any():
            cat = np.where(held, 0, cat).astype(np.int8)
            sev = np.where(held, 0, sev).astype(np.int8)
        acted_cat, acted_sev = (_padded(a, n) for a in self._acted[det.cause])
        self._acted[det.cause] = (acted_cat, acted_sev)
        changes: list[AlertChange] = []
        for i in np.flatnonzero((cat != acted_cat) | (sev != acted_sev)).tolist():
            change = self._apply(det, v, i, int(cat[i]), int(acted_cat[i]))
            if change is None:
                continue  # store refused; acted_* unchanged so the next flush retries
            acted_cat[i], acted_sev[i] = cat[i], sev[i]
            changes.append(change)
        return changes

    def _apply(self, det: Detector, v: Verdicts, i: int, cat: int, was: int) -> AlertChange | None:
        device_id = self._ids[i]
        t = float(v.changed_s[i]) if i < len(v) else math.nan
        if not math.isfinite(t):
            t = det.last_event_s(i)
        try:
            if cat:
                category = cast(Category, CATEGORY_NAMES[cat])  # only code 0 has no name
                summary = det.summary(v, i)
                evidence = tidy_evidence(det.evidence(v, i))
                alert: Alert | None = self._alerts.raise_alert(
                    device_id=device_id,
                    cause=det.cause,
                    category=category,
                    severity=int(v.severity[i]),
                    summary=summary,
                    evidence=evidence,
                    t=t,
                )
                action: Literal["raised", "updated", "cleared"] = "updated" if was else "raised"
                self._counters[f"alerts_{action}"] += 1
                return AlertChange(
                    device_id, det.cause, action, category, int(v.severity[i]), summary, t,
                    evidence, alert,
                )  # fmt: skip
            alert = self._alerts.clear(device_id=device_id, cause=det.cause, t=t)
            self._counters["alerts_cleared"] += 1
            return AlertChange(
                device_id, det.cause, "cleared", None, 0, det.summary(v, i), t, {}, alert
            )
        except SealscopeError:
            self._counters["alert_errors"] += 1
            log.warning("alert store refused %s/%s; retrying next flush", device_id, det.cause)
            return None

    def explain(self, device_id: str) -> dict[str, dict[str, Any]]:
        """Each detector's current verdict for one device, JSON-ready (for the API)."""
        slot = self._slot_of.get(device_id)
        out: dict[str, dict[str, Any]] = {}
        if slot is None:
            return out
        for det in self._detectors:
            v = det.verdicts()
            if slot >= len(v):
                out[det.cause] = {"status": Status.NO_DATA.name.lower(), "category": None}
                continue
            # as _act does: a seal verdict resting on a faulty sensor is held back, so
            # the explanation agrees with the alerts; the held verdict is still shown
            held = bool(det.held(self._gate, slot + 1)[slot])
            evidence = tidy_evidence(det.evidence(v, slot))
            out[det.cause] = {
                "status": Status(int(v.status[slot])).name.lower(),
                "category": None if held else CATEGORY_NAMES[int(v.category[slot])],
                "severity": 0 if held else int(v.severity[slot]),
                "confidence": evidence["confidence"],
                "held_category": CATEGORY_NAMES[int(v.category[slot])] if held else None,
                "evidence": evidence,
            }
        return out

    # -- persistence ---------------------------------------------------------------------

    def save(self) -> None:
        """Write all learned state to ``state_path`` atomically (no-op without a path)."""
        if self._state_path is None:
            return
        path = self._state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                self._write_state(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self._counters["saves"] += 1

    def state_bytes(self) -> bytes:
        """All learned state as the bytes ``save`` would write (for a state kept elsewhere
        than a file: a detector worker's partition checkpoint)."""
        out = io.BytesIO()
        self._write_state(out)
        self._counters["saves"] += 1
        return out.getvalue()

    def load_state_bytes(self, data: bytes) -> None:
        """Replace all learned state with what ``state_bytes`` returned."""
        self._load(io.BytesIO(data), "detector state")

    def _write_state(self, f: BinaryIO) -> None:
        arrays: dict[str, np.ndarray] = {
            "service/version": np.array([_FORMAT_VERSION]),
            "service/device_ids": np.array(self._ids, dtype=np.str_),
        }
        n = len(self._ids)
        for name, col in self._table.state_dict().items():
            arrays[f"devices/{name}"] = col[:n]
        for det in self._detectors:
            for key, arr in det.state_dict().items():
                arrays[f"detector/{det.cause}/{key}"] = arr
            acted_cat, acted_sev = self._acted[det.cause]
            arrays[f"acted/{det.cause}/category"] = _padded(acted_cat, n)
            arrays[f"acted/{det.cause}/severity"] = _padded(acted_sev, n)
        # numpy's stub matches **arrays against its allow_pickle: bool keyword
        np.savez(f, **arrays)  # type: ignore[arg-type]

    def _load(self, source: Path | BinaryIO, name: object = None) -> None:
        path = name if name is not None else source
        try:
            with np.load(source, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ConfigError("state_path", f"cannot read detector state {path}: {exc}") from exc
        version = data.get("service/version")
        if version is None or int(version[0]) != _FORMAT_VERSION:
            raise ConfigError("state_path", f"{path} is not detector state v{_FORMAT_VERSION}")
        self._ids = [str(x) for x in data["service/device_ids"]]
        self._slot_of = {d: i for i, d in enumerate(self._ids)}
        self._table.load_state_dict(
            {k.removeprefix("devices/"): v for k, v in data.items() if k.startswith("devices/")}
        )
        for det in self._detectors:
            prefix = f"detector/{det.cause}/"
            state = {k.removeprefix(prefix): v for k, v in data.items() if k.startswith(prefix)}
            if not state:
                log.info("no saved state for detector %s; it starts learning", det.cause)
                continue
            try:
                det.load_state_dict(state)
            except ValueError as exc:
                # Refuse rather than silently relearn baselines from already-worn valves.
                raise ConfigError(
                    "state_path",
                    f"{path}: {exc}; if this state was saved by an older sealscope, move the "
                    "file away to let the detectors learn afresh (baselines restart)",
                ) from exc
            self._acted[det.cause] = (
                data[f"acted/{det.cause}/category"].astype(np.int8),
                data[f"acted/{det.cause}/severity"].astype(np.int8),
            )
        stale = {k.split("/")[1] for k in data if k.startswith("detector/")} - {
            d.cause for d in self._detectors
        }
        if stale:
            log.warning("ignoring saved state of detectors no longer configured: %s", stale)


def _padded(a: np.ndarray, n: int) -> np.ndarray:
    if len(a) == n:
        return a
    out = np.zeros(n, a.dtype)
    m = min(n, len(a))
    out[:m] = a[:m]
    return out
