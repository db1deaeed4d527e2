"""Per-configuration statistics within a prompt group: n, mean, std and a t-interval.

A configuration is a model on a backend at a quantization, on one machine, with
the same generation settings (`configuration.CONFIG_KEYS`): the same weights
served by Ollama and by LM Studio are two configurations (the paper's Table 2
compares exactly that). Only completed runs (`status == "ok"`) enter the
statistics; failed ones are counted beside them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats as scipy_stats

from envirollm_core.analysis.configuration import CONFIG_KEYS
from envirollm_core.analysis.quality_methods import QUALITY_METHODS
from envirollm_core.errors import UsageError
from envirollm_core.metrics import STATISTICS

PROMPT_KEYS: tuple[str, ...] = ("prompt_hash", *CONFIG_KEYS)
METRICS: tuple[str, ...] = STATISTICS  # the metric table's (`metrics.py`) figures with statistics
CONFIDENCE = 0.95
# What the analysis reads from a runs frame: ask the store for just these (`runs_frame(columns=...)`).
ANALYSIS_COLUMNS: tuple[str, ...] = (
    "batch_id", "created_at", *PROMPT_KEYS, "preset", "status", "prompt_preview", *METRICS, "sweep_concurrency",
    "quality_method",
)


def single_stream_runs(frame: pl.DataFrame) -> pl.DataFrame:
    """The runs sent one at a time: a load sweep's runs overlap (no energy of their own, decode slowed by
    the others) and are compared as sweeps (`analysis.load`), never mixed into these statistics."""
    return frame.filter(pl.col("sweep_concurrency").is_null()) if "sweep_concurrency" in frame.columns else frame


def t_critical(n: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """Two-sided Student-t critical values for samples of size `n` (NaN where n < 2)."""
    n = np.asarray(n, dtype=float)
    # Groups share a handful of sizes: one quantile per distinct size is enough.
    sizes, position = np.unique(np.maximum(n, 2), return_inverse=True)
    values = scipy_stats.t.ppf(0.5 + confidence / 2, sizes - 1)[position.reshape(n.shape)]
    return np.where(n >= 2, values, np.nan)


def require_columns(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise UsageError(f"the runs frame lacks column(s) {', '.join(missing)}")


def group_stats(
    frame: pl.DataFrame,
    by: Sequence[str] = PROMPT_KEYS,
    metrics: Sequence[str] = METRICS,
    confidence: float = CONFIDENCE,
) -> pl.DataFrame:
    """One row per group of `by`: `n_runs` (completed), `n_failed`, `last_run_at`, the group's
    `preset` and `prompt_preview` when the frame has them, `quality_methods` (the methods behind the quality
    scores) when it has `quality_method`, and per metric `{m}_n`, `{m}_mean`,
    `{m}_std`, `{m}_ci_low`, `{m}_ci_high` (a `confidence` t-interval of the mean; null when n < 2)."""
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1, not {confidence}")
    by, metrics = list(by), list(metrics)
    require_columns(frame, [*by, *metrics, "status", "created_at"])
    frame = single_stream_runs(frame)
    labels = [pl.col(c).drop_nulls().first().alias(c) for c in ("preset", "prompt_preview")
              if c in frame.columns and c not in by]
    ok = pl.col("status") == "ok"
    if {"quality_method", "quality_score"} <= set(frame.columns):  # which methods made the scores: qualities of two are not compared silently
        labels.append(pl.col("quality_method").filter(ok & pl.col("quality_score").is_not_null()).drop_nulls()
                      .unique().sort().alias(QUALITY_METHODS))
    aggregations = [
        (pl.col("status") == "ok").sum().alias("n_runs"),
        (pl.col("status") != "ok").sum().alias("n_failed"),
        pl.col("created_at").max().alias("last_run_at"),
        *labels,
    ]
    for metric in metrics:
        value = pl.col(metric).cast(pl.Float64).filter(ok)
        aggregations += [
            value.count().alias(f"{metric}_n"),
            value.mean().alias(f"{metric}_mean"),
            value.std(ddof=1).alias(f"{metric}_std"),
        ]
    grouped = frame.group_by(by, maintain_order=True).agg(aggregations)
    intervals = []
    for metric in metrics:
        n = grouped[f"{metric}_n"].to_numpy()
        half = t_critical(n, confidence) * grouped[f"{metric}_std"].fill_null(np.nan).to_numpy() / np.sqrt(
            np.maximum(n, 1)
        )
        half_width = pl.Series(values=half).fill_nan(None)
        intervals += [
            (pl.col(f"{metric}_mean") - half_width).alias(f"{metric}_ci_low"),
            (pl.col(f"{metric}_mean") + half_width).alias(f"{metric}_ci_high"),
        ]
    return grouped.with_columns(intervals).sort(by, nulls_last=True)
