"""Which OpenAI-compatible server it is, and what it says about the model (scripted servers)."""

from __future__ import annotations

from envirollm_core.backends.openai_compat import OpenAIBackend
from tests.fakes.gguf_file import write_gguf
from tests.fakes.scripted_server import TokenScript, json_reply, openai_routes, openai_stream

FAST = TokenScript(tokens=["a"], ttft_s=0.0, tokens_per_s=1000.0)


def test_lmstudio_quantization_comes_from_its_api(serve):
    entry = {"id": "qwen2.5-7b-instruct", "object": "model", "type": "llm", "publisher": "lmstudio-community",
             "arch": "qwen2", "compatibility_type": "gguf", "quantization": "Q4_K_M", "state": "loaded",
             "max_context_length": 32768}
    server = serve(openai_routes([entry["id"]], openai_stream(entry["id"], FAST), {
        ("GET", "/api/v0/models"): json_reply({"object": "list", "data": [entry]}),
        ("GET", f"/api/v0/models/{entry['id']}"): json_reply(entry),
    }))
    backend = OpenAIBackend(f"{server.url}/v1")
    assert backend.name == "lmstudio"
    info = backend.model_info(entry["id"])
    assert (info.quantization, info.quantization_source) == ("q4_k_m", "server")
    assert (info.family, info.context_length) == ("qwen2", 32768)


def test_llamacpp_reads_the_gguf_named_by_props(serve, tmp_path):
    gguf = write_gguf(tmp_path / "llama-3-8b.gguf", 18)  # q6_k, though the alias says nothing
    props = {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1, "model_path": str(gguf),
             "build_info": "b4567-abcdef"}
    server = serve(openai_routes(["local"], openai_stream("local", FAST), {("GET", "/props"): json_reply(props)}))
    backend = OpenAIBackend(f"{server.url}/v1")
    assert backend.name == "llamacpp"
    assert backend.server_description() == {"server": "llamacpp", "server_version": "b4567-abcdef"}
    info = backend.model_info("local")
    assert (info.quantization, info.quantization_source, info.context_length) == ("q6_k", "gguf", 4096)


def test_vllm_quantization_from_the_served_path(serve):
    models = {"object": "list", "data": [{"id": "llama", "object": "model", "root": "TheBloke/Llama-2-7B-AWQ",
                                          "max_model_len": 4096}]}
    server = serve({
        ("GET", "/v1/models"): json_reply(models),
        ("GET", "/version"): json_reply({"version": "0.6.3"}),
    })
    backend = OpenAIBackend(f"{server.url}/v1")
    assert backend.name == "vllm"
    info = backend.model_info("llama")
    assert (info.quantization, info.quantization_source, info.context_length) == ("awq", "name", 4096)


def test_unknown_server_kind_is_plain_openai(serve):
    server = serve(openai_routes(["gemma-2-9b-it-Q5_K_M"], openai_stream("x", FAST)))
    backend = OpenAIBackend(f"{server.url}/v1")
    assert backend.name == "openai"
    info = backend.model_info("gemma-2-9b-it-Q5_K_M")
    assert (info.quantization, info.quantization_source) == ("q5_k_m", "name")


def test_probe_of_a_dead_server_does_not_raise(closed_port):
    backend = OpenAIBackend(f"http://127.0.0.1:{closed_port}/v1")
    assert backend.name == "openai"
    assert backend.model_info("phi-3-mini-4k-instruct-q4").quantization == "q4"
