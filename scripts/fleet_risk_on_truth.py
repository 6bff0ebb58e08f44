"""Fleet risk on the simulator's true degradation, without the detectors (minutes, not hours).

Each week of a year of a field fleet, every device's level is its true log degradation
(leak coefficient or friction against its start) plus noise, and a device has a seal
event once it reaches 1.9x (about where the seat-leak CUSUM raises); ``FleetRisk`` runs
on that as in ``sealscope eval``. It prints when each group was first flagged, marking
the truly bad batches. What it shows is the statistics' power at a fleet size, with
detection taken as given.

    PYTHONPATH=. python scripts/fleet_risk_on_truth.py --devices 1000 --seeds 0,1,2
"""

from __future__ import annotations

import argparse

import numpy as np

from analytics.fleet_risk import FleetRisk
from firmware_sim import Fleet, FleetSpec
from sealscope.memory_alerts import MemoryAlertStore

DAY = 86_400.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--noise", type=float, default=0.03, help="level noise, log units")
    args = ap.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        fleet = Fleet(FleetSpec.field(devices=args.devices, seed=seed))
        wear, n = fleet.wear, len(fleet.devices)
        idx = np.arange(n)
        ids = [d.device_id for d in fleet.devices]
        start = fleet.spec.start_t
        is_bad = wear.bad_batch[fleet.batch_code]
        bad = sorted({fleet.devices[i].batch for i in np.flatnonzero(is_bad)})
        risk = FleetRisk()
        risk.add_devices(fleet.devices)
        store, rng, flags = MemoryAlertStore(), np.random.default_rng(seed + 100), {}
        for week in range(1, args.weeks + 1):
            now = start + week * 7 * DAY
            risk.observe_many(ids, np.full(n, start), np.full(n, now))
            t = np.full(n, now)
            true = np.maximum(
                np.log(wear.leak_coeff_at(t, idx, np.ones(n))),
                np.log(wear.friction_multiplier(t, idx)),
            )
            risk.observe_levels(ids, true + rng.normal(0.0, args.noise, n), np.zeros(n, np.int8))
            for i in np.flatnonzero(true >= np.log(1.9)).tolist():
                risk.record_event(ids[i], now)
            for c in risk.apply(store, t=now):
                if c.action == "raised" and c.row is not None:
                    flags.setdefault(c.key, (week, c.row.evidence_text))
        end = start + args.weeks * 7 * DAY
        for b in bad:
            mine = np.array([d.batch == b for d in fleet.devices])
            onsets = wear.onset_t[mine][wear.onset_t[mine] <= end]
            first = f", first onset day {(onsets.min() - start) / DAY:.0f}" if onsets.size else ""
            print(f"seed {seed}: bad batch {b}: {mine.sum()} devices, {onsets.size} onsets{first}")
        for key, (week, text) in sorted(flags.items(), key=lambda kv: kv[1][0]):
            tag = "bad" if key.removeprefix("batch:") in bad else "FALSE"
            if not key.startswith("batch:"):
                tag = "other"
            print(f"  week {week:2d} {tag:5s} {text}")


if __name__ == "__main__":
    main()
