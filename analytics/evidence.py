"""Evidence values as a technician reads them: finite, rounded to meaningful digits.

Detector state is float64 arithmetic; an alert's evidence is not. ``4.999999999999999``
is 5, a growth of ``3.6e+209`` per month is "more than a thousandfold", and infinities or
NaN are "not known" (``None``). One rule for every detector's evidence dict, applied where
the dict is built, so the API, the alert store and the offline report agree.
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["GROWTH_CAP", "fmt_rul", "round_sig", "tidy_evidence"]

SIG_DIGITS: Final = 4
GROWTH_CAP: Final = 1000.0  # growth factors beyond this say "fast", not how fast
# keys that are identifiers or times to the second, not measurements
_EXACT: Final = frozenset({"since", "limit_eta_s", "samples", "leakage_class", "dn_mm",
                           "top_feature", "channel", "features"})  # fmt: skip


def round_sig(x: float, digits: int = SIG_DIGITS) -> float | None:
    """``x`` to ``digits`` significant digits; None when it is not finite."""
    if not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def tidy_evidence(e: dict[str, Any], digits: int = SIG_DIGITS) -> dict[str, Any]:
    """Round every float (but times and identifiers) in place; non-finite -> None."""
    for k, v in e.items():
        if isinstance(v, bool) or not isinstance(v, float):
            continue
        if k in _EXACT or (k.endswith("_t") and k != "trend_t"):
            e[k] = v if math.isfinite(v) else None
        elif k.startswith("growth") and math.isfinite(v):
            e[k] = round_sig(min(max(v, 1.0 / GROWTH_CAP), GROWTH_CAP), 3)
        else:
            e[k] = round_sig(v, digits)
    return e


def fmt_rul(seconds: float | None, *, alarm_confirmed: bool) -> str:
    """A remaining-time phrase that never says "0 h" about a limit nobody has seen crossed."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds < 3600.0:
        return (
            "at the limit now"
            if alarm_confirmed
            else "the trend line is at the limit; not yet confirmed by the readings"
        )
    days = seconds / 86_400.0
    return f"{days:.0f} days" if days >= 2 else f"{seconds / 3600.0:.0f} h"
