"""Benchmark models on identical prompts. The batch runs in a background job owned by the core, so a click
elsewhere on the page never stops it; this page only starts it, shows its progress, and can cancel it."""

import streamlit as st

from envirollm_core.backends.ollama import ollama_url
from envirollm_core.backends.server_metadata import LMSTUDIO_URL
from envirollm_core.bench.jobs import (
    BACKEND_TITLES,
    BackendChoice,
    JobRegistry,
    ModelChoice,
    list_models,
)
from envirollm_core.bench.presets import Prompt, load_presets
from envirollm_core.bench.runner import BenchmarkConfig
from envirollm_core.bench.suites import suite_prompts
from envirollm_core.errors import EnviroLLMError
from envirollm_core.paths import default_db_path
from envirollm_core.quality import JudgeConfig
from envirollm_core.settings import Settings, load_settings, read_only_mode
from envirollm_core.store import runs_to_frame
from envirollm_core.views import TABLE_FORMATS, plain, runs_table


@st.cache_resource
def job_registry() -> JobRegistry:
    """The process's jobs: every session of the app sees the batch that is running."""
    return JobRegistry()


@st.cache_data(ttl=15, show_spinner="Asking the server for its models...")
def offered_models(kind: str, url: str) -> list[ModelChoice]:
    """Servers that need no API key (Ollama, LM Studio): asked again at most every 15 s."""
    return list_models(BackendChoice(kind, url))  # type: ignore[arg-type]


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

kind = st.radio("Backend", list(BACKEND_TITLES), format_func=BACKEND_TITLES.get, horizontal=True)
url: str | None = None
api_key: str | None = None
models: list[str] = []
if kind in ("ollama", "lmstudio"):
    url = st.text_input("Server URL", value=ollama_url() if kind == "ollama" else LMSTUDIO_URL, disabled=read_only)
    try:
        offered = {model.name: model for model in offered_models(kind, url)}
    except EnviroLLMError as exc:
        st.warning(plain(str(exc)))
        offered = {}
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

presets = load_presets()
prompt_source = st.radio("Prompt", ["Task presets", "Verified suite", "Custom prompt"], horizontal=True)
if prompt_source == "Task presets":
    chosen = st.multiselect("Presets", list(presets), default=["explanation"], format_func=lambda n: presets[n].title)
    prompts = [presets[name].as_prompt() for name in chosen]
elif prompt_source == "Verified suite":
    prompts = suite_prompts("verified")
    st.caption(plain(f"{len(prompts)} short tasks whose answers are checked automatically (exact answers, "
                     "verifiable instructions, code run in a sandbox): quality by `verified`, no judge needed."))
else:
    text = st.text_area("Your prompt")
    prompts = [Prompt(text.strip())] if text.strip() else []

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
        job = registry.start(BackendChoice(kind, url, api_key), config, store_path=default_db_path(), judge=judge)
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
                text=plain(f"{snapshot.done_runs} of {snapshot.total_runs} runs · {snapshot.phase}"))
    if snapshot.current_model:
        st.caption(plain(f"Current model: {snapshot.current_model}"))
    if not snapshot.is_final:
        st.button("Cancel after the run in flight", on_click=job.cancel)
    elif snapshot.state == "finished":
        failed = f", {snapshot.failed_runs} failed" if snapshot.failed_runs else ""
        st.success(f"Done: {snapshot.done_runs} runs stored (batch {snapshot.batch_id}{failed}). See them on Results.")
    elif snapshot.state == "cancelled":
        st.warning(f"Cancelled: the {snapshot.done_runs} runs made are stored.")
    else:
        st.error(plain(f"The benchmark failed: {snapshot.error}"))
    if snapshot.runs:
        st.dataframe(runs_table(runs_to_frame(snapshot.runs)), hide_index=True, column_config=column_config)


shown_job = registry.get(st.session_state.get("job_id", "")) or registry.latest()
if shown_job is not None:
    st.divider()
    running = not shown_job.snapshot().is_final
    # A running job's panel redraws itself every second; the rest of the page is left alone.
    st.fragment(job_progress, run_every=1 if running else None)(shown_job.job_id, running)
