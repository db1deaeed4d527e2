"""Which configuration to use, decided within one prompt group or one task, never across prompts.

Energy per token and quality depend on the prompt far more than on anything
else (the paper's Table 1), so a pick is only made among configurations that
answered the same prompt(s). Picks are made on each configuration's mean:
- best overall: the most quality per energy (quality score / energy per token);
- most efficient: the lowest energy per token among configurations whose mean
  quality reaches the floor;
- fastest: the highest decode tokens/s;
- highest quality: the highest mean quality score (less energy breaks a tie).
The Pareto frontier holds every configuration no other beats on both quality
(higher) and energy per token (lower).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from envirollm_core.analysis.configuration import config_label
from envirollm_core.analysis.quality_methods import methods_of_stats, mixed_methods_warning
from envirollm_core.machines import machine_label
from envirollm_core.analysis.stats import CONFIG_KEYS, group_stats, require_columns, single_stream_runs
from envirollm_core.errors import UsageError
from envirollm_core.metrics import METRIC

GroupBy = Literal["prompt_hash", "preset"]
PickKind = Literal["best_overall", "most_efficient", "fastest", "highest_quality"]
PICK_TITLES: dict[str, str] = {
    "best_overall": "best overall (quality per energy)",
    "most_efficient": "most efficient",
    "fastest": "fastest",
    "highest_quality": "highest quality",
}
QUALITY_FLOOR = 70.0

_QUALITY = "quality_score_mean"
_ENERGY = "energy_per_token_wh_mean"
_SPEED = "decode_tps_mean"


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration's means within a group."""

    model: str
    backend: str
    quantization: str | None
    configuration: dict[str, Any]  # every field of CONFIG_KEYS (machine, max tokens, temperature...)
    label: str
    n_runs: int
    energy_per_token_wh: float | None
    energy_wh: float | None
    decode_tps: float | None
    ttft_s: float | None
    quality_score: float | None
    completion_tokens: float | None


@dataclass(frozen=True)
class Pick:
    kind: PickKind
    config: ConfigSummary
    reason: str


@dataclass(frozen=True)
class GroupRecommendation:
    """The picks and the Pareto frontier of one prompt group (or task)."""

    group_by: GroupBy
    group: str
    label: str
    machine: str | None  # None: the group was asked to span machines (across_machines)
    measured_on: str  # `this machine`, another machine's fingerprint, or `across 2 machines`
    n_configs: int
    picks: tuple[Pick, ...]
    pareto: tuple[ConfigSummary, ...]
    notes: tuple[str, ...]
    quality_methods: tuple[str, ...] = ()  # the methods behind the group's quality scores
    quality_methods_mixed: str | None = None  # the warning when more than one method made them, else None


def _summary(row: dict) -> ConfigSummary:
    return ConfigSummary(
        model=row["model"],
        backend=row["backend"],
        quantization=row["quantization"],
        configuration={key: row.get(key) for key in CONFIG_KEYS},
        label=config_label(row),
        n_runs=row["n_runs"],
        energy_per_token_wh=row[_ENERGY],
        energy_wh=row["energy_wh_mean"],
        decode_tps=row[_SPEED],
        ttft_s=row["ttft_s_mean"],
        quality_score=row[_QUALITY],
        completion_tokens=row["completion_tokens_mean"],
    )


def pareto_frontier(stats: pl.DataFrame, quality: str = _QUALITY, cost: str = _ENERGY) -> pl.DataFrame:
    """The rows no other row beats on both `quality` (higher) and `cost` (lower), cheapest first."""
    candidates = stats.filter(pl.col(quality).is_not_null() & pl.col(cost).is_not_null()).sort(
        [cost, quality], descending=[False, True], maintain_order=True
    )
    return candidates[_frontier_indices(candidates[quality].to_list())]


def _frontier_indices(qualities_cheapest_first: list[float]) -> list[int]:
    # Cheapest first: a row is on the frontier when it beats the quality of every cheaper row.
    frontier, best_quality = [], float("-inf")
    for index, quality in enumerate(qualities_cheapest_first):
        if quality > best_quality:
            frontier.append(index)
            best_quality = quality
    return frontier


def _best(rows: list[dict], key: str, *, highest: bool) -> dict | None:
    """The row with the highest (or lowest) `key`; less energy per token breaks a tie."""
    present = [row for row in rows if row[key] is not None]
    if not present:
        return None
    sign = -1 if highest else 1
    return min(present, key=lambda row: (sign * row[key], row[_ENERGY] if row[_ENERGY] is not None else float("inf")))


def _shown(column: str, value: float) -> str:
    """`85`, `0.583 mWh/token`, `38.3 tokens/s`: a figure as every table prints it, with its unit (a score none)."""
    metric = METRIC[column]
    return metric.format(value) if metric.figure_unit == "score" else f"{metric.format(value)} {metric.unit}"


