"""The OpenAI-compatible backend against scripted servers with known timing and faults."""

from __future__ import annotations

import statistics

import pytest

from envirollm_core.backends.base import BackendError, ChatRequest, UnknownModelError
from envirollm_core.backends.openai_compat import OpenAIBackend, stream_text
from envirollm_core.benchmark.metrics import measure_stream
from tests.fakes.scripted_server import (
    Reply,
    TokenScript,
    openai_chunk,
    openai_error,
    openai_routes,
    openai_stream,
    sse,
)
from tests.fakes.timing import REPEATS, assert_timing_matches

MODEL = "llama-3-8b-instruct"
SCRIPT = TokenScript(tokens=[f"w{i} " for i in range(40)], ttft_s=0.25, tokens_per_s=50.0)
FAST = TokenScript(tokens=[f"w{i} " for i in range(40)], ttft_s=0.02, tokens_per_s=1000.0)  # where timing is not the point


def backend_for(server, **kwargs) -> OpenAIBackend:
    return OpenAIBackend(f"{server.url}/v1", name="openai", **kwargs)


def request(model: str = MODEL, max_tokens: int = 64) -> ChatRequest:
    return ChatRequest(model=model, prompt="Explain entropy.", max_tokens=max_tokens, temperature=0.0, seed=7)


@pytest.mark.parametrize("usage", [True, False], ids=["usage-chunk", "no-usage"])
def test_timing_matches_the_scripted_truth(serve, usage):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT, usage=usage)))
    backend = backend_for(server)
    streams = [measure_stream(backend.stream(request())) for _ in range(REPEATS)]
    assert_timing_matches([(m.ttft_s, m.decode_tps) for m in streams], server.requests, SCRIPT)
    for metrics, sent in zip(streams, server.requests, strict=True):
        assert metrics.error is None
        assert metrics.completion_tokens == 40
        assert metrics.token_count_source == ("usage" if usage else "chunks")
        assert metrics.prompt_tokens == (12 if usage else None)
        assert metrics.response == "".join(SCRIPT.tokens)
        assert metrics.finish_reason == "length"
        assert metrics.e2e_s >= sent.token_sent_at_s[-1] - sent.received_at_s  # it ends after the last token left
    assert statistics.median(m.itl_p50_s for m in streams) == pytest.approx(1 / SCRIPT.tokens_per_s, abs=0.005)


def test_role_chunks_keepalives_and_empty_deltas_are_not_the_first_token(serve):
    # The role-only chunk comes at once and a keep-alive at half the TTFT: counting either would halve TTFT or worse.
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT, noise=True)))
    streams = [measure_stream(backend_for(server).stream(request())) for _ in range(REPEATS)]
    assert_timing_matches([(m.ttft_s, m.decode_tps) for m in streams], server.requests, SCRIPT)
    assert all(m.completion_tokens == 40 for m in streams)  # nor was the empty delta counted as a chunk-token


def test_request_body_asks_for_usage_and_carries_the_sampling_parameters(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST)))
    measure_stream(backend_for(server, api_key="sk-secret").stream(request()))
    sent = server.requests[-1]
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["seed"]) == (64, 0.0, 7)
    assert sent.body["messages"] == [{"role": "user", "content": "Explain entropy."}]
    assert sent.headers["authorization"] == "Bearer sk-secret"


def test_reasoning_counts_as_first_token_and_is_kept_apart(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT, reasoning_tokens=5)))
    streams = [measure_stream(backend_for(server).stream(request())) for _ in range(REPEATS)]
    assert_timing_matches([(m.ttft_s, m.decode_tps) for m in streams], server.requests, SCRIPT)
    for metrics in streams:
        assert metrics.reasoning_tokens == 5
        assert metrics.response == "".join(SCRIPT.tokens[5:])  # the answer, without the reasoning


def test_llamacpp_timings_give_server_native_counts_and_rates(serve):
    timings = {"prompt_n": 9, "prompt_ms": 30.0, "prompt_per_second": 300.0,
               "predicted_n": 40, "predicted_ms": 800.0, "predicted_per_second": 50.0}
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST, usage=False, timings=timings)))
    metrics = measure_stream(backend_for(server).stream(request()))
    assert metrics.token_count_source == "server-native"
    assert (metrics.completion_tokens, metrics.prompt_tokens) == (40, 9)
    assert (metrics.server_decode_tps, metrics.server_prompt_tps) == (50.0, 300.0)


def test_tool_call_chunk_counts_as_a_token(serve):
    parts = [
        (0.0, sse(openai_chunk(MODEL, {"role": "assistant"}))),
        (0.1, sse(openai_chunk(MODEL, {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]}))),
        (0.15, sse(openai_chunk(MODEL, {}, finish_reason="tool_calls"))),
        (0.15, b"data: [DONE]\n\n"),
    ]
    server = serve(openai_routes([MODEL], Reply(parts=parts, content_type="text/event-stream")))
    metrics = measure_stream(backend_for(server).stream(request()))
    assert metrics.ttft_s >= 0.1 - 0.002  # the tool call at 0.1 s was the first token, not the role chunk at 0
    assert metrics.finish_reason == "tool_calls" and metrics.completion_tokens == 1


