"""Every page under AppTest, on an empty database and on one populated through the core Store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from envirollm_core.analysis.hardware import detected_memory_gb
from envirollm_core.settings import ReadOnlyError, Settings, save_settings
from envirollm_core.store import ORIGINAL_COLUMNS, Store
from envirollm_core.telemetry.sampler import get_sampler
from envirollm_core.views import export_bytes
from tests.fakes.runs import UNSAFE_RESPONSE, realistic_runs
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu

REPO = Path(__file__).resolve().parents[2]
PAGES = ("monitor.py", "benchmark.py", "results.py", "recommendations.py", "import_runs.py", "settings.py", "system.py")
RESULT_TABS = ("Energy vs speed", "Quality vs energy (Pareto)", "Per configuration (95 % intervals)", "Trends over time")


def page(name: str, timeout_s: float = 60) -> AppTest:
    return AppTest.from_file(str(REPO / "app_pages" / name), default_timeout=timeout_s)


def charts_of(app: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("vega_lite_chart")]


def chart_data(chart) -> pl.DataFrame:
    """The rows a chart element carries (Streamlit sends them to the browser as Arrow), all layers together."""
    frames = [pl.from_arrow(pa.ipc.open_stream(dataset.data.data).read_all()) for dataset in chart.proto.datasets]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def chart_titles(app: AppTest) -> list[str]:
    return [spec.get("title", {}).get("text", spec.get("title")) if isinstance(spec.get("title"), dict)
            else spec.get("title") for spec in charts_of(app)]


def chart_titles_of_every_tab(app: AppTest) -> list[str]:
    """The titles of the result charts, each tab opened in turn (a page draws only the open tab's chart)."""
    titles = []
    for tab in [tab.label for tab in app.tabs if tab.label in RESULT_TABS]:
        app.session_state["chart-tab"] = tab
        app.run()
        titles.append(chart_titles(app)[0])
    app.session_state["chart-tab"] = RESULT_TABS[0]
    app.run()
    return titles


def runs_table_of(app: AppTest):
    """The Results page's table of runs (the one with a run id per row)."""
    return next(frame.value for frame in app.dataframe if "run id" in frame.value.columns)


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


@pytest.fixture(autouse=True)
def sampler_running():
    """The shared sampler has a few samples before a page reads them (it starts on first use)."""
    sampler = get_sampler()
    while len(sampler.recent(5)) < 3:
        time.sleep(0.05)
    return sampler


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_on_an_empty_database(name, isolated_home):
    app = page(name).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_on_a_populated_database(name, populated_store):
    app = page(name).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value


def test_navigation_reaches_every_page(isolated_home):
    app = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    assert_clean(app)
    assert app.title[0].value == "Monitor"
    for name, title in [("results.py", "Results"), ("import_runs.py", "Import"), ("settings.py", "Settings"),
                        ("recommendations.py", "Recommendations"), ("benchmark.py", "Benchmark"), ("system.py", "System")]:
        app.switch_page(f"app_pages/{name}").run()
        assert not app.exception
        assert app.title[0].value == title


# -- Monitor -----------------------------------------------------------------------------------


def test_monitor_shows_live_timelines_and_each_power_source(isolated_home, sampler_running):
    app = page("monitor.py").run()
    assert_clean(app)
    components = sampler_running.components()
    assert [m.label for m in app.metric] == [f"{c.name} power" for c in components]
    captions = [c.value for c in app.caption]
    for component in components:
        assert f"source: {component.source}" in captions
    titles = chart_titles(app)
    assert {"Power", "CPU", "RAM"} <= set(titles)
    power = chart_data(app.get("vega_lite_chart")[titles.index("Power")])
    series = set(power["series"])
    assert series == {f"{c.name} ({c.source})" for c in components}


# -- Benchmark ---------------------------------------------------------------------------------


def wait_for_job(app: AppTest, timeout_s: float = 120) -> AppTest:
    """Rerun the page (as its ticking panel would) until the job reports an outcome."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        if app.success or app.error or any("Cancelled" in w.value for w in app.warning):
            return app
        time.sleep(0.2)
    raise AssertionError("the benchmark did not finish in time")


def set_run_options(app: AppTest, repeat: int = 1, max_tokens: int = 16) -> None:
    numbers = {n.label: n for n in app.number_input}
    numbers["Repetitions"].set_value(repeat)
    numbers["Max tokens"].set_value(max_tokens)
    numbers["Warm-up runs per model"].set_value(0)
    numbers["Idle baseline (s)"].set_value(0.0)
    judge = next(r for r in app.radio if r.label == "Quality judge")
    judge.set_value("heuristic")


def start_button(app: AppTest):
    return next(b for b in app.button if b.label == "Start the benchmark")


def test_benchmark_lists_ollama_models_runs_a_batch_and_stores_it(serve, populated_store, monkeypatch):
    from tests.fakes.token_scripts import FAST
    from tests.fakes.scripted_server import (
        ollama_chat_stream,
        ollama_model_entry,
        ollama_show,
        ollama_tags,
    )

    entries = [ollama_model_entry("llama3:8b", "Q4_K_M", "8.0B"), ollama_model_entry("phi3:mini", "Q8_0", "3.8B")]
    server = serve({
        ("GET", "/api/tags"): ollama_tags(entries),
        ("POST", "/api/show"): lambda request: ollama_show(next(e for e in entries if e["name"] == request.body["model"])),
        ("POST", "/api/chat"): lambda request: ollama_chat_stream(request.body["model"], FAST),
    })
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    before = populated_store.count()
    app = page("benchmark.py").run()
    assert_clean(app)
    models = app.multiselect[0]
    assert models.options == ["llama3:8b (4.9 GB, 8.0B, q4_k_m)", "phi3:mini (4.9 GB, 3.8B, q8_0)"]
    assert start_button(app).disabled  # no model chosen yet
    models.set_value(["llama3:8b", "phi3:mini"])
    set_run_options(app, repeat=2)
    app.run()
    start_button(app).click()
    app = wait_for_job(app)
    assert_clean(app)
    assert "4 runs stored" in app.success[0].value
    table = app.dataframe[-1].value
    assert list(table["model"]) == ["phi3:mini"] * 2 + ["llama3:8b"] * 2  # newest first
    assert set(table["status"]) == {"ok"}
    assert populated_store.count() == before + 4


def test_read_only_benchmark_page_makes_the_server_fetch_no_url(serve, isolated_home, monkeypatch):
    from tests.fakes.scripted_server import ollama_model_entry, ollama_tags

    server = serve({("GET", "/api/tags"): ollama_tags([ollama_model_entry("llama3:8b")])})
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    app = page("benchmark.py").run()
    assert not app.exception
    assert app.radio[0].value == "embedded"  # a read-only page asks no server which one answers
    for kind in ("ollama", "lmstudio"):
        app.radio[0].set_value(kind).run()
        assert next(t for t in app.text_input if t.label == "Server URL").disabled
        # One warning says it once: read-only, so no server is asked (not a second one from the core's refusal).
        assert [w.value for w in app.warning] == [app.warning[0].value] and "read-only" in app.warning[0].value
        assert start_button(app).disabled
    assert server.requests == []  # nothing was fetched on a visitor's behalf


@pytest.mark.engine
def test_benchmark_against_the_embedded_engine_through_a_custom_url(embedded_engine, isolated_home):
    app = page("benchmark.py").run()
    app.radio[0].set_value("openai").run()
    inputs = {t.label: t for t in app.text_input}
    inputs["Server URL"].set_value(embedded_engine.base_url)
    inputs["Model name(s), comma-separated"].set_value(embedded_engine.model_id)
    set_run_options(app, repeat=2, max_tokens=24)
    app.run()
    start_button(app).click()
    app = wait_for_job(app, timeout_s=180)
    assert_clean(app)
    stored = Store().runs()
    assert len(stored) == 2 and all(run.status == "ok" for run in stored)
    assert all(run.completion_tokens and run.response.strip() for run in stored)
    assert all(run.energy_wh is not None and run.components for run in stored)


@pytest.fixture
def shared_engine_stopped_after():
    """The app's process-wide engine is started by the page's job; stop it so no later test finds it running."""
    from envirollm_core.backends.embedded import shared_engine

    yield
    shared_engine().stop()


@pytest.mark.engine
def test_benchmark_of_the_embedded_engine_option(isolated_home, shared_engine_stopped_after):
    app = page("benchmark.py", timeout_s=180).run()
    app.radio[0].set_value("embedded").run()
    assert_clean(app)
    set_run_options(app, repeat=1, max_tokens=12)
    app.run()
    start_button(app).click()
    app = wait_for_job(app, timeout_s=240)
    assert_clean(app)
    (run,) = Store().runs()
    assert run.backend == "embedded" and run.status == "ok" and run.completion_tokens
    assert run.model == "smollm2-135m-instruct-q4_1" and run.engine_threads  # the chat model by default


def test_the_embedded_choice_labels_gemma_a_base_model(isolated_home):
    app = page("benchmark.py").run()
    app.radio[0].set_value("embedded").run()
    assert_clean(app)
    models = next(r for r in app.radio if r.label == "Embedded model")
    assert models.value == "smollm2-135m-instruct-q4_1"
    labels = models.options  # as the page shows them
    assert "base model: continues text, follows no instructions" in labels[1] and "base" not in labels[0]


def test_the_verified_suite_from_the_page_is_graded_by_its_checks(serve, isolated_home):
    from tests.fakes.token_scripts import FAST
    from tests.fakes.scripted_server import openai_routes, openai_stream

    server = serve(openai_routes(["m"], lambda request: openai_stream("m", FAST)))
    app = page("benchmark.py").run()
    app.radio[0].set_value("openai").run()
    inputs = {t.label: t for t in app.text_input}
    inputs["Server URL"].set_value(f"{server.url}/v1")
    inputs["Model name(s), comma-separated"].set_value("m")
    next(r for r in app.radio if r.label == "Prompt").set_value("Verified suite").run()
    assert any("short tasks whose answers are checked automatically" in c.value for c in app.caption)
    set_run_options(app)
    app.run()
    start_button(app).click()
    app = wait_for_job(app, timeout_s=240)
    assert_clean(app)
    runs = Store().runs()
    assert len(runs) >= 40 and {run.quality_method for run in runs} == {"verified"}
    assert all(run.preset.startswith("verified/") and run.quality_detail["checks"] for run in runs)


def test_benchmark_cancel_from_the_page_keeps_the_runs_made(serve, isolated_home):
    from tests.fakes.token_scripts import SLOW
    from tests.fakes.scripted_server import openai_routes, openai_stream

    server = serve(openai_routes(["slow-model"], lambda request: openai_stream("slow-model", SLOW)))
    app = page("benchmark.py").run()
    app.radio[0].set_value("openai").run()
    inputs = {t.label: t for t in app.text_input}
    inputs["Server URL"].set_value(f"{server.url}/v1")
    inputs["Model name(s), comma-separated"].set_value("slow-model")
    set_run_options(app, repeat=10)
    app.run()
    start_button(app).click().run()
    deadline = time.monotonic() + 30
    while not app.dataframe and time.monotonic() < deadline:  # the table appears with the first finished run
        time.sleep(0.1)
        app.run()
    assert any("Current model: slow" in c.value.replace("\\", "") for c in app.caption)
    next(b for b in app.button if b.label.startswith("Cancel")).click()
    app = wait_for_job(app)
    assert any("Cancelled" in w.value for w in app.warning)
    assert 0 < Store().count() < 10


def test_benchmark_api_key_reaches_the_server_and_nothing_else(serve, isolated_home):
    from tests.fakes.token_scripts import FAST
    from tests.fakes.scripted_server import openai_routes, openai_stream

    secret = "sk-page-test-9d8c7b6a"
    server = serve(openai_routes(["m"], lambda request: openai_stream("m", FAST)))
    app = page("benchmark.py").run()
    app.radio[0].set_value("openai").run()
    inputs = {t.label: t for t in app.text_input}
    inputs["Server URL"].set_value(f"{server.url}/v1")
    inputs["API key (optional: used for the requests, never stored)"].set_value(secret)
    inputs["Model name(s), comma-separated"].set_value("m")
    set_run_options(app)
    app.run()
    start_button(app).click()
    app = wait_for_job(app)
    assert_clean(app)
    chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert chats and all(r.headers["authorization"] == f"Bearer {secret}" for r in chats)
    assert secret not in str(app._tree)  # every element the browser would get
    assert secret.encode() not in (isolated_home / "envirollm.duckdb").read_bytes()
    assert secret not in "".join(p.read_text(errors="replace") for p in isolated_home.rglob("*") if p.suffix == ".json")


def test_benchmark_is_disabled_and_refused_in_read_only_mode(isolated_home, monkeypatch):
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    app = page("benchmark.py").run()
    app.radio[0].set_value("embedded").run()
    assert any("read-only" in w.value for w in app.warning)
    assert start_button(app).disabled


# -- Results -----------------------------------------------------------------------------------


def test_results_on_an_empty_database_says_how_to_get_runs(isolated_home):
    app = page("results.py").run()
    assert_clean(app)
    assert "No runs stored yet" in app.info[0].value


def test_results_groups_by_prompt_and_draws_the_four_charts(populated_store):
    app = page("results.py").run()
    assert_clean(app)
    groups = app.selectbox[0]
    assert len(groups.options) == 2 and all("24 runs, 4 models" in o for o in groups.options)
    titles = chart_titles_of_every_tab(app)
    assert titles[:4] == [
        "Energy per token against decode speed (bubble size and colour: quality)",
        "Quality against energy per token, with the Pareto frontier (green)",
        "Energy per token per configuration",
        "Energy per token over time, per configuration (one point per batch)",
    ]
    table = runs_table_of(app)
    assert len(table) == 24
    assert not any("n_runs" in frame.value.columns for frame in app.dataframe)  # folded: its grid is not sent
    app.session_state["history"] = True  # opened
    app.run()
    history = app.dataframe[0].value
    assert sorted(history["n_runs"]) == [24, 24] and set(history["preset"]) == {"explanation", "code-generation"}
    assert "energy per token (mWh)" in table.columns and "decode (tokens/s)" in table.columns
    app.selectbox[1].set_value("decode_tps").run()
    assert chart_titles_of_every_tab(app)[2] == "Decode speed per configuration"
    assert [b.label for b in app.get("download_button")] == [
        "Export this prompt's runs (CSV)", "Export this prompt's runs (Parquet)", "Export every run (CSV)"]


def test_results_shows_a_response_as_text_never_as_markup(populated_store):
    unsafe = next(run for run in populated_store.runs() if run.response == UNSAFE_RESPONSE)
    app = page("results.py").run()
    app.selectbox[0].set_value(unsafe.prompt_hash).run()
    app.text_input(key="run_id").set_value(unsafe.id[:6]).run()
    assert_clean(app)
    assert UNSAFE_RESPONSE in [text.value for text in app.text]
    assert not any("<script>" in m.value for m in app.markdown)


def test_results_note_and_delete_go_through_the_core(populated_store):
    run = populated_store.runs(limit=1)[0]
    app = page("results.py").run()
    app.selectbox[0].set_value(run.prompt_hash).run()
    app.text_input(key="run_id").set_value(run.id).run()
    app.text_area[0].set_value("GPU was throttling")  # inside a form: sent with the submit
    next(b for b in app.button if b.label == "Save the note").click().run()
    assert_clean(app)
    assert populated_store.run(run.id).notes == "GPU was throttling"
    before = populated_store.count()
    next(c for c in app.checkbox if c.label == "Delete this run for good").check().run()
    next(b for b in app.button if b.label == "Delete").click().run()
    assert not app.exception
    assert populated_store.count() == before - 1
    assert run.id not in {r.id for r in populated_store.runs()}


def test_results_in_read_only_mode_disable_writes_and_the_core_refuses(populated_store, monkeypatch):
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    app = page("results.py").run()
    assert_clean(app)
    assert next(b for b in app.button if b.label == "Delete").disabled
    assert app.text_area[0].disabled
    run_id = runs_table_of(app)["run id"][0]
    with pytest.raises(Exception, match="read-only"):
        Store().set_note(run_id, "x")


# -- Recommendations ---------------------------------------------------------------------------


def test_recommendations_without_runs_still_show_what_fits(isolated_home):
    app = page("recommendations.py").run()
    assert_clean(app)
    assert [m.label for m in app.metric] == ["Largest on the GPU alone", "Largest split GPU + CPU", "Largest on the CPU"]
    assert "No runs stored yet" in app.info[0].value
    ram = next(n for n in app.number_input if n.label == "RAM (GB)")
    ram.set_value(0.5).run()
    assert app.metric[2].value == "none"  # nothing fits in half a gigabyte


def test_recommendations_start_from_the_largest_gpu_in_gb(isolated_home, monkeypatch):
    fake_pynvml.install(monkeypatch, [FakeGpu(memory_total_mb=8192.0), FakeGpu(memory_total_mb=24576.0)])
    app = page("recommendations.py").run()
    assert_clean(app)
    vram = next(n for n in app.number_input if n.label.startswith("GPU memory"))
    assert vram.value == pytest.approx(round(detected_memory_gb()[1], 1)) == 25.8  # 1e9-byte GB, as the CLI's fit


def test_recommendations_pick_within_each_prompt_and_project_a_month(populated_store):
    save_settings(Settings(country_code="FRA", electricity_price_per_kwh=0.25, currency="EUR"))
    app = page("recommendations.py").run()
    assert_clean(app)
    assert len(app.expander) == 2
    picks = app.table[0].value  # the first group's (open); the other's is folded
    assert list(picks["pick"]) == ["best overall (quality per energy)", "most efficient", "fastest", "highest quality"]
    assert picks["configuration"][2] == "gemma-3-270m-q4_k_m q4_k_m · embedded · AMD Ryzen 9 7950X · 512 tok · T 0"  # the fastest, as measured
    month = app.table[-1].value
    assert len(month) == 4 and "cost per month (EUR)" in month.columns
    tokens = next(n for n in app.number_input if n.label == "Tokens per day")
    tokens.set_value(200_000).run()
    doubled = app.table[-1].value
    assert float(doubled["energy per month (kWh)"][0]) == pytest.approx(2 * float(month["energy per month (kWh)"][0]), rel=0.01)
    assert any("France" in c.value for c in app.caption)



def test_recommendations_and_result_charts_say_when_quality_methods_mix(isolated_home):
    runs = realistic_runs(batches=1, failed=False)
    for run in runs:
        if run.model.startswith("gemma"):
            run.quality_method = "verified"
    Store().add_runs(runs)
    app = page("recommendations.py").run()
    assert_clean(app)
    shown = [warning.value.replace("\\", "") for warning in app.warning]  # the page escapes markdown punctuation
    assert any("different methods (heuristic, verified)" in text for text in shown), shown
    results = page("results.py").run()
    assert_clean(results)
    results.session_state["chart-tab"] = "Quality vs energy (Pareto)"
    results.run()
    (spec,) = charts_of(results)
    assert "different methods (heuristic, verified)" in " ".join(spec["title"]["subtitle"])


# -- Import ------------------------------------------------------------------------------------


def test_import_analyses_an_upload_without_touching_the_database_until_saved(tmp_path, isolated_home):
    source = Store(tmp_path / "elsewhere.duckdb")
    source.add_runs(realistic_runs())
    data = export_bytes(source, "csv")
    app = page("import_runs.py").run()
    app.file_uploader[0].upload("runs.csv", data, "text/csv").run()
    assert_clean(app)
    assert "48 runs read from runs.csv (csv); not saved." == app.success[0].value
    assert len(chart_titles_of_every_tab(app)) == 4
    assert not (isolated_home / "envirollm.duckdb").exists()
    next(b for b in app.button if b.label == "Save these runs to the database").click().run()
    assert "48 runs added, 0 already stored" in app.success[-1].value
    assert [s.value for s in app.success if "not saved" in s.value] == []  # the banner says what was saved
    assert Store().count() == 48
    next(b for b in app.button if b.label == "Save these runs to the database").click().run()
    assert "0 runs added, 48 already stored" in app.success[-1].value


def test_import_reads_parquet_and_the_original_envirollm_csv(tmp_path, isolated_home):
    source = Store(tmp_path / "elsewhere.duckdb")
    source.add_runs(realistic_runs(batches=1))
    app = page("import_runs.py").run()
    app.file_uploader[0].upload("runs.parquet", export_bytes(source, "parquet"), "application/octet-stream").run()
    assert_clean(app)
    assert "24 runs read" in app.success[0].value
    original = ",".join(ORIGINAL_COLUMNS) + "\n" + "\n".join(
        f"{i},llama3:8b,2025-02-0{i}T10:00:00,completed,ollama,0.0{i},0.0000{i},3.2,41.5,7{i},35.0,40.0,120.5,"
        f"Explain entropy,Entropy is..." for i in range(1, 4)
    )
    app.file_uploader[0].upload("original.csv", original.encode(), "text/csv").run()
    assert_clean(app)
    assert "3 runs read from original.csv (original-csv)" in app.success[0].value
    titles = chart_titles_of_every_tab(app)
    assert len(titles) == 4 and "end-to-end speed" in titles[0]  # the original keeps no decode rate


def test_import_of_a_bad_file_is_one_line_and_changes_nothing(isolated_home):
    app = page("import_runs.py").run()
    app.file_uploader[0].upload("junk.csv", b"a;b;c\n1;2;3\n", "text/csv").run()
    assert not app.exception
    (error,) = app.error
    assert "\n" not in error.value and "junk" in error.value
    assert not app.get("vega_lite_chart")
    assert not (isolated_home / "envirollm.duckdb").exists()


def test_import_save_is_refused_in_read_only_mode(tmp_path, isolated_home, monkeypatch):
    source = Store(tmp_path / "elsewhere.duckdb")
    source.add_runs(realistic_runs(batches=1))
    data = export_bytes(source, "csv")
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    app = page("import_runs.py").run()
    app.file_uploader[0].upload("runs.csv", data, "text/csv").run()
    assert_clean(app)
    assert next(b for b in app.button if b.label == "Save these runs to the database").disabled
    with pytest.raises(Exception, match="read-only"):
        Store().add_runs(realistic_runs(batches=1))


# -- Settings ----------------------------------------------------------------------------------


def test_settings_shows_the_database_and_saves_a_country_and_a_price(populated_store, isolated_home):
    app = page("settings.py").run()
    assert_clean(app)
    assert app.text[0].value == str(isolated_home / "envirollm.duckdb")
    assert app.caption[0].value.startswith("48 runs stored")
    app.selectbox[0].set_value("DEU")
    next(n for n in app.number_input if n.label.startswith("Electricity price")).set_value(0.31)
    next(t for t in app.text_input if t.label == "Currency").set_value("eur")
    next(b for b in app.button if b.label == "Save the settings").click().run()
    assert_clean(app)
    saved = json.loads((isolated_home / "settings.json").read_text())
    assert (saved["country_code"], saved["electricity_price_per_kwh"], saved["currency"]) == ("DEU", 0.31, "EUR")


def test_saving_a_sampling_interval_applies_it_to_the_running_sampler(isolated_home):
    from envirollm_core.telemetry.sampler import get_sampler

    before = get_sampler().interval_s
    app = page("settings.py").run()
    next(n for n in app.number_input if n.label == "Sampling interval (s)").set_value(0.2)
    try:
        next(b for b in app.button if b.label == "Save the settings").click().run()
        assert_clean(app)
        assert get_sampler().interval_s == 0.2
    finally:
        get_sampler().set_interval(before)


def test_settings_own_intensity_needs_a_figure(isolated_home):
    app = page("settings.py").run()
    app.toggle[0].set_value(True)
    next(b for b in app.button if b.label == "Save the settings").click().run()
    assert not app.exception
    assert "give your own carbon intensity" in app.error[0].value.replace("\\", "")
    assert not (isolated_home / "settings.json").exists()


def test_settings_are_disabled_in_read_only_mode_and_the_core_refuses(isolated_home, monkeypatch):
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    app = page("settings.py").run()
    assert any("read-only" in w.value for w in app.warning)
    assert all(widget.disabled for widget in [*app.selectbox, *app.number_input, *app.text_input, *app.toggle])
    with pytest.raises(ReadOnlyError):
        save_settings(Settings(country_code="FRA"))


# -- Load sweeps -------------------------------------------------------------------------------


def test_load_sweep_from_the_benchmark_page_then_the_results_load_tab(serve, isolated_home):
    from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream

    script = TokenScript(tokens=[f"w{i} " for i in range(8)], ttft_s=0.01, tokens_per_s=200.0)
    server = serve(openai_routes(["sweep-model"], lambda request: openai_stream("sweep-model", script)))
    app = page("benchmark.py").run()
    app.radio[0].set_value("openai").run()
    next(r for r in app.radio if r.label == "Mode").set_value("Load sweep").run()
    assert not any(n.label == "Repetitions" for n in app.number_input)  # the benchmark's options are gone
    inputs = {t.label: t for t in app.text_input}
    inputs["Server URL"].set_value(f"{server.url}/v1")
    inputs["Model name(s), comma-separated"].set_value("sweep-model")
    inputs["Concurrency levels"].set_value("1,2")
    numbers = {n.label: n for n in app.number_input}
    numbers["Idle baseline (s)"].set_value(0.0)
    numbers["Max tokens"].set_value(8)
    app.run()
    next(b for b in app.button if b.label == "Start the load sweep").click().run()
    app = wait_for_job(app)
    assert_clean(app)
    assert "2 levels stored" in app.success[0].value
    levels = app.dataframe[-1].value
    assert list(levels["streams"]) == [1, 2] and set(levels["failed"]) == {0}

    results = page("results.py").run()
    results.session_state["chart-tab"] = "Load"  # the page draws only the open tab
    results.run()
    assert_clean(results)
    titles = chart_titles(results)
    assert {"Output tokens/s against concurrency", "Energy per token against concurrency",
            "End-to-end latency against throughput (one point per level)"} <= set(titles)
    table = next(frame.value for frame in results.dataframe if "streams" in frame.value.columns)
    assert list(table["streams"]) == [1, 2] and (table["mWh/token"] > 0).all()


def test_results_load_tab_says_how_to_get_a_sweep(populated_store):
    app = page("results.py").run()
    app.session_state["chart-tab"] = "Load"
    app.run()
    assert_clean(app)
    assert any("No load sweep stored yet" in info.value for info in app.info)
