"""A simulated fleet of NB-IoT smart valves and pumps: devices, physics, wear, radio.

State is struct-of-arrays in numpy, one slot per device (``state``). ``Fleet.step()``
advances one uplink interval of event time: every device takes ``samples_per_uplink``
samples (``sampling``: physics in ``physics``, wear in ``wear``, sensor faults in
``faults``), checks its local alarm thresholds (``alarms``), and wakes once to send its
buffer; the radio decides what reached the network (``transmission``). The payloads are
JSON bytes made straight from the columns (``encoding``), never a Python object per
sample, so a round of 100,000 devices costs about a second. ``ground_truth`` says what
the simulator did, for scoring detectors.

Everything is drawn from one seed, in separate streams for the devices, the physics, the
sensor faults and the radio: the same ``FleetSpec`` gives the same devices, the same
payload bytes and the same radio outcomes, round after round.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from firmware_sim import alarms, ground_truth, radio, sampling, transmission
from firmware_sim.batch import SampleBatch
from firmware_sim.catalog import allowable_leak_mm3s
from firmware_sim.rounds import RadioCounts, RoundOutput, Uplink
from firmware_sim.spec import FleetSpec
from firmware_sim.state import FleetState
from firmware_sim.truth import DeviceTruth, FleetTruth
from sealscope.wire import SCHEMA_VERSION, State, decode_telemetry

__all__ = [
    "DeviceTruth",
    "Fleet",
    "FleetSpec",
    "RadioCounts",
    "RoundOutput",
    "SampleBatch",
    "Uplink",
    "allowable_leak_mm3s",
]


F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Fleet(FleetState):
    """Deterministic devices plus their physical state; ``step()`` advances event time."""

    _form: str | None = None  # "json" (step) or "batch" (step_batch), fixed by the first

    # -- identity and ground truth ------------------------------------------------------

    def credentials(self, device_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Per-device MQTT / CoAP secrets, derived from the seed (provision them as users)."""
        ids = self.device_ids if device_ids is None else device_ids
        return {d: hmac.new(self._secret, d.encode(), hashlib.sha256).hexdigest()[:24] for d in ids}

    def truth(self) -> list[DeviceTruth]:
        """Per-device ground truth as of now (sensor faults: those started by ``now_t``)."""
        return list(self.fleet_truth().devices)

    def fleet_truth(self) -> FleetTruth:
        return ground_truth.fleet_truth(self)

    def write_truth(self, path: str) -> str:
        """Write the ground truth to ``path`` (.json or .csv); returns the path."""
        return str(self.fleet_truth().write(path))

    # -- state messages -----------------------------------------------------------------

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
        battery = np.round(self.battery_v(), 3).tolist()
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
        self._expect_form("json")
        times, cols, alive, events, ev_payloads, tele_seq = self._sample_round()
        payloads = sampling.encode_round(self, times, cols, tele_seq)
        wake_t = times[:, -1] + 1.0
        out = transmission.transmit(
            self, payloads, wake_t, alive, events, ev_payloads, times, tele_seq
        )
        self._uplinks_done += 1
        return out

    def step_batch(self) -> SampleBatch:
        """``step()`` without the JSON: the round's telemetry as columns (``batch``).

        The same seed gives the same readings, sample times, ``seq`` and radio outcomes
        as ``step()``; a fleet runs one way or the other, not both."""
        self._expect_form("batch")
        times, cols, alive, events, ev_payloads, tele_seq = self._sample_round()
        dev, copies, attempts, is_acked, held = transmission.transmit_batch(self, alive, events)
        every = dev.size == self.spec.devices
        clock = self.round_clock(times)
        if every:
            readings = cols
        elif self.spec.engine == "compiled":
            from firmware_sim import kernel  # numba loads only for fleets that use it

            readings = kernel.rows_of(self, cols, dev)
        else:
            readings = {k: v[dev] for k, v in cols.items()}
        out = SampleBatch(
            index=self._uplinks_done,
            device=dev,
            seq=tele_seq if every else tele_seq[dev],
            t=clock if every else clock[dev],
            readings=readings,
            copies=copies,
            attempts=attempts,
            is_acked=is_acked,
            wake_t=times[dev, -1] + 1.0,
            held_samples=held,
            events=ev_payloads,
        )
        self._uplinks_done += 1
        return out

    def _expect_form(self, form: str) -> None:
        if self._form is None:
            self._form = form
        elif self._form != form:
            raise RuntimeError(f"this fleet runs as {self._form}; it cannot mix in {form}")

    def _sample_round(
        self,
    ) -> tuple[
        F64,
        dict[str, F64],
        npt.NDArray[np.bool_],
        list[tuple[int, int, str, str]],
        list[bytes],
        I64,
    ]:
        """Sample, check alarms and wake: (times, readings, alive, alarms, their payloads,
        the ``seq`` the telemetry goes out with). ``seq`` has moved past this round."""
        spec, s = self.spec, self.spec.samples_per_uplink
        if self._uplinks_done == 0:
            self.battery_used0_mah = self.battery_used_mah.copy()
        times, cols, dropped, actuation = sampling.take_samples(self)
        alive = self.battery_used_mah < spec.battery_mah
        events = (
            alarms.local_events(self, times, cols, dropped, actuation) if spec.local_alarms else []
        )
        transmission.wake_modem(self, cols)
        self.counts.samples_generated += int(alive.sum()) * s

        # alarms went out when they tripped, before this wake-up: they take seqs first
        ev_payloads = alarms.event_payloads(self, events, times, cols) if events else []
        tele_seq = self.seq.copy()
        self.seq = (self.seq + 1) % 2**32
        return times, cols, alive, events, ev_payloads, tele_seq
