"""Charts: pure functions from a Polars frame to an Altair chart, shared by every page.

Result charts take the per-configuration statistics of `analysis.group_stats`
(one row per model, backend and quantization, with `{metric}_mean`,
`{metric}_ci_low`, `{metric}_ci_high`), so they draw a handful of marks
whether the group holds ten runs or a hundred thousand. Energy per token is
shown in mWh (the stored unit is Wh: a token costs a few thousandths of one).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import altair as alt
import polars as pl

from envirollm_core.analysis.configuration import config_label_expr
from envirollm_core.analysis.quality_methods import methods_of_stats, mixed_methods_warning
from envirollm_core.figures import figure_text_expr
from envirollm_core.metrics import CHARTED, METRIC, Metric

CONFIG = "configuration"
LABEL_LIMIT_PX = 420  # configuration names are long: `model quantization · backend · machine · tokens`
ON_FRONTIER, BEATEN = "on the Pareto frontier", "beaten on quality and energy"
MIN_PLOT_HEIGHT_PX, BAR_STEP_PX = 160, 24
AXIS_NUMBER_FORMAT = ".3~g"  # 0.236, 1.5, 120: never a raw 0.236148
SUBTITLE_CHARS = 100  # a warning under a chart's title, wrapped to stay within a page's width


@dataclass(frozen=True)
class NothingToDraw:
    """What a page shows instead of a chart with empty axes: why there is nothing to draw."""

    reason: str


# What the Results page draws as bars and trends: the metric table's rows (title, unit, scale, rounding).
METRICS: dict[str, Metric] = {name: METRIC[name] for name in CHARTED}
TEXT = "_text"  # suffix of a figure's tooltip text: the digits every table prints for it


def config_label() -> pl.Expr:
    """The configuration's readable label (`analysis.configuration`): the same weights on two servers, two
    machines or at two max-token settings are two configurations."""
    return config_label_expr().alias(CONFIG)


def _shown(stats: pl.DataFrame, *metrics: str) -> pl.DataFrame:
    """The stats with a configuration label and each metric's mean and interval in its display unit, each with
    its tooltip text (`{column}_text`) rounded by the one rule, as the CLI and the app's tables print it."""
    columns = [config_label(), pl.col("n_runs")]
    for name in metrics:
        metric = METRIC[name]
        for suffix in ("mean", "ci_low", "ci_high"):
            column = f"{name}_{suffix}"
            if column in stats.columns:
                shown = pl.col(column) * metric.scale
                columns += [shown.alias(column), figure_text_expr(shown, metric.figure_unit).alias(column + TEXT)]
    return stats.select(columns)


def quality_note(stats: pl.DataFrame) -> str | None:
    """The core's warning when the qualities of `stats` (rows of `group_stats`) were made by different methods."""
    return mixed_methods_warning(methods_of_stats(stats))


def _title(text: str, note: str | None) -> str | alt.TitleParams:
    """A chart title, with a note (a warning) under it when there is one, wrapped to fit a page's width."""
    return text if note is None else alt.TitleParams(text, subtitle=textwrap.wrap(note, SUBTITLE_CHARS),
                                                     subtitleColor="#b26a00")


def _room_right(values: pl.Series, share: float = 0.35) -> alt.Scale:
    """A scale from 0 to past the largest value, leaving room for the labels drawn right of the last marks."""
    largest = values.max()
    return alt.Scale(domain=[0, largest * (1 + share)]) if largest else alt.Scale(zero=True)


def _tooltip(*metrics: str) -> list[alt.Tooltip]:
    tips = [alt.Tooltip(f"{CONFIG}:N", title="configuration"), alt.Tooltip("n_runs:Q", title="runs")]
    tips += [alt.Tooltip(f"{m}_mean{TEXT}:N", title=METRIC[m].axis_title) for m in metrics]
    return tips


