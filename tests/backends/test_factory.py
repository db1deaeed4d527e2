"""The one backend factory: a `BackendChoice` opens the backend the CLI and the app both talk through."""

from __future__ import annotations

from contextlib import closing

import pytest

from envirollm_core.backends.factory import BackendChoice, open_backend
from envirollm_core.backends.ollama import OllamaBackend
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.backends.server_metadata import LMSTUDIO_URL
from envirollm_core.errors import UsageError
from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream

MODEL = "tiny-q4_0"


def test_a_choice_is_checked_where_it_is_made():
    with pytest.raises(UsageError, match="unknown backend 'vllm'"):
        BackendChoice("vllm")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="needs its URL"):
        BackendChoice("openai", "  ")
    assert "sk-secret" not in repr(BackendChoice("openai", "http://127.0.0.1:9/v1", api_key="sk-secret"))


def test_each_kind_opens_its_backend_with_the_choices_timeouts(serve, monkeypatch):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, TokenScript(tokens=["hi"], ttft_s=0.01, tokens_per_s=100.0))))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5555")
    with closing(open_backend(BackendChoice("ollama", read_timeout_s=7.0, run_timeout_s=70.0))) as ollama:
        assert isinstance(ollama, OllamaBackend)
        assert (ollama.base_url, ollama.read_timeout_s, ollama.run_timeout_s) == ("http://127.0.0.1:5555", 7.0, 70.0)
    with closing(open_backend(BackendChoice("lmstudio"))) as lmstudio:
        assert isinstance(lmstudio, OpenAIBackend)
        assert (lmstudio.name, lmstudio.base_url) == ("lmstudio", LMSTUDIO_URL)
    choice = BackendChoice("openai", f"{server.url}/v1", api_key="sk-test", read_timeout_s=9.0, run_timeout_s=90.0)
    with closing(open_backend(choice)) as custom:
        assert isinstance(custom, OpenAIBackend)
        assert (custom.base_url, custom.read_timeout_s, custom.run_timeout_s) == (f"{server.url}/v1", 9.0, 90.0)
        assert custom.list_models() == [MODEL]
    assert all(request.headers.get("authorization") == "Bearer sk-test" for request in server.requests)


@pytest.mark.engine
def test_the_embedded_backend_talks_to_the_engine_it_is_given(embedded_engine):
    with pytest.raises(TypeError, match="running engine"):
        open_backend(BackendChoice("embedded"))
    with closing(open_backend(BackendChoice("embedded", read_timeout_s=11.0), embedded_engine)) as backend:
        assert (backend.name, backend.base_url, backend.server_pid()) == (
            "embedded", embedded_engine.base_url, embedded_engine.pid)
        assert backend.engine_threads == embedded_engine.threads
        assert embedded_engine.model_id in backend.list_models()
    assert embedded_engine.is_running()  # closing the backend leaves the engine to whoever started it
