"""What a person sees first, decided in the core: charts that draw or say why not, figures an original
EnviroLLM file implies (labelled), the table's first columns, the energy caption, the LAN banner, the
Benchmark page's first backend."""

from __future__ import annotations

import polars as pl
import pytest

from envirollm_core import charts
from envirollm_core.backends.factory import BackendChoice
from envirollm_core.benchmark.jobs import first_answering_backend
from envirollm_core.settings import lan_exposure_warning, listens_beyond_loopback
from envirollm_core.store import Store, parse_runs, runs_to_frame
from envirollm_core.views import DERIVED_TOKENS, analyze_group, energy_caption, runs_table
from tests.fakes.runs import original_envirollm_csv, realistic_runs
from tests.fakes.scripted_server import ollama_model_entry, ollama_tags


@pytest.fixture
def original_frame(tmp_path) -> pl.DataFrame:
    path = original_envirollm_csv(tmp_path / "envirollm_benchmarks.csv")
    return runs_to_frame(parse_runs(path.read_bytes(), path.name).runs)


def test_an_original_file_charts_its_end_to_end_speed_labelled_as_such(original_frame):
    analysis = analyze_group(original_frame)
    chart = charts.energy_vs_speed(analysis.stats)
    spec = chart.to_dict()
    x = spec["layer"][0]["encoding"]["x"]
    assert x["field"] == "e2e_tps_mean" and x["title"].startswith("End-to-end speed")
    assert "end-to-end speed" in spec["title"]
    bubbles = [row for rows in spec["datasets"].values() for row in rows]
    assert len(bubbles) == 3  # one per configuration (the dataset is shared by the bubbles and their labels)
    for figure in charts.result_charts(analysis.stats, analysis.frontier, analysis.batches, "energy_per_token_wh").values():
        assert not isinstance(figure, charts.NothingToDraw)


def test_an_original_files_tokens_are_derived_from_energy_and_say_so(original_frame):
    table = runs_table(original_frame)
    done = table.filter(pl.col("status") == "ok")
    assert set(done["tokens by"]) == {DERIVED_TOKENS}
    source = original_frame.filter(pl.col("status") == "ok")  # the exact figures; the table shows them rounded
    expected = (source["energy_wh"] / source["energy_per_token_wh"]).round(0)
    assert done["tokens"].cast(pl.Float64).to_list() == pytest.approx(expected.to_list())
    # the original's own speed figure: tokens over the whole request, as the derived rate gives it back
    assert done["end-to-end (tokens/s)"].to_list() == pytest.approx(
        (done["tokens"] / source["e2e_s"]).to_list(), rel=5e-3)  # three significant digits shown
    assert done["decode (tokens/s)"].null_count() == done.height  # never passed off as a decode rate
    failed = table.filter(pl.col("status") == "failed").row(0, named=True)
    assert failed["tokens"] is None and failed["tokens by"] is None and failed["end-to-end (tokens/s)"] is None


def test_a_chart_with_nothing_to_draw_says_why():
    runs = realistic_runs(batches=1)
    for run in runs:
        run.energy_per_token_wh = run.quality_score = None
    analysis = analyze_group(runs_to_frame(runs).filter(pl.col("preset") == "explanation"))
    figures = charts.result_charts(analysis.stats, analysis.frontier, analysis.batches, "quality_score")
    reasons = {title: figure.reason for title, figure in figures.items() if isinstance(figure, charts.NothingToDraw)}
    assert set(reasons) == set(figures)
    assert "energy per token" in reasons["Energy vs speed"]
    assert "quality" in reasons["Quality vs energy (Pareto)"]
    assert "quality" in reasons["Per configuration (95 % intervals)"] and "quality" in reasons["Trends over time"]


def test_every_metric_of_the_page_has_a_trend():
    analysis = analyze_group(runs_to_frame(realistic_runs()).filter(pl.col("preset") == "explanation"))
    for metric in charts.METRICS:
        trend = charts.trends(analysis.batches, metric)
        assert not isinstance(trend, charts.NothingToDraw), metric
        assert trend.to_dict()["encoding"]["y"]["axis"]["format"] == charts.AXIS_NUMBER_FORMAT


def test_timelines_leave_their_height_to_the_page():
    frame = pl.DataFrame({"series": ["cpu"], "t_s": [0.0], "value": [1.0]})
    spec = charts.timeline(frame, title="Power", unit="W").to_dict()
    assert "height" not in spec  # Streamlit fits title, axes and legend into a spec's height: the plot collapsed


def test_interval_bars_get_a_readable_height_for_few_configurations():
    runs = [run for run in realistic_runs(batches=1) if run.model == "gemma3:12b"]
    analysis = analyze_group(runs_to_frame(runs).filter(pl.col("preset") == "explanation"))
    spec = charts.model_intervals(analysis.stats, "decode_tps").to_dict()
    assert spec["height"]["step"] >= charts.MIN_PLOT_HEIGHT_PX


def test_the_runs_table_starts_with_what_a_person_compares():
    table = runs_table(runs_to_frame(realistic_runs(batches=1)))
    assert table.columns[:4] == ["model", "decode (tokens/s)", "energy per token (mWh)", "quality (0-100)"]


def test_the_energy_caption_says_estimated_where_the_figures_are(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    store.add_runs(realistic_runs(batches=1))
    assert store.energy_sources() == {"estimate", "counter"}
    assert energy_caption(store.energy_sources()).startswith("Mean energy, measured for some")
    assert energy_caption({"estimate"}).startswith("Estimated mean energy")
    assert energy_caption({"counter", "power-integral"}) == "Measured mean energy"
    assert energy_caption(set()) == "Measured mean energy"


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.1.1"])
def test_no_lan_banner_on_loopback(address, isolated_home):
    assert not listens_beyond_loopback(address)
    assert lan_exposure_warning(address) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20", "::", "", None, "myhost.lan"])
def test_a_writable_app_beyond_loopback_gets_the_lan_banner(address, isolated_home, monkeypatch):
    warning = lan_exposure_warning(address)
    assert warning and "anyone on the network" in warning and "ENVIROLLM_READ_ONLY=1" in warning
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    assert lan_exposure_warning(address) is None


def test_the_benchmark_page_opens_on_the_first_server_that_answers(serve, closed_port, isolated_home):
    dead = f"http://127.0.0.1:{closed_port}"
    ollama = serve({("GET", "/api/tags"): ollama_tags([ollama_model_entry("llama3:8b")])})
    empty = serve({("GET", "/api/tags"): ollama_tags([])})
    assert first_answering_backend([BackendChoice("ollama", ollama.url), BackendChoice("lmstudio", dead)]) == "ollama"
    assert first_answering_backend([BackendChoice("ollama", dead), BackendChoice("lmstudio", f"{dead}/v1")]) == "embedded"
    assert first_answering_backend([BackendChoice("ollama", empty.url)]) == "embedded"  # answers, but no model


def test_a_read_only_instance_asks_no_server_for_the_default_backend(serve, isolated_home, monkeypatch):
    ollama = serve({("GET", "/api/tags"): ollama_tags([ollama_model_entry("llama3:8b")])})
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    assert first_answering_backend([BackendChoice("ollama", ollama.url)]) == "embedded"
    assert ollama.requests == []
