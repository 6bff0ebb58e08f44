"""SenML records of one uplink -> the canonical v1 messages it stands for.

The naming contract (gateway/README.md has the tables and a worked example): a full name
is the local name or ``urn:dev:sn:{device_id}:{local}``; the local name is ``seq``, a
reading (a stem such as ``p_in`` with its SenML unit, or the wire field name itself),
``event``/``detail``, ``fw``/``cfg:{key}``/``last_wake``, or ``cmd:{id}`` (a device's
report on a downlink command). Every message built here is checked by the wire decoders,
so an absurd value refuses the uplink with ``BadSenml`` just as a malformed frame does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import msgspec

from gateway.senml import BadSenml, Record, Value
from gateway.uplink import CanonicalMessage
from sealscope import wire
from sealscope.errors import MessageRejected

__all__ = [
    "READING_UNITS",
    "CommandReport",
    "Uplink",
    "translate",
]

URN_PREFIX: Final = "urn:dev:sn:"
COMMAND_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_command_id = re.compile(COMMAND_ID_PATTERN)

# wire field -> (stem, {unit: (scale, offset)}); the first unit is the field's own
_Units = dict[str, tuple[float, float]]
_PRESSURE: _Units = {"kPa": (1, 0), "Pa": (1e-3, 0), "hPa": (0.1, 0), "bar": (100, 0)}
READING_UNITS: Final[Mapping[str, tuple[str, _Units]]] = {
    "p_in_kpa": ("p_in", _PRESSURE),
    "p_out_kpa": ("p_out", _PRESSURE),
    "leak_mm3s": ("leak", {"mm3/s": (1, 0), "m3/s": (1e9, 0), "l/s": (1e6, 0)}),
    "position_pct": ("position", {"%": (1, 0), "/": (100, 0)}),
    "stroke_s": ("stroke", {"s": (1, 0)}),
    "torque_nm": ("torque", {"N.m": (1, 0), "Nm": (1, 0)}),
    "motor_a": ("motor", {"A": (1, 0), "mA": (1e-3, 0)}),
    "temp_c": ("temp", {"Cel": (1, 0), "K": (1, -273.15)}),
    "vib_mms": ("vib", {"mm/s": (1, 0), "m/s": (1e3, 0)}),
    "flow_m3h": ("flow", {"m3/h": (1, 0), "m3/s": (3600, 0), "l/s": (3.6, 0)}),
    "speed_rpm": ("speed", {"rpm": (1, 0), "1/min": (1, 0), "Hz": (60, 0)}),
    "battery_v": ("battery", {"V": (1, 0), "mV": (1e-3, 0)}),
    "rsrp_dbm": ("rsrp", {"dBm": (1, 0)}),
    "sinr_db": ("sinr", {"dB": (1, 0)}),
}
assert set(READING_UNITS) == set(wire.SAMPLE_FIELDS), "every wire reading needs a SenML name"
_FIELD_BY_NAME: Final = {
    **{field: field for field in READING_UNITS},
    **{stem: field for field, (stem, _) in READING_UNITS.items()},
}
_STATE_RADIO: Final = ("rsrp_dbm", "sinr_db", "battery_v")
CommandOutcome = Literal["delivered", "succeeded", "failed"]
_OUTCOMES: Final = frozenset(("delivered", "succeeded", "failed"))


@dataclass(frozen=True, slots=True)
class CommandReport:
    """A device's report on a downlink command it received (``cmd:{id}`` record)."""

    command_id: str
    outcome: CommandOutcome
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Uplink:
    device_id: str
    seq: int
    messages: tuple[CanonicalMessage, ...]  # events, then telemetry, then state
    command_reports: tuple[CommandReport, ...] = ()


@dataclass
class _Event:
    t: float
    kind: str
    detail: str | None = None


def _ms(t: float) -> int:
    return round(t * 1000)


