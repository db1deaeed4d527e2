"""`envirollm benchmark`, `benchmark-openai` and `demo` as a user runs them (subprocesses)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

import psutil
import pytest

from envirollm_core.store import Store
from tests.fakes.scripted_server import (
    TokenScript,
    json_reply,
    ollama_chat_stream,
    ollama_model_entry,
    ollama_show,
    ollama_tags,
    openai_error,
    openai_routes,
    openai_stream,
)

CLI = [sys.executable, "-m", "envirollm_core"]
MODEL = "llama-3-8b-instruct"
SCRIPT = TokenScript(tokens=[f"w{i} " for i in range(16)], ttft_s=0.03, tokens_per_s=300.0)
JSON_KEYS = {
    "id", "model", "backend", "base_url", "prompt_hash", "preset", "repeat_index", "status", "error", "ttft_s", "e2e_s",
    "prompt_tokens", "completion_tokens", "token_count_source", "decode_tps", "itl_p50_s", "itl_p95_s", "energy_wh",
    "energy_net_wh", "energy_per_token_wh", "components", "avg_power_w", "quantization", "quality_score",
    "quality_method", "response",
}
QUICK = ["--idle-s", "0.2", "--judge", "none", "--max-tokens", "16"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_benchmark_openai_json_is_the_only_stdout(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--preset", "explanation,code generation",
                     "--repeat", "2", "--api-key", "sk-never-stored", "--json", *QUICK)
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert len(runs) == 4 and JSON_KEYS <= set(runs[0])
    assert [(r["preset"], r["repeat_index"]) for r in runs] == [
        ("explanation", 0), ("explanation", 1), ("code-generation", 0), ("code-generation", 1)]
    assert all(r["status"] == "ok" and r["completion_tokens"] == 16 and r["energy_wh"] > 0 for r in runs)
    assert all(r["components"] and all(c["source"] for c in r["components"]) for r in runs)
    assert runs[0]["quality_method"] == "heuristic"
    assert "1/4" in result.stderr and "4/4" in result.stderr  # progress on stderr
    stored = Store().runs()
    assert {r.id for r in stored} == {r["id"] for r in runs}
    assert "sk-never-stored" not in result.stdout + result.stderr
    assert server.requests[-1].headers["authorization"] == "Bearer sk-never-stored"


def test_table_for_people_and_the_default_judge_offline(serve, closed_port, tmp_path):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a prime.\n---\nName a colour.\n", encoding="utf-8")
    # No judge named and no Ollama to lend one: the heuristic grades, and says so.
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--repeat", "1",
                     "--prompt-file", str(prompts), "--idle-s", "0.2", "--max-tokens", "16",
                     env={"OLLAMA_HOST": f"127.0.0.1:{closed_port}"})
    assert result.returncode == 0, result.stderr
    header, rule, *rows = result.stdout.splitlines()[:4]
    assert header.split()[:4] == ["model", "task", "#", "status"] and set(rule.replace(" ", "")) == {"-"}
    assert len(rows) == 2 and all(row.startswith(MODEL) and " ok " in row and "cpu:" in row for row in rows)
    assert [r.body["messages"][0]["content"] for r in server.requests if r.path == "/v1/chat/completions"][-2:] == [
        "Name a prime.", "Name a colour."]
    assert "quality (0-100) by: heuristic" in result.stdout


def test_faults_are_failed_runs_exit_1_no_traceback(serve):
    counter = itertools.count()
    replies = [
        openai_stream(MODEL, SCRIPT),  # warm-up
        openai_error(500, "CUDA out of memory"),
        openai_stream(MODEL, SCRIPT, drop_after=4),
        openai_stream(MODEL, SCRIPT, malformed_after=2),
        openai_stream(MODEL, TokenScript(["late"], ttft_s=3.0, tokens_per_s=1.0), noise=False),
        openai_stream(MODEL, SCRIPT),
    ]
    server = serve(openai_routes([MODEL], lambda request: replies[min(next(counter), len(replies) - 1)]))
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", f"{MODEL},ghost", "--repeat", "5",
                     "--timeout", "0.5", "--json", *QUICK)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    runs = json.loads(result.stdout)
    assert [r["status"] for r in runs] == ["failed"] * 4 + ["ok"] + ["failed"] * 5
    reasons = [r["error"] for r in runs if r["error"]]
    assert all(reason and "\n" not in reason for reason in reasons)
    assert f"it has: {MODEL}" in runs[-1]["error"]
    assert len(Store().runs()) == 10  # every run stored, failed ones too


def test_connection_refused_exit_1(closed_port):
    result = run_cli("benchmark-openai", "--url", f"http://127.0.0.1:{closed_port}/v1", "--model", MODEL,
                     "--repeat", "2", *QUICK)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot connect" in result.stdout and "2 failed" in result.stderr
    assert [r.status for r in Store().runs()] == ["failed", "failed"]


def ollama_routes():
    entry = ollama_model_entry("llama3:8b", quantization_level="Q4_0")
    return {
        ("GET", "/api/tags"): ollama_tags([entry, ollama_model_entry("phi3:mini")]),
        ("POST", "/api/show"): ollama_show(entry),
        ("GET", "/api/version"): json_reply({"version": "0.5.7"}),
        ("POST", "/api/chat"): ollama_chat_stream("llama3:8b", SCRIPT),
    }


def test_benchmark_ollama_from_ollama_host(serve):
    server = serve(ollama_routes())
    result = run_cli("benchmark", "--models", "llama3:8b", "--prompt", "Why is the sky blue?", "--repeat", "1",
                     "--json", *QUICK, env={"OLLAMA_HOST": server.url})
    assert result.returncode == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert (run["backend"], run["base_url"], run["preset"]) == ("ollama", server.url, None)
    assert (run["quantization"], run["quantization_source"], run["token_count_source"]) == ("q4_0", "server", "server-native")
    assert run["environment"]["server_version"] == "0.5.7" and run["server_decode_tps"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["benchmark-openai", "--url", "localhost:1234", "--model", "m"], "not an http(s) URL"),
        (["benchmark-openai", "--url", "http://127.0.0.1:9/v1", "--model", "m", "--repeat", "0"], "--repeat must be at least 1"),
        (["benchmark-openai", "--url", "http://127.0.0.1:9/v1", "--model", " , "], "no model named"),
        (["benchmark", "--models", "a", "--preset", "poetry"], "unknown preset 'poetry'"),
        (["benchmark", "--models", "a", "--prompt-file", "/nonexistent/prompts.txt"], "prompt file not found"),
        (["benchmark", "--models", "a", "--judge-url", "http://127.0.0.1:9/v1"], "--judge-url needs --judge-model"),
        (["benchmark", "--models", "a", "--timeout", "0"], "--timeout must be positive"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and message in result.stderr.strip().splitlines()[-1]
    assert not Store().runs()


def test_read_only_database_refuses_before_running(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, *QUICK,
                     env={"ENVIROLLM_READ_ONLY": "1"})
    assert result.returncode == 2 and "read-only" in result.stderr and "Traceback" not in result.stderr
    assert not server.requests  # refused before any request


@pytest.mark.engine
@pytest.mark.timeout(600)  # two models, one after the other
def test_demo_on_a_fresh_install_stores_runs_of_both_embedded_models(isolated_home):
    from envirollm_core.quality.heuristic import heuristic_score

    assert not isolated_home.exists()  # a fresh install: no database yet
    # One thread: on a CI machine shared with other jobs, llama.cpp with a thread per core waits on every busy core
    # (20x slower here under load); the default, every physical core, is checked in tests/backends/test_embedded.py.
    command = [*CLI, "demo", "--preset", "explanation", "--repeat", "1", "--json", "--max-tokens", "48", "--idle-s", "1",
               "--judge", "none", "--threads", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as demo:
        stdout, stderr = demo.communicate(timeout=400)
    assert demo.returncode == 0, stderr
    assert "Traceback" not in stderr
    runs = json.loads(stdout)
    assert [(r["model"], r["quantization"], r["quantization_source"]) for r in runs] == [
        ("smollm2-135m-instruct-q4_1", "q4_1", "gguf"), ("gemma-3-270m-q4_k_m", "q4_k_m", "gguf"),
    ]
    for run in runs:
        assert (run["backend"], run["status"], run["preset"]) == ("embedded", "ok", "explanation")
        assert run["engine_threads"] == 1  # the engine's thread count, stored with the run
        assert run["completion_tokens"] > 0 and run["token_count_source"] in ("usage", "server-native", "chunks")
        assert run["ttft_s"] > 0 and run["e2e_s"] >= run["ttft_s"] and run["response"].strip()
        assert run["energy_wh"] > 0 and run["energy_per_token_wh"] > 0
        assert {c["source"] for c in run["components"]} <= {"counter", "power-integral", "average-power", "estimate"}
        assert run["server_peak_rss_mb"] > 50  # the engine's process was tracked: it holds the model
    chat = runs[0]  # the instruction-tuned model answers the question, in English, without echoing it
    assert not heuristic_score(chat["prompt"], chat["response"]).flags, chat["response"]
    assert re.search(r"qubit|quantum", chat["response"], re.IGNORECASE), chat["response"]
    assert sorted(r.id for r in Store().runs()) == sorted(r["id"] for r in runs)
    marker = f"--parent-pid {demo.pid} "
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or []) + " "]
    assert not left, "the demo left its engine running"


def test_benchmark_openai_closes_its_http_client(serve, http_clients, capsys):
    # in-process, unlike the rest of this file: the clients it makes are only visible from inside
    from envirollm_core.cli import build_parser

    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    args = build_parser().parse_args(["benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL,
                                      "--repeat", "1", "--warmup", "0", "--json", *QUICK])
    assert args.handler(args) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert http_clients and all(client.is_closed for client in http_clients)


def _suite_answer(request) -> TokenScript:
    """Right answers to two suite tasks, "I don't know." to the rest."""
    prompt = request.body["messages"][-1]["content"]
    answer = {"What is 17 + 25? Answer with the number only.": "42",
              "What is the capital of France? Answer in one word.": "Paris."}.get(prompt, "I don't know.")
    return TokenScript(tokens=[f"{word} " for word in answer.split()], ttft_s=0.01, tokens_per_s=500.0)


def test_the_verified_suite_gives_pass_rates_by_execution(serve):
    server = serve(openai_routes([MODEL], lambda request: openai_stream(MODEL, _suite_answer(request))))
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--suite", "verified",
                     "--repeat", "1", "--warmup", "0", *QUICK, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "quality (0-100) by: verified" in result.stdout
    # the two right answers, and "I don't know." is indeed at most 20 words
    assert f"verified pass rate {MODEL} [all]: 3/45 = 7% (95 % CI" in result.stdout
    assert f"verified pass rate {MODEL} [code]: 0/10" in result.stdout
    runs = Store().runs()
    assert len(runs) == 45 and {r.quality_method for r in runs} == {"verified"}
    assert sorted(r.preset for r in runs if r.quality_score == 100.0) == [
        "verified/arith-add", "verified/fact-capital-france", "verified/if-max-words"]


def test_an_unknown_suite_is_refused_before_any_request(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--suite", "hard", *QUICK)
    assert result.returncode == 2 and "unknown suite 'hard'; suites: verified" in result.stderr
    assert "Traceback" not in result.stderr and not server.requests


def test_demo_refuses_an_unknown_model_and_bad_threads_at_once():
    for args, message in ((["--model", "llama"], "unknown embedded model 'llama'"),
                          (["--threads", "0"], "--threads must be at least 1")):
        result = run_cli("demo", *args, *QUICK)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
