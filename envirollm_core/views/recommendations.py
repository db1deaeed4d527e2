"""The Recommendations page's tables: what fits this machine, each group's picks, and a month of use."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from envirollm_core.analysis import FitEstimate, Tariff, group_stats, monthly
from envirollm_core.analysis.recommend import PICK_TITLES, GroupRecommendation
from envirollm_core.analysis.speed import DEFAULT_MIN_TPS, fit_verdict
from envirollm_core.analysis.stats import CONFIG_KEYS
from envirollm_core.charts import config_label
from envirollm_core.figures import round_figure, round_frame


def config_stats(frame: pl.DataFrame, column: str | None = None, value: str | None = None) -> pl.DataFrame:
    """Per-configuration statistics of the runs, or of those whose `column` equals `value` (one prompt or task)."""
    if column is not None:
        frame = frame.filter(pl.col(column) == value)
    return group_stats(frame, by=CONFIG_KEYS)


def monthly_table(
    stats: pl.DataFrame, tariff: Tariff, *, tokens_per_day: float | None = None, requests_per_day: float | None = None
) -> pl.DataFrame:
    """Each configuration's projected month for the stated usage: energy, CO2 and (with a price) cost."""
    rows = []
    for row in stats.with_columns(config_label()).iter_rows(named=True):
        month = monthly(
            tariff, energy_per_token_wh=row["energy_per_token_wh_mean"], tokens_per_day=tokens_per_day,
            energy_per_request_wh=row["energy_wh_mean"], requests_per_day=requests_per_day,
        )
        shown = {
            "configuration": row["configuration"],
            "runs": row["n_runs"],
            "energy per month (kWh)": month.energy_wh / 1000 if month else None,
            "CO2e per month (kg)": month.co2_g / 1000 if month else None,
        }
        if tariff.price_per_kwh is not None:  # no price given: no cost column rather than a column of blanks
            shown[f"cost per month ({tariff.currency})"] = month.cost if month else None
        rows.append(shown)
    units = {"energy per month (kWh)": "kWh", "CO2e per month (kg)": "kg", f"cost per month ({tariff.currency})": "money"}
    return round_frame(pl.DataFrame(rows), units) if rows else pl.DataFrame()


def picks_frame(group: GroupRecommendation) -> pl.DataFrame:
    """A group's picks as a small table: which pick, which configuration, and why."""
    return pl.DataFrame(
        [{"pick": PICK_TITLES[pick.kind], "configuration": pick.config.label, "why": pick.reason,
          "runs": pick.config.n_runs} for pick in group.picks],
        schema={"pick": pl.String, "configuration": pl.String, "why": pl.String, "runs": pl.Int64},
    )


def fits_frame(estimates: Sequence[FitEstimate], min_tps: float = DEFAULT_MIN_TPS) -> pl.DataFrame:
    """Hardware-fit estimates as a table, in the order given, with each one's estimated speed and verdict."""
    frame = pl.DataFrame(
        [{"model": e.model, "Ollama tag": e.ollama_tag, "quantization": e.quantization,
          "verdict": fit_verdict(e, min_tps),
          "decode (tokens/s, estimated)": None if e.decode_tps is None else round_figure(e.decode_tps, "tokens/s"),
          "context (tokens)": e.context_tokens, "weights (GB)": e.weights_gb, "KV cache (GB)": e.kv_cache_gb,
          "overhead (GB)": e.overhead_gb, "total (GB)": e.total_gb, "runs on": e.placement}
         for e in estimates]
    )
    return round_frame(frame, {name: "GB" for name in ("weights (GB)", "KV cache (GB)", "overhead (GB)", "total (GB)")})


def energy_caption(sources: set[str]) -> str:
    """How a page names mean energy figures made from components with these sources: estimated where they are."""
    measured = sources - {"estimate", "unmeasured"}
    if "estimate" not in sources:
        return "Measured mean energy"
    if measured:
        return "Mean energy, measured for some components and estimated for others,"
    return "Estimated mean energy (no energy counter or power reading where the runs were made)"
