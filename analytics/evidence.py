"""Evidence values as a technician reads them: finite, rounded to meaningful digits.

Detector state is float64 arithmetic; an alert's evidence is not. ``4.999999999999999``
is 5, a growth of ``3.6e+209`` per month is "more than a thousandfold", and infinities or
NaN are "not known" (``None``). One rule for every detector's evidence dict, applied where
the dict is built, so the API, the alert store and the offline report agree.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["GROWTH_CAP", "fmt_date", "fmt_growth_per_week", "fmt_rul", "round_sig", "tidy_evidence"]

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


def fmt_growth_per_week(factor: float) -> str:
    """A growth factor per week as a technician reads it: "12 %/week", "2.5x a week"."""
    if not math.isfinite(factor):
        return "at an unknown rate"
    if factor >= GROWTH_CAP:
        return f"more than {GROWTH_CAP:.0f}x a week"
    if factor >= 2.0:
        return f"{factor:.2g}x a week"
    pct = 100.0 * (factor - 1.0)
    return f"{pct:.0f} %/week" if pct >= 9.5 else f"{pct:.2g} %/week"


def fmt_date(t: float | None) -> str:
    """A day (UTC) for evidence that is not meaningful to the hour (a daily point's time)."""
    if t is None or not math.isfinite(t):
        return "an unknown day"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")
