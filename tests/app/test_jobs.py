"""The core-owned background benchmark job: progress, results as they finish, cancel, read-only, one at a time."""

from __future__ import annotations

import time

import pytest

from envirollm_core.backends.factory import BackendChoice
from envirollm_core.benchmark.jobs import JobRegistry, list_models
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.runner import BenchmarkConfig
from envirollm_core.errors import UsageError
from envirollm_core.settings import ReadOnlyError
from envirollm_core.store import Store
from tests.fakes.scripted_server import (
    ollama_chat_stream,
    ollama_model_entry,
    ollama_show,
    ollama_tags,
    openai_routes,
    openai_stream,
)
from tests.fakes.token_scripts import FAST, SLOW

MODELS = ("small-q4_k_m", "large-q8_0")


def config(models=MODELS, repeat=2, prompt="Explain entropy in one line.") -> BenchmarkConfig:
    return BenchmarkConfig(models=models, prompts=(Prompt(prompt),), repeat=repeat, warmup=0, max_tokens=32, idle_s=0)


def openai_server(serve, script=FAST, models=MODELS):
    return serve(openai_routes(list(models), lambda request: openai_stream(request.body["model"], script)))


def wait_final(job, timeout_s=60.0):
    assert job.wait(timeout_s), "the job did not end in time"
    return job.snapshot()


def test_a_job_runs_in_the_background_and_stores_every_run(serve, isolated_home):
    server = openai_server(serve)
    registry = JobRegistry()
    job = registry.start(BackendChoice("openai", f"{server.url}/v1"), config(), store_path=isolated_home / "r.duckdb")
    snapshot = wait_final(job)
    assert snapshot.state == "finished" and snapshot.error is None
    assert snapshot.total_runs == 4 and snapshot.done_runs == 4 and snapshot.fraction_done == 1.0
    assert [run.model for run in snapshot.runs] == [MODELS[0]] * 2 + [MODELS[1]] * 2
    assert all(run.status == "ok" and run.completion_tokens == 12 for run in snapshot.runs)
    stored = Store(isolated_home / "r.duckdb").runs()
    assert sorted(run.id for run in stored) == sorted(run.id for run in snapshot.runs)
    assert {run.batch_id for run in stored} == {snapshot.batch_id}
    assert registry.latest() is job and registry.get(job.job_id) is job


def test_a_job_and_a_model_listing_close_their_http_clients(serve, isolated_home, http_clients):
    server = openai_server(serve)
    assert [m.name for m in list_models(BackendChoice("lmstudio", f"{server.url}/v1"))] == list(MODELS)
    job = JobRegistry().start(BackendChoice("openai", f"{server.url}/v1"), config(models=MODELS[:1], repeat=1),
                              store_path=isolated_home / "r.duckdb")
    assert wait_final(job).state == "finished"
    assert len(http_clients) >= 2 and all(client.is_closed for client in http_clients)


def test_progress_names_the_current_model_while_running(serve, isolated_home):
    server = openai_server(serve, SLOW)
    job = JobRegistry().start(BackendChoice("openai", f"{server.url}/v1"), config(repeat=2),
                              store_path=isolated_home / "r.duckdb")
    seen = set()
    deadline = time.monotonic() + 30
    while not job.snapshot().is_final and time.monotonic() < deadline:
        snapshot = job.snapshot()
        if snapshot.state == "running":
            seen.add((snapshot.done_runs, snapshot.current_model))
        time.sleep(0.02)
    wait_final(job)
    assert (0, MODELS[0]) in seen and (2, MODELS[1]) in seen  # the second model starts after the first's two runs


def test_cancel_stops_between_runs_and_keeps_the_runs_made(serve, isolated_home):
    server = openai_server(serve, SLOW)
    job = JobRegistry().start(BackendChoice("openai", f"{server.url}/v1"), config(repeat=4),
                              store_path=isolated_home / "r.duckdb")
    deadline = time.monotonic() + 30
    while job.snapshot().done_runs < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    snapshot = wait_final(job)
    assert snapshot.state == "cancelled"
    assert 1 <= snapshot.done_runs < 8  # the run in flight finishes; nothing after it starts
    chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(chats) == snapshot.done_runs  # no request after the cancel but the one in flight, which is kept
    stored = Store(isolated_home / "r.duckdb").runs()
    assert sorted(r.id for r in stored) == sorted(r.id for r in snapshot.runs)