def _picks(rows: list[dict], quality_floor: float) -> tuple[list[Pick], list[str]]:
    """The four picks among one group's configurations (`group_stats` rows, a handful: plain Python)."""
    picks: list[Pick] = []
    notes: list[str] = []
    rated = [{**row, "value": row[_QUALITY] / row[_ENERGY]} for row in rows
             if row[_QUALITY] is not None and row[_ENERGY] is not None and row[_ENERGY] > 0]
    best = _best(rated, "value", highest=True)
    if best:
        picks.append(Pick("best_overall", _summary(best),
                          f"quality {_shown('quality_score', best[_QUALITY])} at {_shown('energy_per_token_wh', best[_ENERGY])}"))
    else:
        notes.append("no configuration has both a quality score and energy per token: no best overall")
    measured = [row for row in rows if row[_ENERGY] is not None]
    if all(row[_QUALITY] is None for row in rows):
        eligible, floor_text = measured, "no quality scores, so no quality floor"
        notes.append("no run has a quality score; the efficiency pick ignores quality")
    else:
        eligible = [row for row in measured if row[_QUALITY] is not None and row[_QUALITY] >= quality_floor]
        floor_text = f"quality >= {quality_floor:g}"
    efficient = _best(eligible, _ENERGY, highest=False)
    if efficient:
        picks.append(Pick("most_efficient", _summary(efficient),
                          f"{_shown('energy_per_token_wh', efficient[_ENERGY])} ({floor_text})"))
    elif measured:
        notes.append(f"no configuration with energy per token reaches quality {quality_floor:g}")
    fastest = _best(rows, _SPEED, highest=True)
    if fastest:
        picks.append(Pick("fastest", _summary(fastest), f"{_shown('decode_tps', fastest[_SPEED])} decode"))
    else:
        notes.append("no fastest pick: no configuration here has a measured decode speed (runs imported from the "
                     "original EnviroLLM's CSV record tokens over the whole request, TTFT included, not a decode rate)")
    top = _best(rows, _QUALITY, highest=True)
    if top:
        picks.append(Pick("highest_quality", _summary(top), f"quality {_shown('quality_score', top[_QUALITY])}"))
    return picks, notes


def _complete_configurations(
    runs: pl.DataFrame, group_keys: list[str]
) -> tuple[pl.DataFrame, dict[tuple[Any, ...], list[str]]]:
    """Per task, keep the configurations that answered every one of its prompts, so all are compared on
    the same prompts; say which were left out."""
    keys = list(dict.fromkeys([*group_keys, *CONFIG_KEYS]))
    coverage = (
        runs.group_by(keys).agg(pl.col("prompt_hash").n_unique().alias("covered"))
        .join(runs.group_by(group_keys).agg(pl.col("prompt_hash").n_unique().alias("prompts")), on=group_keys,
              nulls_equal=True)
    )
    notes: dict[tuple[Any, ...], list[str]] = {}
    for row in coverage.filter(pl.col("covered") < pl.col("prompts")).iter_rows(named=True):
        notes.setdefault(tuple(row[key] for key in group_keys), []).append(
            f"{config_label(row)} left out: it ran {row['covered']} of the task's {row['prompts']} prompts"
        )
    complete = coverage.filter(pl.col("covered") == pl.col("prompts")).select(keys)
    return runs.join(complete, on=keys, how="semi", nulls_equal=True), notes


def recommend(
    frame: pl.DataFrame,
    *,
    by: GroupBy = "prompt_hash",
    quality_floor: float = QUALITY_FLOOR,
    group: str | None = None,
    across_machines: bool = False,
) -> list[GroupRecommendation]:
    """Picks and Pareto frontier for each prompt group (`by="prompt_hash"`) or task (`by="preset"`) on each
    machine, most recently run first, from a runs frame (`Store.runs_frame()` or `runs_to_frame`); `group`
    limits it to one. A laptop's and a workstation's runs are picked among together only `across_machines`
    (and the group then says so)."""
    if by not in ("prompt_hash", "preset"):
        raise UsageError(f"recommendations group by prompt_hash or preset, not {by!r}")
    require_columns(frame, [by, "prompt_hash", "status", *CONFIG_KEYS])
    ok = single_stream_runs(frame).filter((pl.col("status") == "ok") & pl.col(by).is_not_null())
    if group is not None:
        ok = ok.filter(pl.col(by) == group)
    group_keys = [by] if across_machines else [by, "machine"]
    notes: dict[tuple[Any, ...], list[str]] = {}
    if by == "preset":
        ok, notes = _complete_configurations(ok, group_keys)
    stats = group_stats(ok, by=list(dict.fromkeys([by, *CONFIG_KEYS])))
    results = []
    for keys, group_rows in stats.sort("last_run_at", descending=True).group_by(group_keys, maintain_order=True):
        rows = group_rows.to_dicts()
        key = keys[0]
        # A task is shown by its name, a prompt group by its prompt's first words.
        label = key if by == "preset" else next((row["prompt_preview"] for row in rows if row.get("prompt_preview")), key)
        machines = sorted({str(row["machine"]) for row in rows})
        machine = None if across_machines else rows[0]["machine"]
        measured_on = (f"across {len(machines)} machines" if len(machines) > 1 else machine_label(machines[0]))
        picks, pick_notes = _picks(rows, quality_floor)
        methods = methods_of_stats(group_rows)
        frontier = pareto_frontier(group_rows).to_dicts()
        results.append(
            GroupRecommendation(
                group_by=by, group=key, label=label, machine=machine, measured_on=measured_on, n_configs=len(rows), picks=tuple(picks),
                pareto=tuple(_summary(row) for row in frontier), notes=tuple(notes.get(keys, []) + pick_notes),
                quality_methods=tuple(methods), quality_methods_mixed=mixed_methods_warning(methods),
            )
        )
    return results
