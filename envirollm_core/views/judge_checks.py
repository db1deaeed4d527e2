"""The Settings page's list of judge checks."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from envirollm_core.quality.judge_checks import JudgeCheckRecord


def judge_checks_frame(records: Iterable[JudgeCheckRecord]) -> pl.DataFrame:
    """Each judge's last judge-check, as the Settings page lists them."""
    return pl.DataFrame(
        [{"judge": r.judge, "last check": "passed" if r.passed else "FAILED: not used, the heuristic is",
          "checked at (UTC)": r.checked_at,
          "canaries": ", ".join(f"{name} {'ok' if ok else 'unscored' if ok is None else 'FAIL'}"
                                for name, ok in r.canaries.items())}
         for r in records],
        schema={"judge": pl.String, "last check": pl.String, "checked at (UTC)": pl.String, "canaries": pl.String},
    )