def test_only_one_batch_runs_at_a_time(serve, isolated_home):
    server = openai_server(serve, SLOW)
    registry = JobRegistry()
    choice = BackendChoice("openai", f"{server.url}/v1")
    first = registry.start(choice, config(repeat=3), store_path=isolated_home / "r.duckdb")
    with pytest.raises(UsageError, match="already running"):
        registry.start(choice, config(), store_path=isolated_home / "r.duckdb")
    first.cancel()
    wait_final(first)
    second = registry.start(choice, config(repeat=1, models=MODELS[:1]), store_path=isolated_home / "r.duckdb")
    assert wait_final(second).state == "finished"


def test_read_only_mode_refuses_to_start_a_job_in_the_core(serve, isolated_home, monkeypatch):
    server = openai_server(serve)
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    registry = JobRegistry()
    with pytest.raises(ReadOnlyError):
        registry.start(BackendChoice("openai", f"{server.url}/v1"), config(), store_path=isolated_home / "r.duckdb")
    assert registry.latest() is None
    assert server.requests == []


def test_read_only_mode_refuses_to_ask_a_server_for_its_models(serve, monkeypatch):
    ollama = serve({("GET", "/api/tags"): ollama_tags([ollama_model_entry("llama3:8b")])})
    server = openai_server(serve)
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    for choice in (BackendChoice("ollama", ollama.url), BackendChoice("lmstudio", f"{server.url}/v1"),
                   BackendChoice("openai", f"{server.url}/v1")):
        with pytest.raises(ReadOnlyError, match="asking a server for its models"):
            list_models(choice)
    assert ollama.requests == [] and server.requests == []
    assert [m.name for m in list_models(BackendChoice("embedded"))] == [
        "smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"]  # read from disk, the chat model first


def test_a_dead_server_fails_each_run_with_its_one_line_reason(closed_port, isolated_home):
    job = JobRegistry().start(BackendChoice("lmstudio", f"http://127.0.0.1:{closed_port}/v1"),
                              config(models=MODELS[:1], repeat=1), store_path=isolated_home / "r.duckdb")
    snapshot = wait_final(job)
    assert snapshot.state == "finished" and snapshot.failed_runs == 1
    (run,) = snapshot.runs
    assert run.status == "failed" and "\n" not in run.error and str(closed_port) in run.error


def test_the_api_key_is_used_and_never_kept(serve, isolated_home):
    server = openai_server(serve)
    secret = "sk-test-4f9c2e7d1a"
    choice = BackendChoice("openai", f"{server.url}/v1", api_key=secret)
    assert secret not in repr(choice)
    job = JobRegistry().start(choice, config(models=MODELS[:1], repeat=1), store_path=isolated_home / "r.duckdb")
    snapshot = wait_final(job)
    assert snapshot.state == "finished"
    assert server.requests[-1].headers["authorization"] == f"Bearer {secret}"
    assert secret not in repr(snapshot) and secret not in repr(vars(job))
    assert secret.encode() not in (isolated_home / "r.duckdb").read_bytes()


def test_a_custom_server_needs_a_url():
    with pytest.raises(UsageError, match="needs its URL"):
        BackendChoice("openai", "  ")


def test_ollama_models_are_listed_with_size_and_quantization(serve):
    entries = [ollama_model_entry("llama3:8b", "Q4_K_M", "8.0B"), ollama_model_entry("phi3:mini", "Q8_0", "3.8B")]
    server = serve({("GET", "/api/tags"): ollama_tags(entries)})
    models = list_models(BackendChoice("ollama", server.url))
    assert [(m.name, m.quantization, m.parameter_size) for m in models] == [
        ("llama3:8b", "q4_k_m", "8.0B"), ("phi3:mini", "q8_0", "3.8B")]
    assert models[0].size_gb == pytest.approx(4.92)
    assert models[0].label == "llama3:8b (4.9 GB, 8.0B, q4_k_m)"


def test_an_ollama_batch_runs_through_the_job(serve, isolated_home):
    entry = ollama_model_entry("llama3:8b")
    server = serve({
        ("GET", "/api/tags"): ollama_tags([entry]),
        ("POST", "/api/show"): ollama_show(entry),
        ("GET", "/api/version"): ollama_tags([]),
        ("POST", "/api/chat"): ollama_chat_stream("llama3:8b", FAST),
    })
    job = JobRegistry().start(BackendChoice("ollama", server.url), config(models=("llama3:8b",), repeat=2),
                              store_path=isolated_home / "r.duckdb")
    snapshot = wait_final(job)
    assert snapshot.state == "finished" and snapshot.failed_runs == 0
    assert {run.backend for run in snapshot.runs} == {"ollama"}
    assert Store(isolated_home / "r.duckdb").count() == 2
