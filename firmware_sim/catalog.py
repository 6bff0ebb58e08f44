"""What the simulated makers build: valve and pump models, seats, sizes, and the standards.

Sources of the constants (rounded; the simulator needs plausible magnitudes, not a datasheet):

* ISO 5208:2015 seat leakage: ``sealscope.iso5208`` (the liquid seat test runs at 1.1 x PN).
* Actuation torque: breakaway torque = seat/packing torque (grows with DN², the seal
  interference) + ΔP load torque (ΔP x seat area x effective friction radius, grows with
  DN³). Quarter-turn (ball, butterfly) on a 90° electric actuator; gate and globe on a
  multi-turn actuator whose stroke time grows with the stem travel (~ DN).
* Mechanical seals: a sound seal "weeps" a little vapour; API 682 qualification testing
  accepts on the order of 5.6 g/h (≈ 1.6 mm³/s of water) of liquid leakage, used here as
  the pump's seal leakage limit.
* NB-IoT coverage enhancement levels by RSRP (CE0 >= -105 dBm, CE1 >= -115 dBm, else CE2),
  23 dBm UE transmit at ~220 mA, more repetitions (longer transmit) in deeper coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from sealscope import iso5208

__all__ = [
    "ISO5208_LIQUID_MM3S_PER_DN",
    "MAKERS",
    "PUMP_SEAL_LIMIT_MM3S",
    "VALVE_TYPES",
    "Maker",
    "ValveModel",
    "ValveType",
    "allowable_leak_mm3s",
]

# the ISO 5208 table lives in the core, so the simulator and the detectors share one copy
ISO5208_LIQUID_MM3S_PER_DN: Final[dict[str, float]] = iso5208.MM3S_PER_DN
PUMP_SEAL_LIMIT_MM3S: Final = 1.6


def allowable_leak_mm3s(leakage_class: str, dn: int) -> float:
    """ISO 5208 allowable seat leakage (liquid) for a class and DN; ``inf`` if unknown."""
    per_dn = ISO5208_LIQUID_MM3S_PER_DN.get(leakage_class)
    return math.inf if per_dn is None else per_dn * dn


@dataclass(frozen=True, slots=True)
class ValveType:
    """Actuation physics of one valve construction."""

    name: str
    seat_torque_nm_per_dn2: float  # seal interference torque / DN² (DN in mm)
    dp_radius: float  # effective friction radius of the ΔP load, x DN
    friction: float  # friction coefficient of that load
    is_quarter_turn: bool
    stroke_s_per_dn: float  # multi-turn: stem travel time per mm of DN
    stroke_s_base: float  # quarter-turn: actuator 90° time at no load
    is_on_off: bool  # runs fully open (ball, gate) rather than throttling


VALVE_TYPES: Final[dict[str, ValveType]] = {
    # ball: trunnion/floating ball on PTFE or metal seats, high seat torque
    "ball": ValveType("ball", 0.004, 0.3, 0.12, True, 0.0, 15.0, True),
    # butterfly: the elastomer liner dominates; the ΔP load acts on the stem bearings
    "butterfly": ValveType("butterfly", 0.0025, 0.08, 0.15, True, 0.0, 20.0, False),
    # gate: wedge thrust = friction x ΔP x area, converted by the stem thread
    "gate": ValveType("gate", 0.0015, 0.05, 0.3, False, 0.35, 0.0, True),
    # globe: unbalanced plug, full ΔP x seat area on the stem
    "globe": ValveType("globe", 0.002, 0.08, 0.5, False, 0.2, 0.0, False),
}


@dataclass(frozen=True, slots=True)
class ValveModel:
    name: str
    valve_type: str
    dn_range: tuple[int, int]
    seats: tuple[tuple[str, str], ...]  # (seat material, ISO 5208 leakage class)


@dataclass(frozen=True, slots=True)
class Maker:
    code: str
    valves: tuple[ValveModel, ...]
    pumps: tuple[str, ...]
    firmware: str


_SOFT_BALL = (("PTFE", "B"), ("RPTFE", "C"), ("PEEK", "C"))
MAKERS: Final[tuple[Maker, ...]] = (
    Maker(
        "ACME",
        (
            ValveModel("BV-200", "ball", (15, 200), (*_SOFT_BALL, ("metal", "D"))),
            ValveModel("BF-150", "butterfly", (50, 500), (("EPDM", "B"), ("NBR", "C"))),
        ),
        ("CP-80", "CP-125"),
        "2.3.1",
    ),
    Maker(
        "YJV",
        (
            ValveModel("Q41F-16", "ball", (15, 150), _SOFT_BALL),
            ValveModel("Z41H-25", "gate", (50, 400), (("metal", "D"), ("metal", "E"))),
            ValveModel("J41H-40", "globe", (15, 200), (("metal", "D"), ("PTFE", "C"))),
        ),
        ("ISG-65",),
        "1.8.0",
    ),
    Maker(
        "OUHAI",
        (
            ValveModel("D371X", "butterfly", (50, 500), (("EPDM", "B"), ("PTFE", "CC"))),
            ValveModel("Z45X", "gate", (50, 300), (("EPDM", "B"),)),
        ),
        ("OH-SP100",),
        "3.0.4",
    ),
    Maker(
        "WZPV",
        (ValveModel("WZ-Q11", "ball", (15, 100), (*_SOFT_BALL, ("metal", "E"))),),
        ("WZ-CP50", "WZ-CP150"),
        "0.9.7",
    ),
)
MAKER_WEIGHTS: Final = np.array([0.35, 0.3, 0.2, 0.15])
REGIONS: Final = ("zj-wenzhou", "zj-taizhou", "zj-hangzhou", "js-suzhou", "gd-foshan", "sd-zibo")
DN_SIZES: Final = np.array([15, 20, 25, 32, 40, 50, 65, 80, 100, 125, 150, 200, 250, 300, 400, 500])
PN_CLASSES: Final = np.array([10, 16, 25, 40])
BATCHES_PER_MAKER: Final = 4
DEVICES_PER_SITE: Final = 40
# Induction motors on 50 Hz mains: 4-pole or 2-pole synchronous speed less slip.
PUMP_SPEEDS_RPM: Final = np.array([1450.0, 2900.0])
SOFT_SEATS: Final = frozenset({"PTFE", "RPTFE", "PEEK", "EPDM", "NBR"})
