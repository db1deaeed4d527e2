"""Values no measurement can take, refused before a run is stored from a file.

Energy, energy per token, token counts, durations, speeds, power, CPU load and
memory are never below zero: a file that says so was edited by hand or made by
a broken tool, and a negative energy would rank first in every recommendation.
Net energy is the exception: it is gross minus the idle baseline times the
duration, so a run that drew less than idle has a negative net energy.
(Non-finite numbers are refused by the cell parsers themselves; servers'
negative counts and rates become null in `backends.base.server_count`.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from envirollm_core.records import RunResult

NON_NEGATIVE_FIELDS: tuple[str, ...] = (
    "ttft_s", "e2e_s", "decode_tps", "server_decode_tps", "server_prompt_tps", "itl_p50_s", "itl_p95_s",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "energy_wh", "energy_per_token_wh",
    "avg_power_w", "peak_power_w", "cpu_percent_avg", "ram_used_mb_peak", "server_peak_rss_mb", "server_gpu_mem_mb",
    "max_tokens",
)
NON_NEGATIVE_TRACE_FIELDS: tuple[str, ...] = (
    "t_s", "cpu_percent", "ram_used_mb", "cpu_power_w", "gpu_power_w", "gpu_util_percent", "gpu_mem_used_mb",
)
# The original EnviroLLM's numeric columns that are measurements of the same kinds.
NON_NEGATIVE_ORIGINAL_COLUMNS: tuple[str, ...] = (
    "Energy (Wh)", "Energy/Token (Wh)", "Duration (s)", "Speed (tok/s)", "CPU %", "Memory %", "Power (W)",
)


def _negative(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0


def negative_values(run: RunResult) -> Iterator[tuple[str, str]]:
    """(column, what is wrong) for each value of `run` that cannot be below zero but is."""
    for name in NON_NEGATIVE_FIELDS:
        value = getattr(run, name)
        if _negative(value):
            yield name, f"{value!r} is negative; it cannot be below zero"
    for index, component in enumerate(run.components, start=1):
        if _negative(component.energy_wh):
            yield "components", f"component {index} ({component.component}) has negative energy_wh {component.energy_wh!r}"
    for index, point in enumerate(run.trace, start=1):
        for name in NON_NEGATIVE_TRACE_FIELDS:
            if _negative(getattr(point, name)):
                yield "trace", f"sample {index}: {name} {getattr(point, name)!r} is negative"


def negative_cells(values: Mapping[str, Any], columns: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(column, what is wrong) for each cell of `columns` holding a negative number (as text or number)."""
    for column in columns:
        raw = values.get(column)
        try:
            number = float(raw) if isinstance(raw, str) and raw.strip() else raw
        except ValueError:
            continue  # not a number at all: the cell's own parser says so
        if _negative(number):
            yield column, f"{raw!r} is negative; it cannot be below zero"
