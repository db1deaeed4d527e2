"""Stored runs as a table with units in its headers (Results, Import and Benchmark pages), and the figures a
run's own columns imply where it did not record them."""

from __future__ import annotations

import polars as pl

from envirollm_core import metrics
from envirollm_core.store.store import with_short_ids


# Gross minus the idle baseline times the duration: below zero when a run drew less than idle.
NET_ENERGY = "net energy (Wh, vs idle; may be negative)"


# Number formats for the columns of `runs_table` (pages turn them into column_config), from the one metric table.
TABLE_FORMATS: dict[str, str] = metrics.table_formats("#")


DERIVED_TOKENS = "derived"  # `token_count_source` of a count worked out as energy / energy per token


def with_derived_figures(frame: pl.DataFrame) -> pl.DataFrame:
    """A runs frame with what its own columns imply where the run did not record it, each labelled.

    The original EnviroLLM's files keep energy, energy per token and a speed over the whole request, but no
    token count and no decode rate: the count is energy / energy per token (`token_count_source` "derived"),
    and `e2e_tps` is tokens over the whole request (TTFT included), never passed off as a decode rate."""
    derivable = (pl.col("completion_tokens").is_null() & pl.col("energy_wh").is_not_null()
                 & (pl.col("energy_per_token_wh") > 0))
    frame = frame.with_columns(
        pl.when(derivable).then((pl.col("energy_wh") / pl.col("energy_per_token_wh")).round(0).cast(pl.Int64))
        .otherwise(pl.col("completion_tokens")).alias("completion_tokens"),
        pl.when(derivable).then(pl.lit(DERIVED_TOKENS)).otherwise(pl.col("token_count_source"))
        .alias("token_count_source"),
    )
    return frame.with_columns(
        pl.when(pl.col("e2e_s") > 0).then(pl.col("completion_tokens") / pl.col("e2e_s")).alias("e2e_tps")
    )


def runs_table(frame: pl.DataFrame) -> pl.DataFrame:
    """A runs frame (`Store.runs_frame` or `runs_to_frame`) as pages show it: units in the headers, the
    columns a person compares first (model, speed, energy per token, quality) before the details, and each run
    named by its shortest unique id (`Store.with_short_ids`; else unique within the frame)."""
    frame = metrics.with_shown_columns(with_derived_figures(frame))
    if "short_id" not in frame.columns:
        frame = with_short_ids(frame)
    shown: dict[str, pl.Expr] = {
        "model": pl.col("model"),
        "decode (tokens/s)": pl.col("decode_tps"),
        "energy per token (mWh)": pl.col("energy_per_token_mwh"),
        "quality (0-100)": pl.col("quality_score"),
        "time (UTC)": pl.col("created_at"),
        "backend": pl.col("backend"),
        "quantization": pl.col("quantization"),
        "status": pl.col("status"),
        "task": pl.col("preset"),
        "#": pl.col("repeat_index") + 1,
        "TTFT (s)": pl.col("ttft_s"),
        "end-to-end (tokens/s)": pl.col("e2e_tps"),
        "tokens": pl.col("completion_tokens"),
        "tokens by": pl.col("token_count_source"),
        "energy (Wh)": pl.col("energy_wh"),
        NET_ENERGY: pl.col("energy_net_wh"),
        "± energy (Wh)": pl.col("energy_uncertainty_wh"),
        "avg power (W)": pl.col("avg_power_w"),
        "quality by": pl.col("quality_method"),
        "notes": pl.col("notes"),
        "error": pl.col("error"),
        "run id": pl.col("short_id"),
    }
    return frame.select(expression.alias(name) for name, expression in shown.items())
