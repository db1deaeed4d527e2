"""Load sweeps compared and recommended: the knee, and the most efficient level that meets the SLOs.

A level meets the SLOs when at least 95 % of the requests that ended in its
steady-state window met them (its goodput fraction; failed requests never
do). Among those levels the most efficient is the one with the lowest energy
per output token: past the knee, more streams add waiting and little
throughput; below it, the machine idles between tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from envirollm_core.benchmark.sweep import find_knee, levels_of

GOODPUT_TARGET = 0.95


@dataclass(frozen=True)
class SweepSummary:
    sweep_id: str
    model: str
    backend: str
    base_url: str
    created_at: datetime
    levels: tuple[int, ...]
    knee: int | None
    slo_ttft_s: float | None
    slo_itl_s: float | None
    best_level: int | None  # the most efficient level meeting the SLOs; None when no level does
    best_energy_per_token_wh: float | None
    best_output_tps: float | None
    best_e2e_p95_s: float | None
    peak_output_tps: float | None


def summarize_sweeps(levels: pl.DataFrame, model: str | None = None) -> list[SweepSummary]:
    """One summary per stored sweep (rows of `Store.sweep_levels`), newest first; `model` narrows them."""
    if model is not None:
        levels = levels.filter(pl.col("model") == model)
    summaries = []
    for (sweep_id,), sweep in levels.group_by("sweep_id", maintain_order=True):
        rows = levels_of(sweep.sort("concurrency"))
        meeting = [row for row in rows if row.energy_per_token_wh is not None
                   and row.goodput_fraction is not None and row.goodput_fraction >= GOODPUT_TARGET]
        best = min(meeting, key=lambda row: row.energy_per_token_wh, default=None)
        first = rows[0]
        throughputs = [row.output_tps for row in rows if row.output_tps is not None]
        summaries.append(SweepSummary(
            sweep_id=str(sweep_id), model=first.model, backend=first.backend, base_url=first.base_url,
            created_at=first.created_at, levels=tuple(row.concurrency for row in rows), knee=find_knee(rows),
            slo_ttft_s=first.slo_ttft_s, slo_itl_s=first.slo_itl_s,
            best_level=best.concurrency if best else None,
            best_energy_per_token_wh=best.energy_per_token_wh if best else None,
            best_output_tps=best.output_tps if best else None, best_e2e_p95_s=best.e2e_p95_s if best else None,
            peak_output_tps=max(throughputs, default=None),
        ))
    return summaries
