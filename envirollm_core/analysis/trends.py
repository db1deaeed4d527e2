"""Trends over time and regressions between batches, per configuration and prompt.

A regression is a change for the worse between a baseline batch and the
latest batch of the same configuration on the same prompt that Welch's t-test
finds significant (unequal variances: two batches rarely share theirs) and
that is large enough to matter (`min_change`, a fraction of the baseline).
One comparison runs many tests (metrics x configurations x prompts), so the
p-values are adjusted with Holm's step-down method before they are judged:
otherwise one test in twenty would flag noise at alpha = 0.05.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from envirollm_core.analysis.configuration import CONFIG_KEYS, config_label
from envirollm_core.analysis.stats import PROMPT_KEYS, require_columns, single_stream_runs
from envirollm_core.errors import UsageError
from envirollm_core.metrics import WATCHED, higher_is_better

# For each watched metric: is a higher value better? (the metric table's)
HIGHER_IS_BETTER: dict[str, bool] = higher_is_better(WATCHED)
ALPHA = 0.05
MIN_CHANGE = 0.05

# A test needs at least this many runs on each side: with two, one outlier is half the sample.
MIN_RUNS_TO_TEST = 3
TOO_FEW_RUNS, NO_SPREAD = "too few runs to test", "no spread"

Verdict = Literal["regression", "improvement", "no significant change", "insufficient data", "too few runs to test",
                  "no spread"]


def batch_trends(
    frame: pl.DataFrame, metrics: Sequence[str] = tuple(HIGHER_IS_BETTER), by: Sequence[str] = PROMPT_KEYS
) -> pl.DataFrame:
    """One row per group and batch, oldest first: `started_at`, `n_runs`, and each metric's mean."""
    require_columns(frame, [*by, *metrics, "batch_id", "status", "created_at"])
    return (
        single_stream_runs(frame).filter(pl.col("status") == "ok")
        .group_by([*by, "batch_id"])
        .agg(
            pl.col("created_at").min().alias("started_at"),
            pl.len().alias("n_runs"),
            *[pl.col(metric).cast(pl.Float64).mean().alias(f"{metric}_mean") for metric in metrics],
        )
        .sort([*by, "started_at"], nulls_last=True)
    )


@dataclass(frozen=True)
class MetricChange:
    """One metric of one configuration on one prompt, baseline batch against latest batch."""

    prompt_hash: str
    model: str
    backend: str
    quantization: str | None
    configuration: dict[str, Any]  # every field of CONFIG_KEYS (machine, max tokens, temperature...)
    label: str
    metric: str
    baseline_batch: str
    latest_batch: str
    n_baseline: int
    n_latest: int
    baseline_mean: float | None
    latest_mean: float | None
    change_fraction: float | None  # (latest - baseline) / |baseline|
    p_value: float | None  # Welch's t-test, two-sided; None when not tested (too few runs, no spread)
    p_adjusted: float | None  # Holm-adjusted over every test of the comparison
    confidence: float | None  # 1 - p_adjusted
    verdict: Verdict


def welch_p(n1: np.ndarray, mean1: np.ndarray, var1: np.ndarray,
            n2: np.ndarray, mean2: np.ndarray, var2: np.ndarray) -> np.ndarray:
    """Two-sided p of Welch's t-test from each side's count, mean and variance (ddof 1), element-wise;
    NaN where a side has fewer than `MIN_RUNS_TO_TEST` values or neither side has any spread (a t statistic
    divided by zero is no evidence: constant readings, like a capped token count, say nothing about noise)."""
    n1, mean1, var1, n2, mean2, var2 = (np.asarray(x, dtype=float) for x in (n1, mean1, var1, n2, mean2, var2))
    with np.errstate(divide="ignore", invalid="ignore"):
        spread1, spread2 = var1 / n1, var2 / n2
        spread = spread1 + spread2
        t = (mean2 - mean1) / np.sqrt(spread)
        df = spread**2 / (spread1**2 / (n1 - 1) + spread2**2 / (n2 - 1))
        p = 2 * scipy_stats.t.sf(np.abs(t), df)
    return np.where(untestable(n1, var1, n2, var2), np.nan, p)


def untestable(n1: np.ndarray, var1: np.ndarray, n2: np.ndarray, var2: np.ndarray) -> np.ndarray:
    """Where a test would mean nothing: too few runs on a side, or no spread on either."""
    n1, var1, n2, var2 = (np.asarray(x, dtype=float) for x in (n1, var1, n2, var2))
    return (n1 < MIN_RUNS_TO_TEST) | (n2 < MIN_RUNS_TO_TEST) | ~((var1 > 0) | (var2 > 0))


def welch_p_value(baseline: np.ndarray, latest: np.ndarray) -> float | None:
    """Two-sided p of Welch's t-test between two samples; None when `welch_p` cannot test them."""
    baseline, latest = np.asarray(baseline, dtype=float), np.asarray(latest, dtype=float)
    if len(baseline) < MIN_RUNS_TO_TEST or len(latest) < MIN_RUNS_TO_TEST:
        return None
    p = float(welch_p(len(baseline), baseline.mean(), baseline.var(ddof=1),
                      len(latest), latest.mean(), latest.var(ddof=1)))
    return None if np.isnan(p) else p


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: controls the chance of any false alarm among all the tests."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(stepped) if len(p) else stepped
    return adjusted.tolist()


