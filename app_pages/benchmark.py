"""Benchmark models on identical prompts. The batch runs in a background job owned by the core, so a click
elsewhere on the page never stops it; this page only starts it, shows its progress, and can cancel it."""

import streamlit as st

from envirollm_core.backends.factory import BACKEND_TITLES, BackendChoice
from envirollm_core.backends.ollama import ollama_url
from envirollm_core.backends.server_metadata import LMSTUDIO_URL
from envirollm_core.benchmark.jobs import (
    JobRegistry,
    ModelChoice,
    first_answering_backend,
    list_models,
)
from envirollm_core.benchmark.presets import Prompt, load_presets
from envirollm_core.benchmark.runner import BenchmarkConfig
from envirollm_core.benchmark.sweep import SweepConfig, find_knee, levels_of, parse_levels
from envirollm_core.benchmark.suites import suite_prompts
from envirollm_core.errors import EnviroLLMError
from envirollm_core.paths import default_db_path
from envirollm_core.quality import JudgeConfig
from envirollm_core.settings import Settings, load_settings, read_only_mode
from envirollm_core.store import runs_to_frame
from envirollm_core.store import Store
from envirollm_core.telemetry.meters import make_energy_meter
from envirollm_core.views.formats import plain
from envirollm_core.views.load_sweeps import LEVEL_FORMATS, levels_table
from envirollm_core.views.run_table import TABLE_FORMATS, runs_table


@st.cache_resource
def job_registry() -> JobRegistry:
    """The process's jobs: every session of the app sees the batch that is running."""
    return JobRegistry()


@st.cache_data(ttl=15, show_spinner="Asking the server for its models...")
def offered_models(kind: str, url: str) -> list[ModelChoice]:
    """Servers that need no API key (Ollama, LM Studio): asked again at most every 15 s."""
    return list_models(BackendChoice(kind, url))  # type: ignore[arg-type]


@st.cache_data(ttl=15, show_spinner="Looking for a running LLM server...")
def default_backend(ollama: str, lmstudio: str) -> str:
    """The backend the page opens on: the first local server that answers, else the embedded engine."""
    return first_answering_backend([BackendChoice("ollama", ollama), BackendChoice("lmstudio", lmstudio)])


def sweep_controls(
    kind: str, url: str | None, api_key: str | None, models: list[str], prompts: list[Prompt],
    energy_from: str, energy_selector: str | None,
) -> None:
    """The Load sweep mode: one model, rising concurrency, a closed loop per level."""
    levels_col, requests_col, tokens_col = st.columns(3)
    levels_text = levels_col.text_input("Concurrency levels", value="1,2,4,8,16")
    requests = requests_col.number_input("Requests per level (0: 4 x the level, at least 8)", min_value=0,
                                         max_value=10_000, value=0)
    tokens = tokens_col.number_input("Max tokens", min_value=1, max_value=8192, value=128, key="sweep_tokens")
    ttft_col, itl_col, idle_col = st.columns(3)
    slo_ttft = ttft_col.number_input("SLO: TTFT at most (s, 0: none)", min_value=0.0, value=0.0, step=0.5)
    slo_itl = itl_col.number_input("SLO: p95 inter-token latency at most (s, 0: none)", min_value=0.0, value=0.0,
                                   step=0.05)
    idle = idle_col.number_input("Idle baseline (s)", min_value=0.0, max_value=60.0, value=3.0, step=1.0,
                                 key="sweep_idle")
    if len(models) > 1:
        st.caption(plain(f"A sweep loads one model: {models[0]}."))
    if st.button("Start the load sweep", type="primary", disabled=read_only or not models or not prompts):
        try:
            config = SweepConfig(
                model=models[0], prompts=tuple(prompts), concurrency=parse_levels(levels_text),
                requests_per_level=int(requests) or None, max_tokens=int(tokens), slo_ttft_s=slo_ttft or None,
                slo_itl_s=slo_itl or None, idle_s=float(idle),
            )
            job = registry.start(BackendChoice(kind, url, api_key), config, store_path=default_db_path(),
                                 sampler=make_energy_meter(energy_from, energy_selector))
            st.session_state["job_id"] = job.job_id
        except EnviroLLMError as exc:
            st.error(plain(str(exc)))


