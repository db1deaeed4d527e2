"""Stored load sweeps as the Results page's Load tab and the Benchmark page show them."""

from __future__ import annotations

import polars as pl

from envirollm_core.figures import APP_FLOAT_FORMAT, figure_expr
from envirollm_core.metrics import METRIC
from envirollm_core.units import MWH_PER_WH


def sweep_labels(levels: pl.DataFrame) -> dict[str, str]:
    """Each stored load sweep (rows of `Store.sweep_levels`, newest first) by id: `model on backend, when, levels`."""
    sweeps = levels.group_by("sweep_id", maintain_order=True).agg(
        pl.col("model").first(), pl.col("backend").first(), pl.col("created_at").first(), pl.col("concurrency"),
    )
    return {
        row["sweep_id"]: f"{row['model']} on {row['backend']} · {row['created_at']:%Y-%m-%d %H:%M} UTC · "
                         f"concurrency {','.join(map(str, row['concurrency']))}"
        for row in sweeps.iter_rows(named=True)
    }


# How `levels_table`'s numbers are shown: each is already rounded by the one rule (`figures.py`), as the CLI's
# `sweep` table prints it, so a column shows its value as it is.
LEVEL_FORMATS: dict[str, str] = {
    name: APP_FLOAT_FORMAT for name in ("tokens/s", "requests/s", "goodput %", "energy mWh", "net mWh", "mWh/token", "mWh/request",
                               "TTFT p50", "TTFT p95", "ITL p50", "ITL p95", "e2e p50", "e2e p95", "e2e p99")
}


def seconds(column: str) -> pl.Expr:
    return figure_expr(pl.col(column), "s")


def levels_table(levels: pl.DataFrame, knee: int | None) -> pl.DataFrame:
    """A sweep's levels as a person reads them: latencies in s, energy in mWh, the knee marked."""
    return levels.sort("concurrency").select(
        pl.col("concurrency").alias("streams"),
        pl.when(pl.col("concurrency") == (knee if knee is not None else -1)).then(pl.lit("knee")).otherwise(pl.lit(""))
        .alias("knee"),
        pl.col("requests"), pl.col("failed"),
        METRIC["output_tps"].expr().alias("tokens/s"), METRIC["requests_per_s"].expr().alias("requests/s"),
        seconds("ttft_p50_s").alias("TTFT p50"), seconds("ttft_p95_s").alias("TTFT p95"),
        seconds("itl_p50_s").alias("ITL p50"), seconds("itl_p95_s").alias("ITL p95"),
        seconds("e2e_p50_s").alias("e2e p50"), seconds("e2e_p95_s").alias("e2e p95"), seconds("e2e_p99_s").alias("e2e p99"),
        METRIC["goodput_fraction"].expr().alias("goodput %"),
        figure_expr(pl.col("energy_wh") * MWH_PER_WH, "mWh").alias("energy mWh"),
        figure_expr(pl.col("energy_net_wh") * MWH_PER_WH, "mWh").alias("net mWh"),
        METRIC["energy_per_token_wh"].expr().alias("mWh/token"),
        METRIC["energy_per_request_wh"].expr().alias("mWh/request"),
        pl.col("components").list.eval(
            pl.concat_str([pl.element().struct.field("component"), pl.element().struct.field("source")], separator=":")
        ).list.join(" ").alias("energy source"),
    )