def compare_batches(
    frame: pl.DataFrame,
    *,
    baseline_batch: str | None = None,
    latest_batch: str | None = None,
    metrics: Sequence[str] = tuple(HIGHER_IS_BETTER),
    alpha: float = ALPHA,
    min_change: float = MIN_CHANGE,
) -> list[MetricChange]:
    """For every configuration and prompt with runs in two batches, each metric's change and its
    significance. By default the latest batch is each group's newest and the baseline the one before it."""
    unknown = [metric for metric in metrics if metric not in HIGHER_IS_BETTER]
    if unknown:
        raise UsageError(f"cannot judge a change in {', '.join(unknown)}; choose from {', '.join(HIGHER_IS_BETTER)}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be between 0 and 1, not {alpha}")
    require_columns(frame, [*PROMPT_KEYS, *metrics, "batch_id", "status", "created_at"])
    pairs = _batch_pairs(_per_batch(single_stream_runs(frame), metrics), baseline_batch, latest_batch)
    tests = pl.concat([
        pairs.select(
            *PROMPT_KEYS, pl.lit(metric).alias("metric"), pl.col("batch_id_base").alias("baseline_batch"),
            pl.col("batch_id").alias("latest_batch"),
            *[pl.col(f"{metric}:{stat}{side}").cast(pl.Float64).alias(f"{stat}{side}")
              for stat in ("n", "mean", "var") for side in ("", "_base")],
        )
        for metric in metrics
    ]) if pairs.height else pl.DataFrame()
    if tests.height == 0:
        return []
    column = {name: tests[name].to_numpy() for name in ("n", "mean", "var", "n_base", "mean_base", "var_base")}
    p_value = welch_p(column["n_base"], column["mean_base"], column["var_base"], column["n"], column["mean"], column["var"])
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (column["mean"] - column["mean_base"]) / np.abs(column["mean_base"])
    change = np.where(np.isfinite(change), change, np.nan)
    tested = ~np.isnan(p_value)
    p_adjusted = np.full(len(p_value), np.nan)
    p_adjusted[tested] = holm_adjust(p_value[tested])
    higher_is_better = np.array([HIGHER_IS_BETTER[metric] for metric in tests["metric"]])
    worse = np.where(higher_is_better, change < 0, change > 0)
    too_few = (column["n"] < MIN_RUNS_TO_TEST) | (column["n_base"] < MIN_RUNS_TO_TEST)
    verdict = np.select(
        [np.isnan(change), too_few, ~tested, (p_adjusted >= alpha) | (np.abs(change) < min_change), worse],
        ["insufficient data", TOO_FEW_RUNS, NO_SPREAD, "no significant change", "regression"],
        "improvement",
    )
    labels = [config_label(row) for row in tests.select(CONFIG_KEYS).iter_rows(named=True)]
    configurations = [dict(row) for row in tests.select(CONFIG_KEYS).iter_rows(named=True)]
    results = tests.select(
        "prompt_hash", "model", "backend", "quantization", "metric", "baseline_batch", "latest_batch"
    ).with_columns(
        pl.Series("label", labels, dtype=pl.String),
        tests["n_base"].cast(pl.Int64).alias("n_baseline"),
        tests["n"].cast(pl.Int64).alias("n_latest"),
        tests["mean_base"].alias("baseline_mean"),
        tests["mean"].alias("latest_mean"),
        pl.Series("change_fraction", change).fill_nan(None),
        pl.Series("p_value", p_value).fill_nan(None),
        pl.Series("p_adjusted", p_adjusted).fill_nan(None),
        pl.Series("confidence", 1.0 - p_adjusted).fill_nan(None),
        pl.Series("verdict", verdict),
    )
    return [MetricChange(**row, configuration=configuration)
            for row, configuration in zip(results.to_dicts(), configurations)]


def _per_batch(frame: pl.DataFrame, metrics: Sequence[str]) -> pl.DataFrame:
    """Each group's batches with when they started and, per metric, count, mean and variance."""
    summaries = [pl.col("created_at").min().alias("started_at")]
    for metric in metrics:
        value = pl.col(metric).cast(pl.Float64)
        summaries += [value.count().alias(f"{metric}:n"), value.mean().alias(f"{metric}:mean"),
                      value.var(ddof=1).alias(f"{metric}:var")]
    return frame.filter(pl.col("status") == "ok").group_by([*PROMPT_KEYS, "batch_id"]).agg(summaries)


def _batch_pairs(per_batch: pl.DataFrame, baseline_batch: str | None, latest_batch: str | None) -> pl.DataFrame:
    """One row per group: its latest batch's summaries, and its baseline's with the suffix `_base`.
    Unnamed, the latest is the group's newest batch and the baseline the one before the latest."""
    keys = list(PROMPT_KEYS)
    batches = pl.col("batches")
    if latest_batch is None:
        latest, previous = batches.list.last(), batches.list.get(-2, null_on_oob=True)
    else:
        position = batches.list.eval((pl.element() == latest_batch).arg_max()).list.first()
        found = batches.list.contains(latest_batch)
        latest = pl.when(found).then(pl.lit(latest_batch))
        previous = pl.when(found & (position > 0)).then(batches.list.get(position - 1, null_on_oob=True))
    baseline = previous if baseline_batch is None else pl.lit(baseline_batch)
    chosen = (
        per_batch.group_by(keys)
        .agg(pl.col("batch_id").sort_by("started_at", "batch_id").alias("batches"))
        .select(*keys, latest.alias("latest"), baseline.alias("baseline"))
        .filter(pl.col("latest").is_not_null() & pl.col("baseline").is_not_null()
                & (pl.col("latest") != pl.col("baseline")))
    )

    def side(column: str) -> pl.DataFrame:
        wanted = chosen.select(*keys, pl.col(column).alias("batch_id"))
        return per_batch.join(wanted, on=[*keys, "batch_id"], how="semi", nulls_equal=True)

    return side("latest").join(side("baseline"), on=keys, suffix="_base", nulls_equal=True).sort(keys, nulls_last=True)


def regressions(changes: Sequence[MetricChange]) -> list[MetricChange]:
    return [change for change in changes if change.verdict == "regression"]