st.title("Benchmark")
registry = job_registry()
read_only = read_only_mode()
if read_only:
    st.warning("This instance is read-only (ENVIROLLM_READ_ONLY): benchmarks cannot be started here, and no server "
               "is asked for its models.")
try:
    settings = load_settings()
except EnviroLLMError as exc:
    st.error(plain(str(exc)))
    settings = Settings()

if "backend" not in st.session_state:  # a read-only instance asks no server: the page's warning says why
    st.session_state["backend"] = "embedded" if read_only else default_backend(ollama_url(), LMSTUDIO_URL)
kind = st.radio("Backend", list(BACKEND_TITLES), format_func=BACKEND_TITLES.get, horizontal=True, key="backend")
url: str | None = None
api_key: str | None = None
models: list[str] = []
if kind in ("ollama", "lmstudio"):
    url = st.text_input("Server URL", value=ollama_url() if kind == "ollama" else LMSTUDIO_URL, disabled=read_only)
    offered = {}
    if not read_only:
        try:
            offered = {model.name: model for model in offered_models(kind, url)}
        except EnviroLLMError as exc:
            st.warning(plain(str(exc)))
    models = st.multiselect(
        "Models", list(offered), format_func=lambda name: offered[name].label,
        placeholder="Choose one or more models" if offered else "The server offers no model",
    )
elif kind == "openai":
    url = st.text_input("Server URL", placeholder="http://localhost:8000/v1", disabled=read_only)
    api_key = st.text_input("API key (optional: used for the requests, never stored)", type="password") or None
    models = [name.strip() for name in st.text_input("Model name(s), comma-separated").split(",") if name.strip()]
else:
    try:
        embedded = {model.name: model for model in list_models(BackendChoice("embedded"))}
        models = [st.radio("Embedded model", list(embedded), format_func=lambda name: embedded[name].label)]
        st.caption(plain("Runs through llama.cpp on a loopback port with every physical core; started on demand, "
                         "no install needed. `envirollm demo` benchmarks both models in one command."))
    except EnviroLLMError as exc:
        st.error(plain(str(exc)))

mode = st.radio("Mode", ["Benchmark", "Load sweep"], horizontal=True,
                help="Benchmark: one request at a time, models compared. Load sweep: one model under rising "
                     "numbers of concurrent requests (throughput, latency and energy per token at each).")
presets = load_presets()
prompt_source = st.radio("Prompt", ["Task presets", "Verified suite", "Custom prompt"], horizontal=True)
if prompt_source == "Task presets":
    chosen = st.pills("Presets", list(presets), selection_mode="multi", default=["explanation"],
                      format_func=lambda n: presets[n].title)
    prompts = [presets[name].as_prompt() for name in chosen]
    for name in chosen:
        with st.expander(f"Prompt of {presets[name].title}", expanded=len(chosen) == 1):
            st.text(presets[name].prompt)
elif prompt_source == "Verified suite":
    prompts = suite_prompts("verified")
    st.caption(plain(f"{len(prompts)} short tasks whose answers are checked automatically (exact answers, "
                     "verifiable instructions, code run in a sandbox): quality by `verified`, no judge needed."))
else:
    text = st.text_area("Your prompt")
    prompts = [Prompt(text.strip())] if text.strip() else []

energy_col, selector_col = st.columns(2)
energy_from = energy_col.text_input(
    "Energy from", value=settings.energy_from or "local", disabled=read_only,
    help="local: this machine. prometheus://HOST:9090: the serving machine's counters (DCGM exporter, node_exporter "
         "RAPL, Kepler) as its Prometheus stores them; user:password@ in the URL is used, never stored.",
)
energy_selector = selector_col.text_input(
    "Energy selector (Prometheus label matchers)", value=settings.energy_selector or "", disabled=read_only,
    placeholder='instance="gpu-box:9400"',
) if energy_from.strip().lower() != "local" else None

if mode == "Load sweep":
    sweep_controls(kind, url, api_key, models, prompts, energy_from, energy_selector)
