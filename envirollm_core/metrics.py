"""The one table of metrics: how each stored figure is named, in which unit it is shown, how it is rounded, and
which direction is better. Statistics, trends, charts, the app's tables and the CLI all read it, so a figure
reads the same everywhere (the rounding rule itself is `figures.py`: three significant digits by unit).

A stored column keeps its name (it is a contract: database, exports, `--json`); where its unit surprises,
`stored_unit` says it exactly (`_mb` columns hold MiB, 2**20 bytes; energy per token is stored in Wh and
shown in mWh).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from envirollm_core.figures import (
    APP_FLOAT_FORMAT, APP_INTEGER_FORMAT, WHOLE_UNITS, figure_expr, format_figure, format_spread,
)


@dataclass(frozen=True)
class Metric:
    column: str  # the stored column (or record field)
    title: str  # `Energy per token`
    unit: str  # the unit shown: `mWh/token`
    stored_unit: str  # the unit the column holds: `Wh/token`
    figure_unit: str  # the unit key of the rounding rule (`figures.WHOLE_UNITS` are shown whole)
    header: str  # the app tables' column header
    short: str  # the CLI tables' column header
    scale: float = 1.0  # shown = stored x scale
    higher_is_better: bool | None = None  # None: neither (a count, an uncertainty)
    note: str = ""  # what the unit alone does not say

    @property
    def axis_title(self) -> str:
        return f"{self.title} ({self.unit}{', ' + self.note if self.note else ''})"

    @property
    def shown_column(self) -> str:
        """The column a frame shows the metric in: the stored one, or one named for the shown unit."""
        if self.scale == 1.0:
            return self.column
        return self.column.removesuffix("_wh") + "_mwh" if self.column.endswith("_wh") else f"{self.column}_shown"

    def shown(self, value: float | None) -> float | None:
        """A stored value in the shown unit; None (unmeasured) stays None."""
        return None if value is None else value * self.scale

    def format(self, value: float | None) -> str:
        """A stored value as every table and tooltip prints it: scaled, rounded by the one rule."""
        return format_figure(self.shown(value), self.figure_unit)

    def format_shown(self, value: float | None) -> str:
        """A value already in the shown unit (a `with_shown_columns` column) as every table prints it."""
        return format_figure(value, self.figure_unit)

    def format_spread(self, mean: float | None, low: float | None, high: float | None) -> str:
        return format_spread(self.shown(mean), self.shown(low), self.shown(high), self.figure_unit)

    def expr(self, column: str | None = None) -> pl.Expr:
        """`column` (default the stored one) scaled and rounded as shown, kept numeric so it still sorts."""
        value = pl.col(column or self.column)
        return figure_expr(value * self.scale if self.scale != 1.0 else value, self.figure_unit)


_WH_TOKEN = "Wh/token (shown in mWh/token)"
_MIB = "MiB (2**20 bytes), though named _mb"

METRIC: dict[str, Metric] = {
    m.column: m
    for m in (
        Metric("energy_per_token_wh", "Energy per token", "mWh/token", _WH_TOKEN, "mWh", "energy per token (mWh)",
               "mWh/tok", scale=1000.0, higher_is_better=False),
        Metric("decode_tps", "Decode speed", "tokens/s", "tokens/s", "tokens/s", "decode (tokens/s)", "tok/s",
               higher_is_better=True),
        Metric("e2e_tps", "End-to-end speed", "tokens/s", "tokens/s", "tokens/s", "end-to-end (tokens/s)", "e2e tok/s",
               higher_is_better=True, note="over the whole request, TTFT included"),
        Metric("ttft_s", "Time to first token", "s", "s", "s", "TTFT (s)", "TTFT s", higher_is_better=False),
        Metric("quality_score", "Quality", "score 0-100", "score 0-100", "score", "quality (0-100)", "quality",
               higher_is_better=True),
        Metric("energy_wh", "Energy per run", "Wh", "Wh", "Wh", "energy (Wh)", "Wh", higher_is_better=False),
        Metric("energy_net_wh", "Net energy", "Wh", "Wh", "Wh", "net energy (Wh, vs idle; may be negative)", "net Wh",
               higher_is_better=False, note="gross minus idle power x duration; may be negative"),
        Metric("energy_uncertainty_wh", "Energy uncertainty", "Wh", "Wh", "Wh", "± energy (Wh)", "± Wh"),
        Metric("completion_tokens", "Tokens generated", "tokens", "tokens", "tokens", "tokens", "tokens"),
        Metric("avg_power_w", "Average power", "W", "W", "W", "avg power (W)", "W"),
        # Load sweeps: one level's figures over its steady-state window.
        Metric("output_tps", "Output speed", "tokens/s", "tokens/s", "tokens/s", "tokens/s", "tok/s",
               higher_is_better=True, note="all streams together"),
        Metric("requests_per_s", "Requests per second", "requests/s", "requests/s", "requests/s", "requests/s",
               "req/s", higher_is_better=True),
        Metric("goodput_fraction", "Goodput", "%", "fraction 0-1 (shown in %)", "%", "goodput %", "goodput",
               scale=100.0, higher_is_better=True, note="share of requests meeting the SLOs"),
        Metric("energy_per_request_wh", "Energy per request", "mWh/request", "Wh/request (shown in mWh/request)",
               "mWh", "mWh/request", "mWh/req", scale=1000.0, higher_is_better=False),
        # Memory, named _mb by the stored schema but counted in mebibytes as the OS and NVML report it.
        Metric("ram_used_mb_peak", "Peak RAM used (whole machine)", "MiB", _MIB, "MiB", "peak RAM (MiB)", "RAM MiB"),
        Metric("server_peak_rss_mb", "Server peak resident memory", "MiB", _MIB, "MiB", "server RSS (MiB)", "RSS MiB"),
        Metric("server_gpu_mem_mb", "Server GPU memory", "MiB", _MIB, "MiB", "server GPU memory (MiB)", "GPU MiB"),
    )
}

# The per-configuration statistics (`analysis.group_stats`): the four, then the two that make the
# paper's Table 1 (energy per run, tokens per run).
STATISTICS: tuple[str, ...] = (
    "energy_per_token_wh", "decode_tps", "ttft_s", "quality_score", "energy_wh", "completion_tokens",
)
# What the Results page can draw as bars and trends.
CHARTED: tuple[str, ...] = ("energy_per_token_wh", "decode_tps", "e2e_tps", "ttft_s", "quality_score", "energy_wh")
# What `compare` watches for regressions between batches.
WATCHED: tuple[str, ...] = ("energy_per_token_wh", "decode_tps", "ttft_s", "quality_score")
# A stored run's figures, as the runs tables (`list`, the app's Results) show them.
RUN_FIGURES: tuple[str, ...] = (
    "ttft_s", "decode_tps", "e2e_tps", "completion_tokens", "energy_wh", "energy_net_wh", "energy_uncertainty_wh",
    "energy_per_token_wh", "avg_power_w", "quality_score",
)


def higher_is_better(columns: tuple[str, ...] = WATCHED) -> dict[str, bool]:
    """{column: whether more is better} for metrics that have a better direction."""
    return {c: METRIC[c].higher_is_better for c in columns if METRIC[c].higher_is_better is not None}


def run_units() -> dict[str, str]:
    """{shown column: rounding unit} of the run figures, for `figures.round_frame` over `with_shown_columns`."""
    return {METRIC[c].shown_column: METRIC[c].figure_unit for c in RUN_FIGURES}


def with_shown_columns(frame: pl.DataFrame, columns: tuple[str, ...] = RUN_FIGURES) -> pl.DataFrame:
    """`frame` with each present metric in its shown unit and rounded by the one rule, in its `shown_column`
    (energy per token in mWh as `energy_per_token_mwh`; stored-unit columns in place)."""
    return frame.with_columns(METRIC[c].expr().alias(METRIC[c].shown_column) for c in columns if c in frame.columns)


def table_formats(*other_headers: str) -> dict[str, str]:
    """{header: format} for the app's runs table: its figures are already rounded by the one rule, so each shows
    as it is (no thousands separators, no fixed decimals), the same digits the CLI prints; `other_headers` are
    integer columns."""
    formats = {METRIC[c].header: APP_INTEGER_FORMAT if METRIC[c].figure_unit in WHOLE_UNITS else APP_FLOAT_FORMAT
               for c in RUN_FIGURES}
    return {**formats, **{header: APP_INTEGER_FORMAT for header in other_headers}}
