"""Stored load sweeps as the Results page's Load tab and the Benchmark page show them."""

from __future__ import annotations

import polars as pl


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


# How `levels_table`'s numbers are shown (Streamlit's printf-style formats).
LEVEL_FORMATS: dict[str, str] = {
    "tokens/s": "%.1f", "requests/s": "%.2f", "goodput %": "%.0f", "energy mWh": "%.2f", "net mWh": "%.2f",
    "mWh/token": "%.4f", "mWh/request": "%.3f",
    **{name: "%.3f" for name in ("TTFT p50", "TTFT p95", "ITL p50", "ITL p95", "e2e p50", "e2e p95", "e2e p99")},
}


def levels_table(levels: pl.DataFrame, knee: int | None) -> pl.DataFrame:
    """A sweep's levels as a person reads them: latencies in s, energy in mWh, the knee marked."""
    return levels.sort("concurrency").select(
        pl.col("concurrency").alias("streams"),
        pl.when(pl.col("concurrency") == (knee if knee is not None else -1)).then(pl.lit("knee")).otherwise(pl.lit(""))
        .alias("knee"),
        pl.col("requests"), pl.col("failed"),
        pl.col("output_tps").alias("tokens/s"), pl.col("requests_per_s").alias("requests/s"),
        pl.col("ttft_p50_s").alias("TTFT p50"), pl.col("ttft_p95_s").alias("TTFT p95"),
        pl.col("itl_p50_s").alias("ITL p50"), pl.col("itl_p95_s").alias("ITL p95"),
        pl.col("e2e_p50_s").alias("e2e p50"), pl.col("e2e_p95_s").alias("e2e p95"), pl.col("e2e_p99_s").alias("e2e p99"),
        (pl.col("goodput_fraction") * 100).alias("goodput %"),
        (pl.col("energy_wh") * 1000).alias("energy mWh"), (pl.col("energy_net_wh") * 1000).alias("net mWh"),
        (pl.col("energy_per_token_wh") * 1000).alias("mWh/token"),
        (pl.col("energy_per_request_wh") * 1000).alias("mWh/request"),
        pl.col("components").list.eval(
            pl.concat_str([pl.element().struct.field("component"), pl.element().struct.field("source")], separator=":")
        ).list.join(" ").alias("energy source"),
    )