else:
    repeat_col, tokens_col, warmup_col, idle_col = st.columns(4)
    repeat = repeat_col.number_input("Repetitions", min_value=1, max_value=50, value=3)
    max_tokens = tokens_col.number_input("Max tokens", min_value=1, max_value=8192, value=256)
    warmup = warmup_col.number_input("Warm-up runs per model", min_value=0, max_value=5, value=1)
    idle_s = idle_col.number_input("Idle baseline (s)", min_value=0.0, max_value=60.0, value=3.0, step=1.0)

    default_judge = (f"{settings.judge_model} at {settings.judge_url} (from Settings)" if settings.judge_url
                     else "a small model of your Ollama if it has one, else the heuristic")
    judge_kind = st.radio(
        "Quality judge", ["default", "heuristic", "custom"], horizontal=True,
        format_func={"default": f"Default: {default_judge}", "heuristic": "Heuristic only (no LLM judge)",
                     "custom": "Another judge"}.get,
    )
    judge: JudgeConfig | None = None
    try:
        if judge_kind == "default":
            judge = JudgeConfig(settings.judge_url, settings.judge_model)
        elif judge_kind == "heuristic":
            judge = JudgeConfig(None, None, disabled=True)
        else:
            judge_url_col, judge_model_col, judge_key_col = st.columns(3)
            judge = JudgeConfig(
                judge_url_col.text_input("Judge URL", placeholder="http://127.0.0.1:11434/v1") or None,
                judge_model_col.text_input("Judge model") or None,
                api_key=judge_key_col.text_input("Judge API key (optional, never stored)", type="password") or None,
            )
    except EnviroLLMError as exc:
        st.error(plain(str(exc)))

    if st.button("Start the benchmark", type="primary", disabled=read_only or not models or not prompts or judge is None):
        try:
            config = BenchmarkConfig(
                models=tuple(models), prompts=tuple(prompts), repeat=int(repeat), warmup=int(warmup),
                max_tokens=int(max_tokens), idle_s=float(idle_s),
            )
            meter = make_energy_meter(energy_from, energy_selector)
            job = registry.start(BackendChoice(kind, url, api_key), config, store_path=default_db_path(), judge=judge,
                                 sampler=meter)
            st.session_state["job_id"] = job.job_id
        except EnviroLLMError as exc:
            st.error(plain(str(exc)))

column_config = {name: st.column_config.NumberColumn(format=fmt) for name, fmt in TABLE_FORMATS.items()}


def job_progress(job_id: str, live: bool) -> None:
    job = registry.get(job_id)
    if job is None:
        return
    snapshot = job.snapshot()
    if live and snapshot.is_final:
        st.rerun()  # redraw the whole page once, with a panel that no longer ticks
    st.subheader(plain(snapshot.title))
    st.progress(snapshot.fraction_done,
                text=plain(f"{snapshot.done_runs} of {snapshot.total_runs} {snapshot.unit} · {snapshot.phase}"))
    if snapshot.current_model:
        st.caption(plain(f"Current model: {snapshot.current_model}"))
    if not snapshot.is_final:
        st.button("Cancel after the run in flight" if snapshot.unit == "runs"
                  else "Cancel (requests in flight finish; finished levels are kept)", on_click=job.cancel)
    elif snapshot.state == "finished":
        failed = f", {snapshot.failed_runs} failed" if snapshot.failed_runs else ""
        st.success(f"Done: {snapshot.done_runs} {snapshot.unit} stored (batch {snapshot.batch_id}{failed}).")
        # A relative link, not st.page_link: that one needs the app's navigation, which a page run alone lacks.
        st.markdown("[See them on Results](results)")
    elif snapshot.state == "cancelled":
        st.warning(f"Cancelled: the {snapshot.done_runs} {snapshot.unit} made are stored.")
    else:
        st.error(plain(f"The benchmark failed: {snapshot.error}"))
    if snapshot.levels and snapshot.batch_id:
        levels = Store().sweep_levels(snapshot.batch_id)
        st.dataframe(levels_table(levels, find_knee(levels_of(levels))), hide_index=True, placeholder="",
                     column_config={name: st.column_config.NumberColumn(format=fmt) for name, fmt in LEVEL_FORMATS.items()})
        st.caption("Charts of every stored sweep: Results, Load tab.")
    elif snapshot.runs:
        st.dataframe(runs_table(runs_to_frame(snapshot.runs)), hide_index=True, placeholder="", column_config=column_config)


shown_job = registry.get(st.session_state.get("job_id", "")) or registry.latest()
if shown_job is not None:
    st.divider()
    running = not shown_job.snapshot().is_final
    # A running job's panel redraws itself every second; the rest of the page is left alone.
    st.fragment(job_progress, run_every=1 if running else None)(shown_job.job_id, running)