def test_models_are_listed(serve):
    server = serve(openai_routes([MODEL, "phi-3-mini"], openai_stream(MODEL, FAST)))
    assert backend_for(server).list_models() == [MODEL, "phi-3-mini"]


def error_of(backend: OpenAIBackend, req: ChatRequest | None = None) -> str:
    metrics = measure_stream(backend.stream(req or request()))
    assert metrics.error is not None
    assert "\n" not in metrics.error
    return metrics.error


def test_connection_refused(closed_port):
    message = error_of(OpenAIBackend(f"http://127.0.0.1:{closed_port}/v1", name="openai"))
    assert f"cannot connect to http://127.0.0.1:{closed_port}/v1" in message and "is the server running" in message


def test_http_500_gives_the_servers_message(serve):
    server = serve(openai_routes([MODEL], openai_error(500, "CUDA out of memory")))
    assert error_of(backend_for(server)) == f"{server.url}/v1 answered HTTP 500: CUDA out of memory"


def test_stream_dropped_midway_keeps_what_arrived(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST, drop_after=10)))
    metrics = measure_stream(backend_for(server).stream(request()))
    assert "dropped midway" in metrics.error
    assert metrics.response == "".join(FAST.tokens[:10]) and metrics.ttft_s is not None


def test_malformed_chunk(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST, malformed_after=3)))
    # Chunk 6: after the role chunk, a token, the empty delta and two more tokens.
    assert error_of(backend_for(server)).startswith("malformed chunk 6 from the server")


def test_read_timeout(serve):
    slow = TokenScript(tokens=["a", "b"], ttft_s=2.0, tokens_per_s=10.0)
    server = serve(openai_routes([MODEL], openai_stream(MODEL, slow, noise=False)))
    message = error_of(backend_for(server, read_timeout_s=0.3))
    assert "read timeout" in message or "did not answer in time" in message


def test_unknown_model_lists_the_servers_models(serve):
    chat = openai_error(404, "The model `ghost` does not exist.")
    server = serve(openai_routes([MODEL, "phi-3-mini"], chat))
    with pytest.raises(UnknownModelError, match=f"'ghost' is not on .*; it has: {MODEL}, phi-3-mini"):
        list(backend_for(server).stream(request("ghost")))


def test_stream_ending_without_finish_is_an_error(serve):
    parts = [(0.0, sse(openai_chunk(MODEL, {"content": "half"})))]
    server = serve(openai_routes([MODEL], Reply(parts=parts, content_type="text/event-stream")))
    assert "without a finish reason" in error_of(backend_for(server))


def test_error_event_midstream(serve):
    parts = [(0.0, sse(openai_chunk(MODEL, {"content": "a"}))), (0.01, sse({"error": {"message": "slot crashed"}}))]
    server = serve(openai_routes([MODEL], Reply(parts=parts, content_type="text/event-stream")))
    assert error_of(backend_for(server)) == "the server reported an error mid-stream: slot crashed"


def test_api_key_never_appears_in_errors(serve):
    server = serve(openai_routes([MODEL], openai_error(401, "invalid api key")))
    message = error_of(backend_for(server, api_key="sk-very-secret"))
    assert "401" in message and "sk-very-secret" not in message


def test_stream_text_yields_the_content(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST, reasoning_tokens=2)))
    assert "".join(stream_text(f"{server.url}/v1", MODEL, "hi")) == "".join(FAST.tokens[2:])


def test_stream_text_raises_a_one_line_error(closed_port):
    with pytest.raises(BackendError, match="cannot connect"):
        list(stream_text(f"http://127.0.0.1:{closed_port}/v1", MODEL, "hi"))


def test_the_backend_closes_its_http_client(serve, http_clients):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST)))
    with backend_for(server) as backend:
        assert backend.list_models() == [MODEL]
    assert http_clients and all(client.is_closed for client in http_clients)


def test_stream_text_closes_its_client_when_done_or_abandoned(serve, http_clients):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST)))
    assert "".join(stream_text(f"{server.url}/v1", MODEL, "hi"))
    abandoned = stream_text(f"{server.url}/v1", MODEL, "hi")
    next(abandoned)
    abandoned.close()  # a page that stops reading: the generator is closed
    assert len(http_clients) == 2 and all(client.is_closed for client in http_clients)


def test_credentials_in_the_url_are_used_but_never_shown_or_stored(serve):
    from envirollm_core.backends.base import public_url

    assert public_url("http://user:s3cret@10.0.0.5:8000/v1?api_key=k") == "http://10.0.0.5:8000/v1"
    assert public_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    server = serve(openai_routes([MODEL], openai_stream(MODEL, FAST)))
    backend = OpenAIBackend(server.url.replace("http://", "http://user:s3cret@") + "/v1", name="openai")
    assert backend.base_url == f"{server.url}/v1"
    metrics = measure_stream(backend.stream(request()))
    assert metrics.error is None
    assert server.requests[-1].headers["authorization"] == "Basic dXNlcjpzM2NyZXQ="  # user:s3cret, used as basic auth
