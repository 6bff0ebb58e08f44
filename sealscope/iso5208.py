"""ISO 5208 seat leakage: allowable rates for the liquid seat test, per leakage class and DN.

Rates are mm³/s per millimetre of nominal size (DN). The liquid seat test runs at
1.1 * PN (bar), so a field leak is compared against the table after it is scaled to that
pressure difference.

Rate A is "no visible leakage for the duration of the test", which has no number. We use
0.001 * DN, a sixth of rate AA, so the table stays monotone and a leak sensor sitting at its
detection limit does not read as out of specification.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "LEAKAGE_CLASSES",
    "MM3S_PER_DN",
    "allowable_mm3s",
    "class_code",
    "seat_test_dp_kpa",
]

# Index 0 is "no class declared"; the codes are what detector state stores.
LEAKAGE_CLASSES: Final[tuple[str, ...]] = (
    "",
    "A",
    "AA",
    "B",
    "C",
    "CC",
    "D",
    "E",
    "EE",
    "F",
    "G",
)
MM3S_PER_DN: Final[dict[str, float]] = {
    "A": 0.001,
    "AA": 0.006,
    "B": 0.01,
    "C": 0.03,
    "CC": 0.08,
    "D": 0.1,
    "E": 0.3,
    "EE": 0.39,
    "F": 1.0,
    "G": 2.0,
}
_RATE_BY_CODE = np.array([np.nan] + [MM3S_PER_DN[c] for c in LEAKAGE_CLASSES[1:]])
_KPA_PER_BAR: Final = 100.0
_TEST_FACTOR: Final = 1.1


def class_code(leakage_class: str) -> int:
    """The integer code of an ISO 5208 class name; 0 for "" (none). Raises ValueError."""
    try:
        return LEAKAGE_CLASSES.index(leakage_class.strip().upper())
    except ValueError:
        raise ValueError(f"unknown ISO 5208 leakage class {leakage_class!r}") from None


def allowable_mm3s(code: npt.ArrayLike, dn_mm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Allowable seat leakage at test pressure; NaN where the class or DN is unknown (<= 0)."""
    code_a = np.asarray(code, dtype=np.int64)
    dn = np.asarray(dn_mm, dtype=np.float64)
    valid = (code_a > 0) & (code_a < len(_RATE_BY_CODE)) & (dn > 0)
    rate = _RATE_BY_CODE[np.where(valid, code_a, 0)]
    return np.where(valid, rate * dn, np.nan)


def seat_test_dp_kpa(pn_bar: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Liquid seat test pressure, 1.1 * PN, in kPa; NaN where PN is unknown (<= 0)."""
    pn = np.asarray(pn_bar, dtype=np.float64)
    return np.where(pn > 0, _TEST_FACTOR * pn * _KPA_PER_BAR, np.nan)
