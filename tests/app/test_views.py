"""The core's page-ready views and charts: units, sources, escaping, exports, projections."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest

from envirollm_core import charts
from envirollm_core.analysis import make_tariff
from envirollm_core.figures import round_figure
from envirollm_core.store import Store, parse_runs, runs_to_frame
from envirollm_core.telemetry.nvml import GpuReading
from envirollm_core.telemetry.sampler import ComponentInfo, Sample
from envirollm_core.views import (
    MAX_POINTS_PER_SERIES,
    analyze_group,
    config_stats,
    export_bytes,
    monitor_frame,
    monthly_table,
    plain,
    power_now,
    runs_table,
    trace_long,
)
from tests.fakes.runs import realistic_runs

COMPONENTS = [ComponentInfo("cpu", "cpu", "estimate", "TDP model"), ComponentInfo("gpu:0", "gpu", "counter", "NVML")]


def sample(t_s: float, gpu_power: float | None = 200.0, temp: float | None = 61.0) -> Sample:
    return Sample(
        time_s=t_s, unix_time=1e9 + t_s, cpu_percent=35.0, ram_used_mb=8192.0,
        power_w=(("cpu", 20.0), ("gpu:0", gpu_power)),
        gpus=(GpuReading(0, gpu_power, 90.0, 4096.0, temp),), processes=(),
    )


def test_monitor_frame_counts_back_from_now_and_labels_each_power_source():
    frame = monitor_frame([sample(10.0), sample(10.5), sample(11.0)], COMPONENTS)
    power = frame.filter(pl.col("panel") == "Power")
    assert set(power["series"]) == {"cpu (estimate)", "gpu:0 (counter)"}
    assert sorted(set(power["t_s"])) == [-1.0, -0.5, 0.0]
    ram = frame.filter(pl.col("panel") == "RAM")
    assert ram["value"].to_list() == [8.589934592] * 3  # 8192 MiB shown in GB (10**9 bytes), as everywhere else
    assert set(frame["panel"]) == {"Power", "CPU", "RAM", "GPU utilization", "GPU memory", "GPU temperature"}


def test_monitor_frame_leaves_out_what_was_not_measured_instead_of_drawing_zero():
    frame = monitor_frame([sample(0.0, gpu_power=None, temp=None), sample(0.1, gpu_power=None, temp=None)], COMPONENTS)
    assert frame.filter(pl.col("series") == "gpu:0 (counter)").is_empty()
    assert frame.filter(pl.col("panel") == "GPU temperature").is_empty()
    assert (frame["value"] != 0).all()


def test_monitor_frame_thins_long_windows_and_keeps_the_newest_sample():
    samples = [sample(i * 0.1) for i in range(3000)]
    frame = monitor_frame(samples, COMPONENTS)
    cpu = frame.filter(pl.col("panel") == "CPU")
    assert len(cpu) <= MAX_POINTS_PER_SERIES
    assert cpu["t_s"].max() == 0.0
    assert monitor_frame([], COMPONENTS).is_empty()


def test_power_now_gives_each_component_its_latest_reading_and_source():
    readings = power_now([sample(0.0, gpu_power=150.0), sample(0.1, gpu_power=None)], COMPONENTS)
    assert [(r.component, r.watts, r.source) for r in readings] == [("cpu", 20.0, "estimate"), ("gpu:0", None, "counter")]
    assert [r.watts for r in power_now([], COMPONENTS)] == [None, None]


def test_plain_shows_markdown_and_html_as_typed():
    text = '**bold** _it_ [link](http://x) <b>html</b> :red[colour] `code` # title'
    escaped = plain(text)
    assert escaped.replace("\\", "") == text
    for mark in "*_[]()<>:`#":
        assert f"\\{mark}" in escaped


def test_runs_table_puts_units_in_headers_and_converts_them():
    runs = realistic_runs(batches=1)
    table = runs_table(runs_to_frame(runs))
    row = table.row(0, named=True)
    (run,) = [run for run in runs if run.id.startswith(row["run id"])]  # the id's shortest unique prefix
    assert row["energy per token (mWh)"] == round_figure(run.energy_per_token_wh * 1000, "mWh")  # the one rule
    assert row["#"] == run.repeat_index + 1
    assert {"TTFT (s)", "decode (tokens/s)", "energy (Wh)", "avg power (W)", "quality (0-100)"} <= set(table.columns)


def test_export_bytes_round_trips_through_the_import_parser(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    runs = realistic_runs(batches=1)
    store.add_runs(runs)
    one_prompt = runs[0].prompt_hash
    leftovers = set(Path(tempfile.gettempdir()).glob("envirollm-export-*"))
    for fmt in ("csv", "parquet"):
        parsed = parse_runs(export_bytes(store, fmt, one_prompt), f"export.{fmt}")
        assert sorted(r.id for r in parsed.runs) == sorted(r.id for r in runs if r.prompt_hash == one_prompt)
    assert set(Path(tempfile.gettempdir()).glob("envirollm-export-*")) == leftovers  # no export file left behind


def test_monthly_table_projects_the_stated_use_and_shows_cost_only_with_a_price():
    frame = runs_to_frame(realistic_runs())
    stats = config_stats(frame, "preset", "explanation")
    with_price = monthly_table(stats, make_tariff("FRA", price_per_kwh=0.2, currency="EUR"), tokens_per_day=10_000)
    row = with_price.row(0, named=True)
    expected_kwh = 10_000 * stats["energy_per_token_wh_mean"][0] * 30 / 1000
    SHOWN = 5e-3  # the table is rounded to three significant digits (figures.py)
    assert row["energy per month (kWh)"] == pytest.approx(expected_kwh, rel=SHOWN)
    assert row["cost per month (EUR)"] == pytest.approx(expected_kwh * 0.2, rel=SHOWN)
    assert row["CO2e per month (kg)"] == pytest.approx(expected_kwh * make_tariff("FRA").grid.g_co2_per_kwh / 1000, rel=SHOWN)
    no_price = monthly_table(stats, make_tariff("FRA"), requests_per_day=100)
    assert not any(column.startswith("cost") for column in no_price.columns)
    assert no_price["energy per month (kWh)"][0] == pytest.approx(100 * stats["energy_wh_mean"][0] * 30 / 1000, rel=SHOWN)


def test_trace_long_keeps_power_and_load_apart():
    run = realistic_runs(batches=1)[1]
    trace = pl.DataFrame([vars(point) for point in run.trace])
    long = trace_long(trace)
    assert set(long["panel"]) == {"Power", "Load"}
    assert set(long.filter(pl.col("panel") == "Power")["series"]) == {"CPU power", "GPU power"}


def _layer_data(chart) -> pl.DataFrame:
    spec = chart.to_dict()
    return pl.DataFrame([row for rows in spec["datasets"].values() for row in rows])


def test_result_charts_draw_one_mark_per_configuration_in_display_units():
    frame = runs_to_frame(realistic_runs())
    analysis = analyze_group(frame.filter(pl.col("preset") == "explanation"))
    figures = charts.result_charts(analysis.stats, analysis.frontier, analysis.batches, "energy_per_token_wh")
    assert list(figures) == ["Energy vs speed", "Quality vs energy (Pareto)", "Per configuration (95 % intervals)",
                             "Trends over time"]
    bubbles = _layer_data(figures["Energy vs speed"])
    assert len(bubbles) == 4 and bubbles["configuration"].n_unique() == 4
    gemma = analysis.stats.filter(pl.col("model") == "gemma3:12b")
    assert bubbles.filter(pl.col("configuration") == "gemma3:12b q8_0 · ollama · AMD Ryzen 9 7950X · 512 tok · T 0")["energy_per_token_wh_mean"][0] == \
        pytest.approx(gemma["energy_per_token_wh_mean"][0] * 1000)
    pareto = _layer_data(figures["Quality vs energy (Pareto)"])
    assert set(pareto["pareto"].drop_nulls()) == {charts.ON_FRONTIER}  # all four sit on the frontier here
    trend = _layer_data(figures["Trends over time"])
    assert len(trend) == 8  # four configurations, two batches


def test_a_configuration_beaten_on_both_counts_is_marked_off_the_frontier():
    runs = realistic_runs(batches=1)
    for run in runs:
        if run.model == "qwen2.5:7b" and run.quality_score is not None:
            run.quality_score = 50.0  # dearer than llama3.2:3b and now worse
    analysis = analyze_group(runs_to_frame(runs).filter(pl.col("preset") == "explanation"))
    pareto = _layer_data(charts.quality_vs_energy(analysis.stats, analysis.frontier))
    marked = dict(zip(pareto["configuration"], pareto["pareto"]))
    assert marked["qwen2.5:7b q4_k_m · ollama · AMD Ryzen 9 7950X · 512 tok · T 0"] == charts.BEATEN
    assert marked["llama3.2:3b q4_k_m · ollama · AMD Ryzen 9 7950X · 512 tok · T 0"] == charts.ON_FRONTIER


def test_interval_bars_draw_no_whisker_for_a_single_run():
    runs = realistic_runs(batches=1, repeat=1)
    analysis = analyze_group(runs_to_frame(runs).filter(pl.col("preset") == "explanation"))
    spec = charts.model_intervals(analysis.stats, "decode_tps").to_dict()
    whiskers = spec["layer"][1]
    assert spec["datasets"][whiskers["data"]["name"]] == []


def test_rounded_floats_are_shown_by_printf_g_and_integers_plain():
    """Streamlit's "plain" writes some rounded floats with binary noise (94.9 as 94.89999999999999, seen in
    Chromium), `%g` writes their shortest text: every float column of a page's table gets `%g`."""
    import polars as pl

    from envirollm_core.views.formats import plain_formats

    frame = pl.DataFrame({"decode (tokens/s, estimated)": [94.9, 72.3], "runs": [3, 4], "model": ["a", "b"]})
    assert plain_formats(frame) == {"decode (tokens/s, estimated)": "%g", "runs": "plain"}


