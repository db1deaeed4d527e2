"""One rounding rule for every figure shown, in the CLI and the app: significant digits by unit.

A measured figure carries about three significant digits of meaning (energy
counters, timers under load, a grid's yearly mean), so it is shown with
three, never cut below its whole part: 480.617 g/kWh is `481` everywhere,
0.000583 Wh is `0.000583`, 12,345 tokens stay `12345`. Scores (0-100),
percentages and counts are shown whole. Trailing zeros are dropped (`1.5`,
not `1.50`) because the app's tables show a number's shortest text: the CLI
prints the same digits as the app for the same value.

Tables (the app's, and the CLI's `list` and `compare`) are rounded by one Polars
expression (`figure_expr`, kept numeric so they still sort); a single value
(`round_figure`) is rounded the same way in Python, half to even on the number
as written.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from envirollm_core.units import wh_to_mwh as milli  # noqa: F401  (Wh as mWh, the name the CLI prints with)

MISSING = "-"  # a reading that is not there (unmeasured, not 0)
SIGNIFICANT_DIGITS = 3
MAX_DECIMALS = 15  # past a float's precision: smaller magnitudes are shown as they are
# Units shown whole: scores 0-100, percentages, and counts (tokens, runs, requests, threads, samples).
WHOLE_UNITS = frozenset({"score", "%", "tokens", "runs", "count"})


# How the app's tables show a figure already rounded by the rule (Streamlit column formats): printf's `%g` writes
# a rounded float as its shortest text (94.9); Streamlit's "plain" writes some with binary noise (94.89999999999999),
# so it is kept for integers only.
APP_FLOAT_FORMAT = "%g"
APP_INTEGER_FORMAT = "plain"


def figure_expr(column: pl.Expr, unit: str = "") -> pl.Expr:
    """`column` rounded to three significant digits (never below its whole part), or whole for `WHOLE_UNITS`;
    nulls, zeros and non-finite values stay as they are. Numeric, so a table rounded with it still sorts."""
    if unit in WHOLE_UNITS:
        return column.round(0)  # an integer column (a count) stays an integer
    column = column.cast(pl.Float64)
    decimals = (SIGNIFICANT_DIGITS - 1 - column.abs().log10().floor()).clip(0, MAX_DECIMALS)
    rounded = pl.when(decimals == 0).then(column.round(0))
    for places in range(1, MAX_DECIMALS + 1):
        rounded = rounded.when(decimals == places).then(column.round(places))
    return rounded.otherwise(column)


def figure_text_expr(column: pl.Expr, unit: str = "") -> pl.Expr:
    """`column` as `format_figure` writes it (`481`, `0.000583`), for many rows at once (chart tooltips); null
    stays null. The rounded number's shortest text, without a trailing `.0`; the rare magnitude that Polars
    writes with an exponent (below 1e-5, from 1e16) is written by `format_figure` itself."""

    def text(values: pl.Series) -> pl.Series:
        shortest = values.cast(pl.String).str.replace(r"\.0$", "")
        exponent = shortest.str.contains("e", literal=True).fill_null(False)
        if not exponent.any():
            return shortest
        fixed = [format_figure(value, unit) if written else shown
                 for value, shown, written in zip(values.to_list(), shortest.to_list(), exponent.to_list())]
        return pl.Series(values.name, fixed, dtype=pl.String)

    return figure_expr(column, unit).map_batches(text, return_dtype=pl.String)


def _decimals(value: float) -> int:
    return min(MAX_DECIMALS, max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value)))))


def round_figure(value: float, unit: str = "") -> float:
    """`value` rounded as `figure_expr` rounds it: the number as written (its shortest text) rounded half to
    even, like Polars' `round`."""
    if value == 0 or not math.isfinite(value) or abs(value) >= 1e15:  # past 1e15 a float holds no fraction
        return value
    places = 0 if unit in WHOLE_UNITS else _decimals(value)
    return float(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def round_frame(frame: pl.DataFrame, units: dict[str, str]) -> pl.DataFrame:
    """`frame` with each column named in `units` rounded by the rule for its unit (still numeric, so sortable)."""
    return frame.with_columns(figure_expr(pl.col(name), unit) for name, unit in units.items() if name in frame.columns)


def format_figure(value: float | None, unit: str = "") -> str:
    """`value` rounded by the rule, as its shortest text (`481`, `0.000583`, `38.3`, `85`); `-` when there is none."""
    if value is None:
        return MISSING
    rounded = round_figure(float(value), unit)
    if rounded == 0 or not math.isfinite(rounded):
        return f"{rounded:.0f}" if math.isfinite(rounded) else str(rounded)
    if unit in WHOLE_UNITS:
        return f"{rounded:.0f}"
    text = f"{rounded:.{min(MAX_DECIMALS + 2, _decimals(rounded) + 2)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_spread(mean: float | None, low: float | None, high: float | None, unit: str = "") -> str:
    """`mean ± half the interval`, each by the rule; the mean alone when there is no interval."""
    if mean is None:
        return MISSING
    if low is None or high is None:
        return format_figure(mean, unit)
    return f"{format_figure(mean, unit)} ± {format_figure((high - low) / 2, unit)}"
