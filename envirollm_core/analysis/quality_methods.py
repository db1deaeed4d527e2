"""Whether the quality scores shown side by side were made by one method or several.

A verified pass rate, an LLM judge's rubric score and the heuristic's rough form score are all 0-100, but not
on one scale: 80 from the heuristic says nothing against 60 from executed checks. Every place that compares
qualities (the CLI's `compare` and `recommend`, the charts with a quality axis, the Recommendations page) says
so with the one text made here.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

QUALITY_METHODS = "quality_methods"  # group_stats' column: the methods behind a configuration's scores


def scored_methods(frame: pl.DataFrame) -> list[str]:
    """The distinct methods behind the quality scores of `frame`'s completed runs, sorted; [] without the
    `quality_method` column."""
    if "quality_method" not in frame.columns:
        return []
    scored = frame.filter((pl.col("status") == "ok") & pl.col("quality_score").is_not_null()) \
        if "status" in frame.columns else frame.filter(pl.col("quality_score").is_not_null())
    return sorted(scored["quality_method"].drop_nulls().unique().to_list())


def methods_of_stats(stats: pl.DataFrame) -> list[str]:
    """The distinct methods behind the scores of `group_stats` rows (their `quality_methods` lists)."""
    if QUALITY_METHODS not in stats.columns:
        return []
    return sorted({method for methods in stats[QUALITY_METHODS].to_list() for method in (methods or []) if method})


def mixed_methods_warning(methods: Iterable[str | None]) -> str | None:
    """The warning to show beside qualities made by more than one method; None when one method (or none) made
    them all."""
    distinct = sorted({method for method in methods if method})
    if len(distinct) < 2:
        return None
    return (f"quality scores made by {len(distinct)} different methods ({', '.join(distinct)}) are not on one "
            f"scale: compare qualities only between configurations scored by the same method")
