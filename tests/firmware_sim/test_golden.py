"""The fleet's output, byte for byte, against a digest recorded before ``Fleet`` was split.

Restructuring the simulator must not change what a seed produces: devices, states,
payloads and radio outcomes round after round, downlinks, ground truth, credentials.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np

from firmware_sim import Fleet, FleetSpec
from sealscope.wire import encode
from tests.firmware_sim.helpers import hostile_field

# Computed from the pre-split code on commit ea8b387 (fleet.py in one module), re-recorded
# on branch fleet-risk (which batches are bad: a fixed count from the same draws), then
# once more when raw floats went into the digest at 9 significant digits (the byte digest
# differed on a CPU without AVX-512; same code, same seeds).
GOLDEN_SHA256 = "9719a672efe76ea534d53f47987a897db78e6f62edaf866fade7881366041391"


# Raw floats are hashed at 9 significant digits: numpy's exp, log, sin and power take
# SIMD paths by CPU (AVX-512 or not) that differ in the last bit, and a digest of the
# last bit failed on a machine without AVX-512. Readings in payloads are already at
# sensor resolution; a last-bit difference moves one of them only at an exact tie.
_FLOAT = re.compile(r"-?\d+\.\d+(?:e[+-]?\d+)?")


def _stable(text: str) -> str:
    return _FLOAT.sub(lambda m: f"{float(m.group()):.9g}", text)


def _digest(fleet: Fleet, rounds: int) -> str:
    h = hashlib.sha256()

    def add(x: object) -> None:
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            h.update(repr(x.shape).encode() + _stable(repr(x.tolist())).encode())
        elif isinstance(x, np.ndarray):
            h.update(str(x.dtype).encode() + repr(x.shape).encode() + x.tobytes())
        elif isinstance(x, bytes):
            h.update(len(x).to_bytes(8, "little") + x)
        else:
            h.update(_stable(json.dumps(x, sort_keys=True, default=repr)).encode())

    add([repr(d) for d in fleet.devices])
    add([encode(s) for _, s in fleet.states()])
    add(sorted(fleet.credentials().items()))
    valves = [i for i, kind in enumerate(fleet.devices) if kind.kind == "valve"]
    for r in range(rounds):
        out = fleet.step()
        add(out.index)
        for arr in (out.device, out.seq, out.copies, out.attempts, out.is_acked, out.wake_t):
            add(arr)
        add(out.samples)
        add(out.kind)
        for payload in out.payload:
            add(payload)
        if r % 3 == 1:  # commands after some uplinks: a stroke test and a clock fix
            for i in valves[r % 5 :: 7]:
                add(fleet.deliver_downlink(fleet.device_ids[i], b'{"cmd":"stroke_test"}'))
            for i in range(r % 4, fleet.spec.devices, 9):
                add(fleet.deliver_downlink(fleet.device_ids[i], b'{"cmd":"time_sync"}'))
    add(fleet.counts.as_dict())
    add(fleet.leak_coeff(fleet.now_t))
    add(fleet.leak_coeff(np.array([[fleet.spec.start_t, fleet.now_t + 86_400.0]])))
    add([repr(t) for t in fleet.fleet_truth().devices])
    add([u.telemetry.seq for u in fleet.next_uplinks()])
    return h.hexdigest()


def test_fleet_seeded_run_bytes_match_the_pre_split_digest() -> None:
    h = hashlib.sha256()
    # a field fleet that wears out, faults, retries, loses uplinks, overflows its buffer
    # and runs batteries flat within a few dozen rounds
    field = hostile_field(60)
    h.update(_digest(Fleet(field), 40).encode())
    # no buffer beyond one uplink: an unacknowledged batch is dropped whole
    h.update(_digest(Fleet(field.replace(buffer_samples=12, max_attempts=1)), 20).encode())
    h.update(_digest(Fleet(FleetSpec(devices=40, seed=5, friction_share=0.4)), 40).encode())
    assert h.hexdigest() == GOLDEN_SHA256
