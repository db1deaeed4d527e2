"""The Ollama backend against a scripted server following Ollama's documented API."""

from __future__ import annotations

import pytest

from envirollm_core.backends.base import ChatRequest, UnknownModelError
from envirollm_core.backends.ollama import OllamaBackend, ollama_url
from envirollm_core.benchmark.metrics import measure_stream
from tests.fakes.scripted_server import (
    TokenScript,
    json_reply,
    ollama_chat_stream,
    ollama_model_entry,
    ollama_show,
    ollama_tags,
)
from tests.fakes.timing import REPEATS, assert_timing_matches

MODEL = "llama3:8b-instruct-q4_K_M"
SCRIPT = TokenScript(tokens=[f"w{i} " for i in range(40)], ttft_s=0.25, tokens_per_s=50.0)
ENTRY = ollama_model_entry(MODEL, quantization_level="Q4_K_M", parameter_size="8.0B")


def routes(chat, models=(ENTRY,)):
    return {
        ("GET", "/api/tags"): ollama_tags(models),
        ("POST", "/api/show"): ollama_show(ENTRY, context_length=8192),
        ("GET", "/api/version"): json_reply({"version": "0.5.7"}),
        ("POST", "/api/chat"): chat,
    }


@pytest.mark.parametrize(
    ("env", "url"),
    [
        (None, "http://localhost:11434"),
        ("", "http://localhost:11434"),
        ("http://gpu-box:11434", "http://gpu-box:11434"),
        ("gpu-box", "http://gpu-box:11434"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("https://ollama.example/", "https://ollama.example:11434"),
    ],
)
def test_url_from_ollama_host(monkeypatch, env, url):
    if env is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", env)
    assert ollama_url() == url


def test_timing_and_server_native_counts(serve):
    server = serve(routes(ollama_chat_stream(MODEL, SCRIPT, prompt_tokens=11, eval_duration_s=0.8)))
    backend = OllamaBackend(server.url)
    streams = [measure_stream(backend.stream(ChatRequest(MODEL, "Explain entropy.", 64, 0.0, 7))) for _ in range(REPEATS)]
    assert_timing_matches([(m.ttft_s, m.decode_tps) for m in streams], server.requests, SCRIPT)
    metrics = streams[0]
    assert metrics.error is None
    assert (metrics.completion_tokens, metrics.prompt_tokens, metrics.token_count_source) == (40, 11, "server-native")
    assert metrics.server_decode_tps == pytest.approx(40 / 0.8)
    assert metrics.server_prompt_tps == pytest.approx(11 / 0.02)
    assert metrics.finish_reason == "length"
    assert metrics.response == "".join(SCRIPT.tokens)


def test_request_keeps_the_model_loaded_and_sets_options(serve):
    fast = TokenScript(tokens=["a", "b"], ttft_s=0.01, tokens_per_s=1000)
    server = serve(routes(ollama_chat_stream(MODEL, fast)))
    measure_stream(OllamaBackend(server.url, keep_alive="30m").stream(ChatRequest(MODEL, "hi", 32, 0.5, 3)))
    body = server.requests[-1].body
    assert body["keep_alive"] == "30m" and body["stream"] is True
    assert body["options"] == {"num_predict": 32, "temperature": 0.5, "seed": 3}


def test_thinking_is_reasoning(serve):
    server = serve(routes(ollama_chat_stream(MODEL, SCRIPT, thinking_tokens=4)))
    streams = [measure_stream(OllamaBackend(server.url).stream(ChatRequest(MODEL, "hi", 64))) for _ in range(REPEATS)]
    assert_timing_matches([(m.ttft_s, m.decode_tps) for m in streams], server.requests[-REPEATS:], SCRIPT)
    assert all(m.reasoning_tokens == 4 and m.response == "".join(SCRIPT.tokens[4:]) for m in streams)


def test_models_metadata_and_version(serve):
    server = serve(routes(ollama_chat_stream(MODEL, SCRIPT), models=(ENTRY, ollama_model_entry("phi3:mini"))))
    backend = OllamaBackend(server.url)
    assert backend.list_models() == [MODEL, "phi3:mini"]
    info = backend.model_info(MODEL)
    assert (info.quantization, info.quantization_source) == ("q4_k_m", "server")
    assert (info.family, info.parameter_size, info.context_length) == ("llama", "8.0B", 8192)
    assert server.requests[-1].body == {"model": MODEL}
    assert backend.server_description() == {"server": "ollama", "server_version": "0.5.7"}


def test_the_listing_names_only_models_that_have_a_name(serve):
    nameless = {"size": 10, "details": {}}
    server = serve({("GET", "/api/tags"): json_reply({"models": [ENTRY, nameless, "junk"]})})
    assert OllamaBackend(server.url).list_models() == [MODEL]  # not "None"
    odd = serve({("GET", "/api/tags"): json_reply(["not", "an", "object"])})
    assert OllamaBackend(odd.url).list_models() == []


def test_unknown_model_lists_what_ollama_has(serve):
    missing = json_reply({"error": 'model "ghost" not found, try pulling it first'}, status=404)
    server = serve(routes(missing, models=(ENTRY, ollama_model_entry("phi3:mini"))))
    with pytest.raises(UnknownModelError, match=f"it has: {MODEL}, phi3:mini"):
        list(OllamaBackend(server.url).stream(ChatRequest("ghost", "hi", 8)))


def test_faults_are_one_line_errors(serve, closed_port):
    refused = measure_stream(OllamaBackend(f"http://127.0.0.1:{closed_port}").stream(ChatRequest(MODEL, "hi", 8)))
    assert "cannot connect to Ollama" in refused.error and "ollama serve" in refused.error
    server = serve(routes(json_reply({"error": "llama runner process has terminated"}, status=500)))
    failed = measure_stream(OllamaBackend(server.url).stream(ChatRequest(MODEL, "hi", 8)))
    assert failed.error == f"{server.url}/api/chat answered HTTP 500: llama runner process has terminated"
    dropped = serve(routes(ollama_chat_stream(MODEL, SCRIPT, drop_after=5)))
    cut = measure_stream(OllamaBackend(dropped.url).stream(ChatRequest(MODEL, "hi", 8)))
    assert "dropped midway after 5 chunks" in cut.error and cut.response == "".join(SCRIPT.tokens[:5])
    for metrics in (refused, failed, cut):
        assert "\n" not in metrics.error


def test_a_name_without_tag_is_latest(serve):
    from envirollm_core.backends.base import model_listed

    assert model_listed("llama3", ["llama3:latest", "phi3:mini"]) and not model_listed("llama3", ["llama3:8b"])
