"""The wake-up: the modem's readings, the radio's outcome per message, held samples.

Every living device sends one telemetry message a round, carrying the samples it still
holds from unacknowledged uplinks (beyond its buffer the oldest go), and its alarms go
out as their own messages. The radio (``radio``) decides per message how many copies
reached the network and whether the device saw an acknowledgement; each transmission
costs charge by coverage level. ``RadioCounts`` keeps the running totals.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from firmware_sim import radio
from firmware_sim.rounds import MessageKind, RoundOutput
from firmware_sim.state import FleetState

__all__ = ["transmit", "transmit_batch", "wake_modem"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def wake_modem(state: FleetState, cols: dict[str, F64]) -> None:
    """Radio fields and battery voltage on each device's last sample, measured when the
    modem wakes; the round's sampling and sleep charge is spent."""
    spec, n, s = state.spec, state.spec.devices, state.spec.samples_per_uplink
    state.battery_used_mah += s * radio.SAMPLE_MAH + radio.SLEEP_MA * spec.uplink_span_s / 3600
    if spec.engine == "compiled":
        from firmware_sim import kernel  # numba loads only for fleets that use it

        kernel.wake_modem(state, cols)
        return
    rng = state.radio_rng
    rsrp = state.rsrp_base_dbm + rng.normal(0.0, radio.RSRP_READ_SD_DB, n)
    rsrp = np.clip(rsrp, *radio.RSRP_RANGE_DBM)
    sinr = radio.sinr_db(rsrp) + rng.normal(0.0, radio.SINR_READ_SD_DB, n)
    sinr = np.clip(sinr, *radio.SINR_RANGE_DB)
    cols["rsrp_dbm"][:, s - 1] = np.round(rsrp, 1)
    cols["sinr_db"][:, s - 1] = np.round(sinr, 1)
    cols["battery_v"][:, s - 1] = np.round(state.battery_v(), 3)


