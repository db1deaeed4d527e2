"""Core data shaped for the app's pages, so that a page only reads state and renders.

Nothing here calls Streamlit: the live monitor's frame from the shared
sampler's recent samples, the latest power per component with its source, the
detected servers, the results table with units in its columns, a run's energy
by component and its samples, and export bytes for a download button.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from envirollm_core.analysis import (
    FitEstimate,
    Tariff,
    batch_trends,
    group_stats,
    monthly,
    pareto_frontier,
)
from envirollm_core.analysis.recommend import PICK_TITLES, GroupRecommendation
from envirollm_core.analysis.speed import DEFAULT_MIN_TPS, fit_verdict
from envirollm_core.analysis.stats import CONFIG_KEYS
from envirollm_core.analysis.stats import METRICS as STATS_METRICS
from envirollm_core.charts import METRICS as CHART_METRICS
from envirollm_core.charts import config_label
from envirollm_core.figures import RUN_UNITS, round_figure, round_frame
from envirollm_core.quality.judge_checks import JudgeCheckRecord
from envirollm_core.records import RunResult
from envirollm_core.store import Store
from envirollm_core.store.store import with_short_ids
from envirollm_core.store.exchange import ExportFormat
from envirollm_core.telemetry.processes import LlmServer
from envirollm_core.telemetry.prometheus import RemotePower
from envirollm_core.telemetry.sampler import ComponentInfo, Sample

MAX_POINTS_PER_SERIES = 600  # a live chart redrawn every second stays light in the browser
_MIB_PER_GB = 1024  # RAM and GPU memory are sampled in MiB; the charts show GiB, labelled GB as tools do

# Monitor panels: title -> unit on the y axis.
PANELS: dict[str, str] = {
    "Power": "W",
    "CPU": "% of all cores",
    "RAM": "GB used",
    "GPU utilization": "%",
    "GPU memory": "GB used",
    "GPU temperature": "°C",
}
MONITOR_SCHEMA = {"panel": pl.String, "series": pl.String, "t_s": pl.Float64, "value": pl.Float64}


_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\\[-`{-~])")


def plain(text: str) -> str:
    """Text with every ASCII punctuation mark backslash-escaped, so Streamlit's markdown shows it as typed.

    For messages that quote a server or a file (`st.error`, `st.info`): a model name or an error from
    a server is not ours to render as links, emphasis or HTML."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def plain_formats(frame: pl.DataFrame) -> dict[str, str]:
    """Column formats showing each number of `frame` as it is ("plain"), for a frame already rounded by the one
    rule (`figures.round_frame`): Streamlit's default would cut 0.000583 to 0.0006 and add thousands separators."""
    return {name: "plain" for name, dtype in frame.schema.items() if dtype.is_numeric()}


def power_series_label(info: ComponentInfo) -> str:
    """`cpu (estimate)`, `gpu:0 (counter)`: every power figure carries its source."""
    return f"{info.name} ({info.source})"


