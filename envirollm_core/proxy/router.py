"""The router: a request for `envirollm/auto` (or every request, with `--route`) goes to the configuration
with the least energy per token whose mean quality reaches the floor on the same task, from the store's
own benchmark results.

The task of a request is the preset named in its `X-EnviroLLM-Task` header, else its prompt's group (the
same prompt benchmarked before). Only models the upstream serves are candidates; quality from executed
checks (`verified`) is used alone when the task has it, as scores by different methods are never mixed.
With no such result the request goes to the default model, and the reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from envirollm_core.analysis.recommend import recommend
from envirollm_core.analysis.stats import ANALYSIS_COLUMNS
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure, milli

# What routing and usage read of the stored runs: the analysis columns and how each quality was made.
ROUTING_COLUMNS: tuple[str, ...] = (*ANALYSIS_COLUMNS, "quality_method")

AUTO_MODEL = "envirollm/auto"


@dataclass(frozen=True)
class RouteDecision:
    requested: str | None
    model: str | None  # None: no result and no default, the request cannot be routed
    reason: str
    task: str | None = None

    def as_detail(self) -> dict[str, str | None]:
        return {"requested": self.requested, "chosen": self.model, "reason": self.reason, "task": self.task}


def choose(
    results: pl.DataFrame, *, requested: str | None, task: str | None, prompt_hash: str,
    available: list[str], quality_floor: float, default_model: str | None,
) -> RouteDecision:
    """The decision for one request from a frame of stored runs (`Store.runs_frame()`)."""
    benchmarked = results.filter((pl.col("backend") != "proxy") & pl.col("model").is_in(available))
    by, group = ("preset", task) if task else ("prompt_hash", prompt_hash)
    rows = benchmarked.filter(pl.col(by) == group)
    if rows.filter(pl.col("quality_method") == "verified").height:
        rows = rows.filter(pl.col("quality_method") == "verified")
    what = f"task {task!r}" if task else f"prompt group {prompt_hash}"
    fallback = f"; sent to the default model {default_model}" if default_model else "; no --default-model to send it to"
    if rows.is_empty():
        return RouteDecision(requested, default_model, f"no stored results for {what} on this upstream's models{fallback}", task)
    try:
        # The upstream's models wherever they were measured: routing picks among configurations, machine included.
        (group_pick,) = recommend(rows, by=by, quality_floor=quality_floor, group=group, across_machines=True)
    except (ValueError, EnviroLLMError):
        return RouteDecision(requested, default_model, f"no complete results for {what}{fallback}", task)
    pick = next((p for p in group_pick.picks if p.kind == "most_efficient"), None)
    if pick is None or pick.config.quality_score is None or pick.config.quality_score < quality_floor:
        return RouteDecision(
            requested, default_model, f"no configuration reaches quality {quality_floor:g} on {what}{fallback}", task
        )
    method = rows["quality_method"].drop_nulls().unique().sort().to_list()
    return RouteDecision(
        requested, pick.config.model,
        f"least energy per token on {what} with quality >= {quality_floor:g}: {pick.config.model} at "
        f"{format_figure(milli(pick.config.energy_per_token_wh), 'mWh')} mWh/token, "
        f"quality {format_figure(pick.config.quality_score, 'score')}"
        f" ({', '.join(method)}, {pick.config.n_runs} runs)",
        task,
    )