def transmit(
    state: FleetState,
    payloads: list[bytes],
    wake_t: F64,
    alive: npt.NDArray[np.bool_],
    events: list[tuple[int, int, str, str]],
    ev_payloads: list[bytes],
    times: F64,
    tele_seq: I64,
) -> RoundOutput:
    """Send the round: telemetry of every living device (``payloads`` in device order,
    encoded with ``tele_seq``) and the alarms, in order of their true time ``wake_t``."""
    s = state.spec.samples_per_uplink
    counts = state.counts
    # telemetry: one message per living device, carrying what it still holds
    tele_dev = np.flatnonzero(alive)
    tele_samples = np.full(tele_dev.size, s, dtype=np.int64)
    for pos, i in enumerate(tele_dev.tolist()):
        held = state.pending.get(i)
        if held:
            payloads[i], tele_samples[pos] = _splice(state, i, payloads[i], held)
    ev_dev = np.array([e[0] for e in events], dtype=np.int64)
    ev_t = np.array([times[i, j] for i, j, _, _ in events]) if events else np.zeros(0)
    device = np.concatenate([tele_dev, ev_dev])
    copies, attempts, is_acked = _send(state, device, events, tele_dev.size)

    # unacknowledged telemetry: the device keeps those samples for the next uplink
    for pos, i in enumerate(tele_dev.tolist()):
        if is_acked[pos]:
            state.pending.pop(i, None)
        else:
            _hold(state, i, payloads[i], int(tele_samples[pos]))
    counts.samples_resent += int(tele_samples.sum()) - tele_dev.size * s

    seq_tele = tele_seq[tele_dev]
    ev_seq = np.array(
        [json.loads(p)["seq"] for p in ev_payloads], dtype=np.int64
    )  # few: alarms are rare
    all_t = np.concatenate([wake_t[tele_dev], ev_t])
    order = np.argsort(all_t, kind="stable")
    kinds: list[MessageKind] = ["telemetry"] * tele_dev.size
    kinds += ["event"] * ev_dev.size
    all_payloads = [payloads[i] for i in tele_dev.tolist()] + ev_payloads
    order_l = order.tolist()
    return RoundOutput(
        index=state.uplinks_done,
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


def transmit_batch(
    state: FleetState,
    alive: npt.NDArray[np.bool_],
    events: list[tuple[int, int, str, str]],
) -> tuple[I64, I64, I64, npt.NDArray[np.bool_], I64]:
    """``transmit`` for a round kept as columns: the same radio draws, charge and counts,
    with held samples counted per device instead of carried as bytes.

    Returns, for the telemetry of every living device (device order): its slots, the
    copies that arrived, transmissions, acknowledgement, and the older samples carried."""
    s, room = (
        state.spec.samples_per_uplink,
        state.spec.buffer_samples - state.spec.samples_per_uplink,
    )
    tele_dev = np.flatnonzero(alive)
    ev_dev = np.array([e[0] for e in events], dtype=np.int64)
    copies, attempts, is_acked = _send(
        state, np.concatenate([tele_dev, ev_dev]), events, tele_dev.size
    )
    held = state.held_samples[tele_dev]
    state.counts.samples_dropped += int(np.maximum(held - room, 0).sum())
    held = np.minimum(held, room)
    t_acked = is_acked[: tele_dev.size]
    state.held_samples[tele_dev] = np.where(t_acked, 0, held + s)
    state.counts.samples_resent += int(held.sum())
    n = tele_dev.size
    return tele_dev, copies[:n], attempts[:n], t_acked, held


def _send(
    state: FleetState,
    device: I64,
    events: list[tuple[int, int, str, str]],
    n_telemetry: int,
) -> tuple[I64, I64, npt.NDArray[np.bool_]]:
    """The radio's outcome for one message per entry of ``device`` (telemetry first, then
    ``events``); spends the charge and keeps the counts."""
    spec, counts = state.spec, state.counts
    if spec.engine == "compiled" and spec.radio != "ideal":
        from firmware_sim import kernel

        copies, attempts, is_acked = kernel.transmit(
            state.radio_rng, state.rsrp_base_dbm[device], spec.max_attempts
        )
    else:
        copies, attempts, is_acked = radio.transmit(
            state.radio_rng,
            state.rsrp_base_dbm[device],
            spec.max_attempts,
            is_ideal=spec.radio == "ideal",
        )
    charge = radio.wake_charge_mah(attempts, state.rsrp_base_dbm[device])
    # telemetry is one message per device: a plain add; ``add.at`` (slow) only for the
    # alarms, which may repeat a device. Same order of additions, so the same sums.
    tele = device[:n_telemetry]
    state.battery_used_mah[tele] += charge[:n_telemetry]
    np.add.at(state.battery_used_mah, device[n_telemetry:], charge[n_telemetry:])
    counts.charge_used_mah += float(charge.sum())
    counts.messages += device.size
    counts.telemetry_messages += n_telemetry
    counts.event_messages += device.size - n_telemetry
    counts.transmissions += int(attempts.sum())
    counts.copies_delivered += int(copies.sum())
    counts.duplicate_copies += int(np.maximum(copies - 1, 0).sum())
    counts.messages_lost += int((copies == 0).sum())
    counts.messages_unacked += int((~is_acked).sum())
    for _, _, kind, _ in events:
        counts.events[kind] = counts.events.get(kind, 0) + 1
    return copies, attempts, is_acked


def _inner(payload: bytes) -> bytes:
    return payload[payload.index(b"[") + 1 : -2]


def _splice(
    state: FleetState, i: int, payload: bytes, held: list[tuple[bytes, int]]
) -> tuple[bytes, int]:
    """Prepend the samples a device still holds; beyond its buffer the oldest go."""
    s = state.spec.samples_per_uplink
    block, count = held[0]
    room = state.spec.buffer_samples - s
    if count > room:
        drop = count - room
        parts = block.split(b"},{")[drop:]
        block = b"},{".join(parts) if room else b""
        if block and not block.startswith(b"{"):
            block = b"{" + block
        count = room
        state.counts.samples_dropped += drop
    head = payload[: payload.index(b"[") + 1]
    inner = _inner(payload)
    joined = block + b"," + inner if block else inner
    return head + joined + b"]}", count + s


def _hold(state: FleetState, i: int, payload: bytes, samples: int) -> None:
    # the whole unacknowledged batch, old and new samples, waits for the next wake-up
    state.pending[i] = [(_inner(payload), samples)]