def energy_vs_speed(stats: pl.DataFrame) -> alt.LayerChart | NothingToDraw:
    """Energy per token against speed, one bubble per configuration, sized and coloured by quality.

    The speed is the decode rate; where no run has one (the original EnviroLLM's files keep only tokens over the
    whole request), the end-to-end rate, and the axis says so."""
    speed = next((name for name in ("decode_tps", "e2e_tps")
                  if f"{name}_mean" in stats.columns and stats[f"{name}_mean"].is_not_null().any()), None)
    if speed is None:
        return NothingToDraw("Nothing to draw: no completed run of this prompt has a speed (decode or end-to-end).")
    shown = _shown(stats, "energy_per_token_wh", speed, "quality_score").filter(
        pl.col("energy_per_token_wh_mean").is_not_null() & pl.col(f"{speed}_mean").is_not_null()
    )
    if shown.is_empty():
        return NothingToDraw("Nothing to draw: no completed run of this prompt has both an energy per token and a "
                             "speed (energy unmeasured, or no tokens counted).")
    x = alt.X(f"{speed}_mean:Q", title=METRICS[speed].axis_title, scale=_room_right(shown[f"{speed}_mean"]),
              axis=alt.Axis(format=AXIS_NUMBER_FORMAT))
    y = alt.Y("energy_per_token_wh_mean:Q", title=METRICS["energy_per_token_wh"].axis_title,
              scale=_room_right(shown["energy_per_token_wh_mean"], 0.15), axis=alt.Axis(format=AXIS_NUMBER_FORMAT))
    bubbles = (
        alt.Chart(shown)
        .mark_circle(opacity=0.85, stroke="#333", strokeWidth=0.5)
        .encode(
            x=x, y=y,
            size=alt.Size("quality_score_mean:Q", title="quality", scale=alt.Scale(domain=[0, 100], range=[60, 900])),
            color=alt.Color("quality_score_mean:Q", title="quality", scale=alt.Scale(scheme="greens", domain=[0, 100])),
            tooltip=_tooltip("energy_per_token_wh", speed, "quality_score"),
        )
    )
    labels = alt.Chart(shown).mark_text(dy=-20, fontSize=11).encode(x=x, y=y, text=f"{CONFIG}:N")
    speed_title = METRICS[speed].title.lower()
    return alt.layer(bubbles, labels, title=_title(
        f"Energy per token against {speed_title} (bubble size and colour: quality)", quality_note(stats)))


def quality_vs_energy(stats: pl.DataFrame, frontier: pl.DataFrame) -> alt.LayerChart | NothingToDraw:
    """Quality against energy per token; the Pareto frontier (nothing both better and cheaper) as a step line."""
    shown = _shown(stats, "energy_per_token_wh", "quality_score").filter(
        pl.col("energy_per_token_wh_mean").is_not_null() & pl.col("quality_score_mean").is_not_null()
    )
    if shown.is_empty():
        return NothingToDraw("Nothing to draw: no completed run of this prompt has both a quality score and an "
                             "energy per token.")
    best = _shown(frontier, "energy_per_token_wh", "quality_score")
    on_frontier = set(best[CONFIG].to_list())
    shown = shown.with_columns(
        pl.when(pl.col(CONFIG).is_in(list(on_frontier))).then(pl.lit(ON_FRONTIER)).otherwise(pl.lit(BEATEN)).alias("pareto")
    )
    x = alt.X("energy_per_token_wh_mean:Q", title=METRICS["energy_per_token_wh"].axis_title,
              scale=_room_right(shown["energy_per_token_wh_mean"]), axis=alt.Axis(format=AXIS_NUMBER_FORMAT))
    y = alt.Y("quality_score_mean:Q", title=METRICS["quality_score"].axis_title, scale=alt.Scale(domain=[0, 100]))
    points = (
        alt.Chart(shown)
        .mark_point(filled=True, size=120)
        .encode(
            x=x, y=y,
            color=alt.Color("pareto:N", scale=alt.Scale(domain=[ON_FRONTIER, BEATEN], range=["#2e7d32", "#9e9e9e"]),
                            legend=None),  # the title says it: green is the frontier
            tooltip=[*_tooltip("energy_per_token_wh", "quality_score"), alt.Tooltip("pareto:N", title="Pareto")],
        )
    )
    line = alt.Chart(best).mark_line(interpolate="step-after", color="#2e7d32", strokeDash=[4, 3]).encode(x=x, y=y)
    labels = alt.Chart(best).mark_text(align="left", dx=8, dy=-6, fontSize=11).encode(x=x, y=y, text=f"{CONFIG}:N")
    return alt.layer(line, points, labels, title=_title(
        "Quality against energy per token, with the Pareto frontier (green)", quality_note(stats)))