def monitor_frame(samples: Sequence[Sample], components: Sequence[ComponentInfo]) -> pl.DataFrame:
    """Long frame (panel, series, t_s, value) of the samples, `t_s` counted back from the newest (0 = now).

    A reading the hardware does not give is left out, never drawn as 0."""
    if not samples:
        return pl.DataFrame(schema=MONITOR_SCHEMA)
    stride = max(1, -(-len(samples) // MAX_POINTS_PER_SERIES))
    picked = list(samples[::-1][::stride])[::-1]  # keep the newest sample, thin out the older ones
    now = samples[-1].time_s
    labels = {info.name: power_series_label(info) for info in components}
    rows: list[tuple[str, str, float, float | None]] = []
    for sample in picked:
        t_s = sample.time_s - now
        for name, watts in sample.power_w:
            rows.append(("Power", labels.get(name, name), t_s, watts))
        rows.append(("CPU", "CPU", t_s, sample.cpu_percent))
        rows.append(("RAM", "RAM", t_s, sample.ram_used_mb / _MIB_PER_GB))
        for gpu in sample.gpus:
            series = f"gpu:{gpu.index}"
            rows.append(("GPU utilization", series, t_s, gpu.util_percent))
            rows.append(("GPU memory", series, t_s, gpu.mem_used_mb / _MIB_PER_GB if gpu.mem_used_mb is not None else None))
            rows.append(("GPU temperature", series, t_s, gpu.temp_c))
    frame = pl.DataFrame(rows, schema=MONITOR_SCHEMA, orient="row")
    return frame.filter(pl.col("value").is_not_null())


@dataclass(frozen=True)
class PowerNow:
    """A component's latest power reading with where it comes from (None: not measured)."""

    component: str
    watts: float | None
    source: str
    note: str


def power_now(samples: Sequence[Sample], components: Sequence[ComponentInfo]) -> list[PowerNow]:
    latest = dict(samples[-1].power_w) if samples else {}
    return [PowerNow(info.name, latest.get(info.name), info.source, info.note) for info in components]


def servers_frame(servers: Sequence[LlmServer]) -> pl.DataFrame:
    """The detected LLM servers, one row each, their children folded in."""
    frame = pl.DataFrame(
        [
            {
                "server": server.name,
                "pid": server.pid,
                "process": server.process_name,
                "CPU (% of one core)": server.cpu_percent,
                "RSS (MB)": server.rss_mb,
                "GPU memory (MB)": server.gpu_mem_mb,
                "threads": server.threads,
                "child processes": len(server.children),
                "command": " ".join(server.cmdline)[:200],
            }
            for server in servers
        ],
        schema={
            "server": pl.String, "pid": pl.Int64, "process": pl.String, "CPU (% of one core)": pl.Float64,
            "RSS (MB)": pl.Float64, "GPU memory (MB)": pl.Float64, "threads": pl.Int64,
            "child processes": pl.Int64, "command": pl.String,
        },
    )
    return round_frame(frame, {"CPU (% of one core)": "%", "RSS (MB)": "MB", "GPU memory (MB)": "MB"})


# Gross minus the idle baseline times the duration: below zero when a run drew less than idle.
NET_ENERGY = "net energy (Wh, vs idle; may be negative)"

# Number formats for the columns of `runs_table` (pages turn them into column_config): `runs_table` has already
# rounded each figure by the one rule (figures.py), so a column shows its value as it is ("plain": no thousands
# separators, no fixed decimals), the same digits the CLI prints, and still sorts as a number.
TABLE_FORMATS: dict[str, str] = {
    name: "plain"
    for name in ("TTFT (s)", "decode (tokens/s)", "end-to-end (tokens/s)", "tokens", "energy (Wh)", NET_ENERGY,
                 "± energy (Wh)", "energy per token (mWh)", "avg power (W)", "quality (0-100)", "#")
}
DERIVED_TOKENS = "derived"  # `token_count_source` of a count worked out as energy / energy per token


def with_derived_figures(frame: pl.DataFrame) -> pl.DataFrame:
    """A runs frame with what its own columns imply where the run did not record it, each labelled.

    The original EnviroLLM's files keep energy, energy per token and a speed over the whole request, but no
    token count and no decode rate: the count is energy / energy per token (`token_count_source` "derived"),
    and `e2e_tps` is tokens over the whole request (TTFT included), never passed off as a decode rate."""
    derivable = (pl.col("completion_tokens").is_null() & pl.col("energy_wh").is_not_null()
                 & (pl.col("energy_per_token_wh") > 0))
    frame = frame.with_columns(
        pl.when(derivable).then((pl.col("energy_wh") / pl.col("energy_per_token_wh")).round(0).cast(pl.Int64))
        .otherwise(pl.col("completion_tokens")).alias("completion_tokens"),
        pl.when(derivable).then(pl.lit(DERIVED_TOKENS)).otherwise(pl.col("token_count_source"))
        .alias("token_count_source"),
    )
    return frame.with_columns(
        pl.when(pl.col("e2e_s") > 0).then(pl.col("completion_tokens") / pl.col("e2e_s")).alias("e2e_tps")
    )


def runs_table(frame: pl.DataFrame) -> pl.DataFrame:
    """A runs frame (`Store.runs_frame` or `runs_to_frame`) as pages show it: units in the headers, the
    columns a person compares first (model, speed, energy per token, quality) before the details, and each run
    named by its shortest unique id (`Store.with_short_ids`; else unique within the frame)."""
    frame = with_derived_figures(frame).with_columns(
        (pl.col("energy_per_token_wh") * 1000).alias("energy_per_token_mwh"))
    frame = round_frame(frame, RUN_UNITS)
    if "short_id" not in frame.columns:
        frame = with_short_ids(frame)
    shown: dict[str, pl.Expr] = {
        "model": pl.col("model"),
        "decode (tokens/s)": pl.col("decode_tps"),
        "energy per token (mWh)": pl.col("energy_per_token_mwh"),
        "quality (0-100)": pl.col("quality_score"),
        "time (UTC)": pl.col("created_at"),
        "backend": pl.col("backend"),
        "quantization": pl.col("quantization"),
        "status": pl.col("status"),
        "task": pl.col("preset"),
        "#": pl.col("repeat_index") + 1,
        "TTFT (s)": pl.col("ttft_s"),
        "end-to-end (tokens/s)": pl.col("e2e_tps"),
        "tokens": pl.col("completion_tokens"),
        "tokens by": pl.col("token_count_source"),
        "energy (Wh)": pl.col("energy_wh"),
        NET_ENERGY: pl.col("energy_net_wh"),
        "± energy (Wh)": pl.col("energy_uncertainty_wh"),
        "avg power (W)": pl.col("avg_power_w"),
        "quality by": pl.col("quality_method"),
        "notes": pl.col("notes"),
        "error": pl.col("error"),
        "run id": pl.col("short_id"),
    }
    return frame.select(expression.alias(name) for name, expression in shown.items())


def components_frame(run: RunResult) -> pl.DataFrame:
    """A run's energy by component, each with its source (`counter`, `estimate`...) and note."""
    frame = pl.DataFrame(
        [{"component": c.component, "energy (Wh)": c.energy_wh, "source": c.source, "note": c.note}
         for c in run.components],
        schema={"component": pl.String, "energy (Wh)": pl.Float64, "source": pl.String, "note": pl.String},
    )
    return round_frame(frame, {"energy (Wh)": "Wh"})


TRACE_PANELS: dict[str, str] = {"Power": "W", "Load": "%"}
TRACE_SERIES: dict[str, tuple[str, str]] = {
    "cpu_power_w": ("Power", "CPU power"),
    "gpu_power_w": ("Power", "GPU power"),
    "cpu_percent": ("Load", "CPU %"),
    "gpu_util_percent": ("Load", "GPU utilization %"),
}


def trace_long(trace: pl.DataFrame) -> pl.DataFrame:
    """A run's samples (`Store.trace_frame`) as (panel, series, t_s, value) for `charts.timeline`."""
    parts = [
        trace.select(pl.lit(panel).alias("panel"), pl.lit(series).alias("series"), pl.col("t_s").cast(pl.Float64),
                     pl.col(column).cast(pl.Float64).alias("value"))
        for column, (panel, series) in TRACE_SERIES.items() if column in trace.columns
    ]
    if not parts:
        return pl.DataFrame(schema=MONITOR_SCHEMA)
    return pl.concat(parts).filter(pl.col("value").is_not_null())


def export_bytes(store: Store, fmt: ExportFormat, prompt_hash: str | None = None) -> bytes:
    """The runs exported as the CLI's `envirollm export` writes them, as bytes for a download."""
    handle, name = tempfile.mkstemp(prefix="envirollm-export-", suffix=f".{fmt}")
    os.close(handle)
    path = Path(name)
    try:
        store.export(path, fmt, prompt_hash=prompt_hash)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def prompt_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per prompt of a runs frame (an upload), most recent first, like `Store.prompt_groups`."""
    return (
        frame.group_by("prompt_hash")
        .agg(
            pl.col("prompt_preview").first(), pl.col("preset").drop_nulls().first(), pl.len().alias("n_runs"),
            pl.col("model").n_unique().alias("n_models"), pl.col("created_at").max().alias("last_run_at"),
        )
        .sort("last_run_at", descending=True, nulls_last=True)
    )


def group_label(row: dict) -> str:
    """How a prompt group is named in a select box: its task or its first words, and its size."""
    name = row.get("preset") or row.get("prompt_preview") or row["prompt_hash"]
    return f"{name} · {row['n_runs']} runs, {row['n_models']} models · {row['prompt_hash'][:8]}"


def config_stats(frame: pl.DataFrame, column: str | None = None, value: str | None = None) -> pl.DataFrame:
    """Per-configuration statistics of the runs, or of those whose `column` equals `value` (one prompt or task)."""
    if column is not None:
        frame = frame.filter(pl.col(column) == value)
    return group_stats(frame, by=CONFIG_KEYS)


def monthly_table(
    stats: pl.DataFrame, tariff: Tariff, *, tokens_per_day: float | None = None, requests_per_day: float | None = None
) -> pl.DataFrame:
    """Each configuration's projected month for the stated usage: energy, CO2 and (with a price) cost."""
    rows = []
    for row in stats.with_columns(config_label()).iter_rows(named=True):
        month = monthly(
            tariff, energy_per_token_wh=row["energy_per_token_wh_mean"], tokens_per_day=tokens_per_day,
            energy_per_request_wh=row["energy_wh_mean"], requests_per_day=requests_per_day,
        )
        shown = {
            "configuration": row["configuration"],
            "runs": row["n_runs"],
            "energy per month (kWh)": month.energy_wh / 1000 if month else None,
            "CO2e per month (kg)": month.co2_g / 1000 if month else None,
        }
        if tariff.price_per_kwh is not None:  # no price given: no cost column rather than a column of blanks
            shown[f"cost per month ({tariff.currency})"] = month.cost if month else None
        rows.append(shown)
    units = {"energy per month (kWh)": "kWh", "CO2e per month (kg)": "kg", f"cost per month ({tariff.currency})": "money"}
    return round_frame(pl.DataFrame(rows), units) if rows else pl.DataFrame()


def picks_frame(group: GroupRecommendation) -> pl.DataFrame:
    """A group's picks as a small table: which pick, which configuration, and why."""
    return pl.DataFrame(
        [{"pick": PICK_TITLES[pick.kind], "configuration": pick.config.label, "why": pick.reason,
          "runs": pick.config.n_runs} for pick in group.picks],
        schema={"pick": pl.String, "configuration": pl.String, "why": pl.String, "runs": pl.Int64},
    )


def fits_frame(estimates: Sequence[FitEstimate], min_tps: float = DEFAULT_MIN_TPS) -> pl.DataFrame:
    """Hardware-fit estimates as a table, in the order given, with each one's estimated speed and verdict."""
    frame = pl.DataFrame(
        [{"model": e.model, "Ollama tag": e.ollama_tag, "quantization": e.quantization,
          "verdict": fit_verdict(e, min_tps),
          "decode (tokens/s, estimated)": None if e.decode_tps is None else round_figure(e.decode_tps, "tokens/s"),
          "context (tokens)": e.context_tokens, "weights (GB)": e.weights_gb, "KV cache (GB)": e.kv_cache_gb,
          "overhead (GB)": e.overhead_gb, "total (GB)": e.total_gb, "runs on": e.placement}
         for e in estimates]
    )
    return round_frame(frame, {name: "GB" for name in ("weights (GB)", "KV cache (GB)", "overhead (GB)", "total (GB)")})


@dataclass(frozen=True)
class GroupAnalysis:
    """One prompt group's runs analysed: per-configuration stats, their Pareto frontier, batch means over time."""

    stats: pl.DataFrame
    frontier: pl.DataFrame
    batches: pl.DataFrame


def analyze_group(frame: pl.DataFrame) -> GroupAnalysis:
    """The runs of one prompt (a frame already limited to one `prompt_hash`), with their derived figures."""
    frame = with_derived_figures(frame)
    metrics = tuple(dict.fromkeys([*STATS_METRICS, *CHART_METRICS]))
    stats = group_stats(frame, by=CONFIG_KEYS, metrics=metrics)
    return GroupAnalysis(stats, pareto_frontier(stats), batch_trends(frame, metrics=metrics, by=CONFIG_KEYS))


def energy_caption(sources: set[str]) -> str:
    """How a page names mean energy figures made from components with these sources: estimated where they are."""
    measured = sources - {"estimate", "unmeasured"}
    if "estimate" not in sources:
        return "Measured mean energy"
    if measured:
        return "Mean energy, measured for some components and estimated for others,"
    return "Estimated mean energy (no energy counter or power reading where the runs were made)"


def remote_power_frame(rows: Sequence[RemotePower]) -> pl.DataFrame:
    """A remote machine's power from Prometheus as (panel, series, t_s, value) for `charts.timeline`."""
    return pl.DataFrame(
        [("Remote power", f"{row.component} ({row.source})", row.t_s, row.watts) for row in rows],
        schema=MONITOR_SCHEMA, orient="row",
    )


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
