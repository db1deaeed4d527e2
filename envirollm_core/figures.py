"""One rounding rule for every figure shown, in the CLI and the app: significant digits by unit.

A measured figure carries about three significant digits of meaning (energy
counters, timers under load, a grid's yearly mean), so it is shown with
three, never cut below its whole part: 480.617 g/kWh is `481` everywhere,
0.000583 Wh is `0.000583`, 12,345 tokens stay `12345`. Scores (0-100) and
percentages are shown whole; counts are whole numbers.
"""

from __future__ import annotations

import math

MISSING = "-"  # a reading that is not there (unmeasured, not 0)
SIGNIFICANT_DIGITS = 3
WHOLE_UNITS = frozenset({"score", "%", "tokens", "runs"})


def round_figure(value: float, unit: str = "") -> float:
    """`value` rounded as `format_figure` shows it."""
    if unit in WHOLE_UNITS or value == 0 or not math.isfinite(value):
        return float(round(value)) if math.isfinite(value) else value
    decimals = max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    return round(value, decimals)


def format_figure(value: float | None, unit: str = "") -> str:
    """`value` with three significant digits (never fewer than its whole part), whole for scores,
    percentages and counts; `-` when there is none."""
    if value is None:
        return MISSING
    if unit in WHOLE_UNITS or value == 0 or not math.isfinite(value):
        return f"{value:.0f}"
    decimals = max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"
