"""One prompt's runs analysed (Results and Import pages): the prompt groups to choose from, and a group's
per-configuration statistics, Pareto frontier and batch trends."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from envirollm_core.analysis import batch_trends, group_stats, pareto_frontier
from envirollm_core.analysis.stats import CONFIG_KEYS
from envirollm_core.analysis.stats import METRICS as STATS_METRICS
from envirollm_core.charts import METRICS as CHART_METRICS
from envirollm_core.views.run_table import with_derived_figures


def prompt_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per prompt of a runs frame (an upload), most recent first, like `Store.prompt_groups`."""
    return (
        frame.group_by("prompt_hash")
        .agg(
            pl.col("prompt_preview").first(), pl.col("preset").drop_nulls().first(), pl.len().alias("n_runs"),
            pl.col("model").n_unique().alias("n_models"), pl.col("created_at").max().alias("last_run_at"),
        )
        .sort("last_run_at", descending=True, nulls_last=True)
    )


def group_label(row: dict) -> str:
    """How a prompt group is named in a select box: its task or its first words, and its size."""
    name = row.get("preset") or row.get("prompt_preview") or row["prompt_hash"]
    return f"{name} · {row['n_runs']} runs, {row['n_models']} models · {row['prompt_hash'][:8]}"


@dataclass(frozen=True)
class GroupAnalysis:
    """One prompt group's runs analysed: per-configuration stats, their Pareto frontier, batch means over time."""

    stats: pl.DataFrame
    frontier: pl.DataFrame
    batches: pl.DataFrame


def analyze_group(frame: pl.DataFrame) -> GroupAnalysis:
    """The runs of one prompt (a frame already limited to one `prompt_hash`), with their derived figures."""
    frame = with_derived_figures(frame)
    metrics = tuple(dict.fromkeys([*STATS_METRICS, *CHART_METRICS]))
    stats = group_stats(frame, by=CONFIG_KEYS, metrics=metrics)
    return GroupAnalysis(stats, pareto_frontier(stats), batch_trends(frame, metrics=metrics, by=CONFIG_KEYS))