def test_a_text_table_shows_figures_as_the_cli_does_and_missing_values_as_nothing():
    """`st.table` draws what it is given: each cell becomes the text a person reads, with no binary noise, no
    exponent, no `None`; the figures are the same text `format_figure` prints for a rounded value."""
    from datetime import datetime

    from envirollm_core.figures import format_figure
    from envirollm_core.views import text_table

    energy_wh = round_figure(0.000583219, "Wh")
    frame = pl.DataFrame({
        "energy (Wh)": [energy_wh, 94.9, 1234567.0, None],
        "runs": [3, None, 4, 5],
        "model": ["a", None, "c", "d"],
        "stored": [True, False, None, True],
        "when (UTC)": [datetime(2026, 12, 3, 19, 55, 15), None, None, None],
    })
    shown = text_table(frame)
    assert shown.columns == frame.columns and all(dtype == pl.String for dtype in shown.dtypes)
    assert shown.row(0) == (format_figure(energy_wh, "Wh"), "3", "a", "yes", "2026-12-03 19:55")
    assert shown["energy (Wh)"].to_list() == ["0.000583", "94.9", "1234567", ""]
    assert shown.row(3) == ("", "5", "d", "yes", "")
    assert shown["stored"].to_list() == ["yes", "no", "", "yes"]