def model_intervals(stats: pl.DataFrame, metric: str) -> alt.LayerChart | NothingToDraw:
    """One bar per configuration (the mean) with its 95 % interval; configurations with one run have no interval."""
    info = METRICS[metric]
    shown = _shown(stats, metric).filter(pl.col(f"{metric}_mean").is_not_null())
    if shown.is_empty():
        return NothingToDraw(f"Nothing to draw: no completed run of this prompt has a {info.title.lower()}.")
    y = alt.Y(f"{CONFIG}:N", title=None, sort=alt.EncodingSortField(f"{metric}_mean", order="ascending"),
              axis=alt.Axis(labelLimit=LABEL_LIMIT_PX))
    bars = (
        alt.Chart(shown)
        .mark_bar(color="#66bb6a")
        .encode(x=alt.X(f"{metric}_mean:Q", title=f"{info.axis_title}, mean with 95 % interval",
                       axis=alt.Axis(format=AXIS_NUMBER_FORMAT)), y=y,
                tooltip=[*_tooltip(metric),
                         alt.Tooltip(f"{metric}_ci_low{TEXT}:N", title="95 % low"),
                         alt.Tooltip(f"{metric}_ci_high{TEXT}:N", title="95 % high")])
    )
    whiskers = (
        alt.Chart(shown.filter(pl.col(f"{metric}_ci_low").is_not_null()))
        .mark_errorbar(ticks=True, color="#1b5e20")
        .encode(x=alt.X(f"{metric}_ci_low:Q", title=""), x2=f"{metric}_ci_high:Q", y=y)
    )
    # A step per bar that leaves even one or two configurations a plot of a readable height.
    step_px = max(BAR_STEP_PX, -(-MIN_PLOT_HEIGHT_PX // shown.height))
    note = quality_note(stats) if metric == "quality_score" else None
    return alt.layer(bars, whiskers, title=_title(f"{info.title} per configuration", note)).properties(
        height=alt.Step(step_px))


def trends(batches: pl.DataFrame, metric: str, note: str | None = None) -> alt.Chart | NothingToDraw:
    """A metric's batch means over time, one line per configuration (from `analysis.batch_trends`); `note`, a
    warning shown under the title (`quality_note` of the same runs' stats, for the quality)."""
    info = METRICS[metric]
    if f"{metric}_mean" not in batches.columns:
        return NothingToDraw(f"Nothing to draw: {info.title.lower()} has no trend over batches.")
    value = pl.col(f"{metric}_mean") * info.scale
    shown = batches.select(
        config_label(), pl.col("started_at"), pl.col("n_runs"), value.alias("value"),
        figure_text_expr(value, info.figure_unit).alias("value" + TEXT),
    ).filter(pl.col("value").is_not_null())
    if shown.is_empty():
        return NothingToDraw(f"Nothing to draw: no batch of this prompt has a {info.title.lower()}.")
    return (
        alt.Chart(shown, title=_title(f"{info.title} over time, per configuration (one point per batch)", note))
        .mark_line(point=True)
        .encode(
            x=alt.X("started_at:T", title="batch started (UTC)", axis=alt.Axis(format="%Y-%m-%d", tickCount=6)),
            y=alt.Y("value:Q", title=info.axis_title, scale=alt.Scale(zero=False),
                    axis=alt.Axis(format=AXIS_NUMBER_FORMAT)),
            color=alt.Color(f"{CONFIG}:N", title="configuration",
                            legend=alt.Legend(labelLimit=LABEL_LIMIT_PX)),
            tooltip=[alt.Tooltip(f"{CONFIG}:N"), alt.Tooltip("started_at:T", format="%Y-%m-%d %H:%M"),
                     alt.Tooltip("n_runs:Q", title="runs"), alt.Tooltip("value" + TEXT + ":N", title=info.axis_title)],
        )
    )


def timeline(frame: pl.DataFrame, *, title: str, unit: str, x_title: str = "seconds (0 = now)") -> alt.Chart:
    """Lines of `value` against `t_s`, one per `series`: the live monitor and a run's samples.

    No height in the spec: Streamlit fits a chart's whole height (title, axes, legend) into the spec's, so a
    small one there leaves the plot itself a flat line."""
    frame = frame.with_columns(figure_text_expr(pl.col("t_s"), "s").alias("t_s" + TEXT),
                               figure_text_expr(pl.col("value")).alias("value" + TEXT))
    return (
        alt.Chart(frame, title=title)
        .mark_line(interpolate="monotone")
        .encode(
            x=alt.X("t_s:Q", title=x_title, axis=alt.Axis(format=AXIS_NUMBER_FORMAT)),
            y=alt.Y("value:Q", title=unit, axis=alt.Axis(format=AXIS_NUMBER_FORMAT)),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top", labelLimit=LABEL_LIMIT_PX)),
            tooltip=[alt.Tooltip("series:N"), alt.Tooltip("t_s" + TEXT + ":N", title="s"),
                     alt.Tooltip("value" + TEXT + ":N", title=unit)],
        )
    )


RESULT_CHART_TITLES: tuple[str, ...] = (
    "Energy vs speed", "Quality vs energy (Pareto)", "Per configuration (95 % intervals)", "Trends over time",
)


def result_chart(
    title: str, stats: pl.DataFrame, frontier: pl.DataFrame, batches: pl.DataFrame, metric: str
) -> alt.TopLevelMixin | NothingToDraw:
    """One of the four result charts, by tab title: a page builds only the open tab's."""
    if title == "Energy vs speed":
        return energy_vs_speed(stats)
    if title == "Quality vs energy (Pareto)":
        return quality_vs_energy(stats, frontier)
    if title == "Per configuration (95 % intervals)":
        return model_intervals(stats, metric)
    if title == "Trends over time":
        return trends(batches, metric, quality_note(stats) if metric == "quality_score" else None)
    raise ValueError(f"no result chart is titled {title!r}")


def result_charts(
    stats: pl.DataFrame, frontier: pl.DataFrame, batches: pl.DataFrame, metric: str
) -> dict[str, alt.TopLevelMixin | NothingToDraw]:
    """The Results page's four charts of one prompt group (the Import page draws the same), by tab title;
    a chart with nothing to draw is a `NothingToDraw` saying why."""
    return {title: result_chart(title, stats, frontier, batches, metric) for title in RESULT_CHART_TITLES}


# -- load sweeps -------------------------------------------------------------------------------

KNEE_COLOR = "#d62728"


def _levels_shown(levels: pl.DataFrame, knee: int | None) -> pl.DataFrame:
    per_token, output = METRIC["energy_per_token_wh"], METRIC["output_tps"]
    mwh_per_token = pl.col("energy_per_token_wh") * per_token.scale
    return levels.sort("concurrency").with_columns(
        mwh_per_token.alias("mwh_per_token"),
        figure_text_expr(mwh_per_token, per_token.figure_unit).alias("mwh_per_token" + TEXT),
        figure_text_expr(pl.col("output_tps"), output.figure_unit).alias("output_tps" + TEXT),
        (pl.col("concurrency") == (knee if knee is not None else -1)).alias("knee"),
    )


def _knee_rule(shown: pl.DataFrame, x: str) -> alt.Chart:
    return (
        alt.Chart(shown.filter(pl.col("knee")))
        .mark_rule(color=KNEE_COLOR, strokeDash=[6, 4])
        .encode(x=f"{x}:Q", tooltip=[alt.Tooltip("concurrency:Q", title="knee at concurrency")])
    )


def _against_concurrency(shown: pl.DataFrame, column: str, title: str, axis: str) -> alt.LayerChart:
    line = (
        alt.Chart(shown)
        .mark_line(point=True)
        .encode(
            x=alt.X("concurrency:Q", title="concurrent streams", scale=alt.Scale(type="log", base=2),
                    axis=alt.Axis(values=shown["concurrency"].to_list(), format="d")),
            y=alt.Y(f"{column}:Q", title=axis),
            tooltip=[alt.Tooltip("concurrency:Q"), alt.Tooltip(f"{column}{TEXT}:N", title=axis)],
        )
    )
    return alt.layer(line, _knee_rule(shown, "concurrency")).properties(title=title)


def load_charts(levels: pl.DataFrame, knee: int | None) -> dict[str, alt.TopLevelMixin]:
    """One sweep's charts (rows of `Store.sweep_levels`), by title: throughput and energy per token against
    concurrency, latency percentiles against throughput; the knee drawn as a dashed red rule."""
    shown = _levels_shown(levels, knee)
    latency = shown.unpivot(
        index=["concurrency", "output_tps", "output_tps" + TEXT, "knee"], on=["e2e_p50_s", "e2e_p95_s", "e2e_p99_s"],
        variable_name="percentile", value_name="latency_s",
    ).with_columns(pl.col("percentile").str.extract(r"(p\d+)").alias("percentile"),
                   figure_text_expr(pl.col("latency_s"), "s").alias("latency_s" + TEXT))
    latency_lines = (
        alt.Chart(latency)
        .mark_line(point=True)
        .encode(
            x=alt.X("output_tps:Q", title="output tokens/s (all streams)"),
            y=alt.Y("latency_s:Q", title="latency (s)"),
            color=alt.Color("percentile:N", title=None, sort=["p50", "p95", "p99"]),
            order="concurrency:Q",
            tooltip=[alt.Tooltip("concurrency:Q"), alt.Tooltip("percentile:N"),
                     alt.Tooltip("latency_s" + TEXT + ":N", title="latency (s)"),
                     alt.Tooltip("output_tps" + TEXT + ":N", title="output tokens/s")],
        )
    )
    return {
        "Throughput": _against_concurrency(shown, "output_tps", "Output tokens/s against concurrency",
                                           "output tokens/s"),
        "Energy per token": _against_concurrency(shown, "mwh_per_token", "Energy per token against concurrency",
                                                 "mWh/token"),
        "Latency vs throughput": alt.layer(latency_lines, _knee_rule(shown, "output_tps")).properties(
            title="End-to-end latency against throughput (one point per level)"),
    }