class _Builder:
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.prefix = f"{URN_PREFIX}{device_id}:"
        self.seq: int | None = None
        self.samples: dict[int, dict[str, float]] = {}
        self.events: list[_Event] = []
        self.details: dict[int, str] = {}
        self.fw: tuple[float, str] | None = None
        self.config: dict[str, Value] = {}
        self.last_wake_t: float | None = None
        self.reports: list[CommandReport] = []

    def fail(self, where: str, reason: str) -> BadSenml:
        return BadSenml(f"{where}: {reason}", device_id=self.device_id, field=where)

    def local_name(self, record: Record, where: str) -> str:
        name = record.name
        if name.startswith(URN_PREFIX):
            if not name.startswith(self.prefix):
                raise self.fail(where, f"name {name!r} belongs to another device")
            return name[len(self.prefix) :]
        return name

    def add(self, record: Record, where: str) -> None:
        local = self.local_name(record, where)
        field = _FIELD_BY_NAME.get(local)
        if field is not None:
            self.add_reading(field, record, where)
        elif local == "seq":
            self.add_seq(record, where)
        elif local == "event":
            kind = self.text(record, where)
            if kind not in wire.EVENT_KINDS:
                raise self.fail(
                    where, f"event {kind!r} is not one of {', '.join(wire.EVENT_KINDS)}"
                )
            self.events.append(_Event(record.time_s, kind))
        elif local == "detail":
            self.details[_ms(record.time_s)] = self.text(record, where)
        elif local == "fw":
            if self.fw is not None:
                raise self.fail(where, "fw appears twice")
            self.fw = (record.time_s, self.text(record, where))
        elif local.startswith("cfg:") and len(local) > 4:
            self.config[local[4:]] = record.value
        elif local == "last_wake":
            self.last_wake_t = float(self.number(record, where))
        elif local.startswith("cmd:"):
            self.add_report(local[4:], record, where)
        else:
            raise self.fail(where, f"unknown record name {local!r}")

    def number(self, record: Record, where: str) -> int | float:
        if isinstance(record.value, bool) or not isinstance(record.value, int | float):
            raise self.fail(where, f"{record.name!r} needs a numeric value (v)")
        return record.value

    def text(self, record: Record, where: str) -> str:
        if not isinstance(record.value, str):
            raise self.fail(where, f"{record.name!r} needs a string value (vs)")
        return record.value

    def add_reading(self, field: str, record: Record, where: str) -> None:
        units = READING_UNITS[field][1]
        unit = record.unit if record.unit is not None else next(iter(units))
        conversion = units.get(unit)
        if conversion is None:
            raise self.fail(where, f"unit {unit!r} is not one of {', '.join(units)} for {field}")
        scale, offset = conversion
        value = self.number(record, where) * scale + offset
        sample = self.samples.setdefault(_ms(record.time_s), {})
        if field in sample:
            raise self.fail(where, f"{field} appears twice at t={record.time_s}")
        sample[field] = value

    def add_seq(self, record: Record, where: str) -> None:
        if self.seq is not None:
            raise self.fail(where, "seq appears twice")
        seq = self.number(record, where)
        if seq != int(seq) or not 0 <= seq <= 2**32 - 1:
            raise self.fail(where, f"seq {seq!r} is not an integer in 0..2**32-1")
        self.seq = int(seq)

    def add_report(self, command_id: str, record: Record, where: str) -> None:
        if not _command_id.fullmatch(command_id):
            raise self.fail(where, f"command id {command_id!r} must match {COMMAND_ID_PATTERN}")
        outcome, _, detail = self.text(record, where).partition(":")
        if outcome not in _OUTCOMES:
            raise self.fail(where, f"command outcome {outcome!r} is not one of {sorted(_OUTCOMES)}")
        checked = cast(CommandOutcome, outcome)  # one of _OUTCOMES, checked above
        self.reports.append(CommandReport(command_id, checked, detail[:512] or None))

    # -- messages ---------------------------------------------------------------------
    def sample_at(self, t_ms: int) -> dict[str, Any] | None:
        fields = self.samples.get(t_ms)
        return None if fields is None else {"t": t_ms / 1000, **fields}

    def build(self) -> Uplink:
        if self.seq is None:
            raise BadSenml("the uplink has no seq record", device_id=self.device_id, field="seq")
        messages: list[CanonicalMessage] = []
        for event in self.events:
            t_ms = _ms(event.t)
            body: dict[str, Any] = {"v": 1, "seq": self.seq, "t": t_ms / 1000, "kind": event.kind}
            if t_ms in self.details:
                body["detail"] = self.details[t_ms]
            reading = self.sample_at(t_ms)
            if reading is not None:
                body["reading"] = reading
            messages.append(self.canonical("event", body, wire.decode_event))
        if self.details.keys() - {_ms(e.t) for e in self.events}:
            raise BadSenml(
                "a detail record has no event at its time", device_id=self.device_id, field="detail"
            )
        if self.samples:
            samples = [self.sample_at(t_ms) for t_ms in sorted(self.samples)]
            body = {"v": 1, "seq": self.seq, "samples": samples}
            messages.append(self.canonical("telemetry", body, wire.decode_telemetry))
        if self.fw is not None:
            t_ms = _ms(self.fw[0])
            body = {"v": 1, "t": t_ms / 1000, "fw": self.fw[1], "seq": self.seq}
            if self.config:
                body["config"] = self.config
            for field in _STATE_RADIO:
                newest = [t for t, s in self.samples.items() if field in s]
                if newest:
                    body[field] = self.samples[max(newest)][field]
            if self.last_wake_t is not None:
                body["last_wake_t"] = self.last_wake_t
            messages.append(self.canonical("state", body, wire.decode_state, retain=True))
        elif self.config or self.last_wake_t is not None:
            raise BadSenml(
                "cfg: and last_wake records need an fw record in the same uplink",
                device_id=self.device_id,
                field="fw",
            )
        return Uplink(self.device_id, self.seq, tuple(messages), tuple(self.reports))

    def canonical(
        self,
        kind: Literal["telemetry", "event", "state"],
        body: dict[str, Any],
        decoder: Any,
        *,
        retain: bool = False,
    ) -> CanonicalMessage:
        try:
            # through the one wire decoder, so ranges and types are the contract's own
            msg = decoder(msgspec.json.encode(body), device_id=self.device_id)
        except MessageRejected as exc:
            raise BadSenml(
                f"{kind}: {exc.reason}", device_id=self.device_id, field=exc.field
            ) from exc
        except (msgspec.EncodeError, OverflowError) as exc:
            raise BadSenml(f"{kind}: {exc}", device_id=self.device_id) from exc
        return CanonicalMessage(self.device_id, kind, wire.encode(msg), retain=retain)


def translate(records: Sequence[Record], *, device_id: str) -> Uplink:
    """The canonical messages and command reports of one device's uplink, or ``BadSenml``."""
    builder = _Builder(device_id)
    for i, record in enumerate(records):
        builder.add(record, f"records[{i}]")
    return builder.build()
