"""Pass rates of verified tasks per model and per task family, with 95 % Wilson intervals, beside energy per token.

A task run passes when every one of its checks passed (quality 100 by `verified`). Only runs graded by
an executed check count: a pass rate never mixes in a judge's or the heuristic's scores.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from envirollm_core.metrics import METRIC
from envirollm_core.quality.checks import VERIFIED_METHOD
from envirollm_core.records import RunResult

Z_95 = 1.959964
ALL_FAMILIES = "all"


@dataclass(frozen=True)
class PassRate:
    model: str
    family: str  # a task family, or "all"
    passed: int
    runs: int
    low: float  # 95 % Wilson interval of the pass rate, 0-1
    high: float
    energy_per_token_wh: float | None  # mean over the same runs; None when no run measured it

    @property
    def rate(self) -> float:
        return self.passed / self.runs


def wilson_interval(passed: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval: sound at 0 % and 100 % and for a few dozen tasks, where the normal one is not."""
    if total == 0:
        return 0.0, 1.0
    p = passed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def task_family(run: RunResult) -> str:
    from envirollm_core.benchmark.suites import suite_task

    task = suite_task(run.preset) if run.preset else None
    if task is not None:
        return task.family
    return str(run.quality_detail.get("check_type") or "preset")


def pass_rates(runs: Iterable[RunResult]) -> list[PassRate]:
    """Per model: one row per family, then one for all its verified runs."""
    verified = [r for r in runs if r.status == "ok" and r.quality_method == VERIFIED_METHOD and r.quality_score is not None]
    rows: list[PassRate] = []
    for model in dict.fromkeys(r.model for r in verified):
        mine = [r for r in verified if r.model == model]
        families = sorted({task_family(r) for r in mine})
        for family in [*families, ALL_FAMILIES]:
            chosen = mine if family == ALL_FAMILIES else [r for r in mine if task_family(r) == family]
            passed = sum(r.quality_score >= 100.0 for r in chosen)
            energies = [r.energy_per_token_wh for r in chosen if r.energy_per_token_wh is not None]
            rows.append(PassRate(model, family, passed, len(chosen), *wilson_interval(passed, len(chosen)),
                                 statistics.fmean(energies) if energies else None))
    return rows


def pass_rate_lines(runs: Iterable[RunResult]) -> list[str]:
    """The pass rates as lines a person reads under a results table."""
    lines = []
    for row in pass_rates(runs):
        per_token = METRIC["energy_per_token_wh"]
        energy = (f", {per_token.format(row.energy_per_token_wh)} {per_token.unit}"
                  if row.energy_per_token_wh is not None else "")
        lines.append(f"verified pass rate {row.model} [{row.family}]: {row.passed}/{row.runs} = {row.rate:.0%} "
                     f"(95 % CI {row.low:.0%}-{row.high:.0%}){energy}")
    return lines
