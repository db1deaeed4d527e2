"""What a configuration is: everything that changes the numbers, and its readable label.

Runs are pooled into one mean only when they share every field of
`CONFIG_KEYS`: the weights (model, quantization), the server (backend), the
machine (`machines.machine_key` of the stored environment) and the generation
settings that change the cost of a run (max tokens, temperature, the engine's threads). Adding a
field is one line here; every grouping (Results, Recommendations, `compare`,
`recommend`) and every label follow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from envirollm_core.machines import machine_label

CONFIG_KEYS: tuple[str, ...] = (
    "model",
    "backend",
    "quantization",
    "machine",
    "max_tokens",
    "temperature",
    "engine_threads",
)
CONFIG_COLUMN = "configuration"


def _part(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key == "machine":
        return machine_label(value)
    if key == "max_tokens":
        return f"{value} tok"
    if key == "temperature":
        return f"T {value:g}"
    if key == "engine_threads":
        return f"{value} threads"
    return str(value)


def config_label(row: Mapping[str, Any]) -> str:
    """`gemma-3-270m Q4_K_M · embedded · this machine · 128 tok · T 0.7`: the fields of `CONFIG_KEYS`
    a row has, model and quantization first, unknown (null) ones left out."""
    head = " ".join(str(row[key]) for key in ("model", "quantization") if row.get(key) is not None)
    tail = [_part(key, row.get(key)) for key in CONFIG_KEYS if key not in ("model", "quantization")]
    return " · ".join([head, *(part for part in tail if part)])


def config_label_expr() -> pl.Expr:
    """`config_label` of each row of a frame holding the `CONFIG_KEYS` (a stats frame: a handful of rows)."""
    return pl.struct(list(CONFIG_KEYS)).map_elements(config_label, return_dtype=pl.String).alias(CONFIG_COLUMN)
