"""Real use as the metering proxy recorded it: energy, CO2e and cost per model, client or day, beside what
the recommended configuration would have cost for the same tasks.

"The same tasks": a request's task is the preset the router matched for it, else its prompt group; where
the store's benchmarks recommend a configuration for that task (least energy per token above the quality
floor, analysis/recommend.py), the request's tokens are priced at that configuration's energy per token;
elsewhere nothing better is known and its own energy is counted. `comparable_requests` says how many had
a recommendation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import polars as pl

from envirollm_core.analysis.carbon import Tariff, footprint
from envirollm_core.analysis.recommend import QUALITY_FLOOR, recommend
from envirollm_core.errors import UsageError
from envirollm_core.figures import figure_expr, round_frame
from envirollm_core.proxy.router import ROUTING_COLUMNS
from envirollm_core.units import MWH_PER_WH

UsageBy = Literal["model", "client", "day"]
USAGE_BY: tuple[str, ...] = ("model", "client", "day")
_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LIVE_USE = "live use"
_LIVE_COLUMNS = ("source", "created_at", "model", "client", "status", "completion_tokens", "energy_wh", "ttft_s",
                 "prompt_hash", "live_detail")


def parse_since(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `2w`, `90s` -> a timedelta."""
    match = _SINCE.fullmatch(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--since must be a positive duration like 7d, 12h, 30m or 2w, not {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


@dataclass(frozen=True)
class UsageRow:
    key: str
    requests: int
    failed: int
    completion_tokens: int
    energy_wh: float | None
    co2e_g: float | None
    cost: float | None
    recommended_energy_wh: float | None
    recommended_co2e_g: float | None
    recommended_cost: float | None
    comparable_requests: int
    routed_requests: int


def live_runs(store, since: timedelta | None = None) -> pl.DataFrame:
    """The proxy's runs (newest first) since `since` ago, with each one's task."""
    frame = store.runs_frame(columns=_LIVE_COLUMNS).filter(pl.col("source") == LIVE_USE)
    if since is not None:
        cutoff = (datetime.now(timezone.utc) - since).replace(tzinfo=None)
        frame = frame.filter(pl.col("created_at") >= cutoff)
    return frame.with_columns(
        pl.col("live_detail").str.json_path_match("$.route.task").alias("task"),
        pl.col("live_detail").str.json_path_match("$.route.chosen").alias("routed_to"),
        pl.col("live_detail").str.json_path_match("$.route.reason").alias("route_reason"),
    )


def recommended_energy_per_token(store, quality_floor: float = QUALITY_FLOOR) -> tuple[dict[str, float], dict[str, float]]:
    """(by task, by prompt group): the recommended configuration's energy per token, from benchmark runs."""
    bench = store.runs_frame(columns=ROUTING_COLUMNS).filter(pl.col("backend") != "proxy")
    found: list[dict[str, float]] = []
    for by in ("preset", "prompt_hash"):
        best: dict[str, float] = {}
        for group in recommend(bench, by=by, quality_floor=quality_floor, across_machines=True) if bench.height else []:
            pick = next((p for p in group.picks if p.kind == "most_efficient"), None)
            if pick and pick.config.energy_per_token_wh is not None and pick.config.quality_score is not None:
                best[group.group] = pick.config.energy_per_token_wh
        found.append(best)
    return found[0], found[1]


def usage(store, tariff: Tariff, *, since: timedelta | None = None, by: UsageBy = "model",
          quality_floor: float = QUALITY_FLOOR) -> list[UsageRow]:
    if by not in USAGE_BY:
        raise UsageError(f"--by must be one of {', '.join(USAGE_BY)}, not {by!r}")
    runs = live_runs(store, since)
    by_task, by_prompt = recommended_energy_per_token(store, quality_floor)
    runs = runs.with_columns(
        pl.coalesce(
            pl.col("task").replace_strict(by_task, default=None, return_dtype=pl.Float64),
            pl.col("prompt_hash").replace_strict(by_prompt, default=None, return_dtype=pl.Float64),
        ).alias("recommended_wh_per_token"),
        pl.col("created_at").dt.strftime("%Y-%m-%d").alias("day"),
        pl.col("client").fill_null("unknown"),
    ).with_columns(
        (pl.col("recommended_wh_per_token") * pl.col("completion_tokens")).alias("recommended_wh"),
    )
    grouped = runs.group_by(by).agg(
        pl.len().alias("requests"),
        (pl.col("status") != "ok").sum().alias("failed"),
        pl.col("completion_tokens").fill_null(0).sum().alias("completion_tokens"),
        pl.col("energy_wh").sum().alias("energy_wh"),
        pl.col("energy_wh").is_not_null().any().alias("measured"),
        pl.coalesce("recommended_wh", "energy_wh").sum().alias("recommended_energy_wh"),
        pl.col("recommended_wh").is_not_null().sum().alias("comparable_requests"),
        pl.col("routed_to").is_not_null().sum().alias("routed_requests"),
    ).sort(by, descending=by == "day")
    rows = []
    for row in grouped.iter_rows(named=True):
        energy = row["energy_wh"] if row["measured"] else None
        recommended = row["recommended_energy_wh"] if energy is not None else None
        actual, better = (footprint(energy, tariff) if energy is not None else None,
                          footprint(recommended, tariff) if recommended is not None else None)
        rows.append(UsageRow(
            key=str(row[by]), requests=row["requests"], failed=row["failed"],
            completion_tokens=row["completion_tokens"], energy_wh=energy,
            co2e_g=actual.co2_g if actual else None, cost=actual.cost if actual else None,
            recommended_energy_wh=recommended, recommended_co2e_g=better.co2_g if better else None,
            recommended_cost=better.cost if better else None,
            comparable_requests=row["comparable_requests"], routed_requests=row["routed_requests"],
        ))
    return rows


def usage_frame(rows: list[UsageRow], by: UsageBy, currency: str) -> pl.DataFrame:
    """The usage rows as a page shows them, units in the column names."""
    money = f" ({currency})" if currency else ""
    frame = pl.DataFrame(
        {
            by: [row.key for row in rows],
            "requests": [row.requests for row in rows],
            "failed": [row.failed for row in rows],
            "tokens": [row.completion_tokens for row in rows],
            "energy (Wh)": [row.energy_wh for row in rows],
            "CO2e (g)": [row.co2e_g for row in rows],
            f"cost{money}": [row.cost for row in rows],
            "recommended (Wh)": [row.recommended_energy_wh for row in rows],
            f"recommended cost{money}": [row.recommended_cost for row in rows],
            "comparable": [row.comparable_requests for row in rows],
            "routed": [row.routed_requests for row in rows],
        },
        schema_overrides={"energy (Wh)": pl.Float64, "CO2e (g)": pl.Float64, f"cost{money}": pl.Float64,
                          "recommended (Wh)": pl.Float64, f"recommended cost{money}": pl.Float64},
    )
    return round_frame(frame, {"energy (Wh)": "Wh", "CO2e (g)": "g", f"cost{money}": "money", "recommended (Wh)": "Wh",
                               f"recommended cost{money}": "money"})


def requests_frame(runs: pl.DataFrame, limit: int = 200) -> pl.DataFrame:
    """The latest requests with the router's decision and its reason."""
    return runs.head(limit).select(
        pl.col("created_at").alias("when (UTC)"), "model", "client", "status",
        pl.col("completion_tokens").alias("tokens"), figure_expr(pl.col("energy_wh") * MWH_PER_WH, "mWh").alias("energy (mWh)"),
        pl.col("routed_to").alias("routed to"), pl.col("route_reason").alias("why"),
    )
