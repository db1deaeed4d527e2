"""The metering proxy against a scripted upstream: byte-for-byte pass-through, the runs it records, faults."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import openai
import pytest

from envirollm_core.cli import main
from tests.fakes.proxy import BODY, MODEL, SCRIPT, chat_body_reply, chat_route, raw_exchange, wait_recorded
from tests.fakes.scripted_server import (
    ScriptedServer,
    TokenScript,
    ollama_chat_stream,
    ollama_model_entry,
    ollama_tags,
    openai_chunk,
    openai_error,
    openai_routes,
    openai_stream,
)

@pytest.mark.parametrize("stream", [True, False])
def test_a_raw_client_gets_byte_for_byte_and_chunk_for_chunk_what_the_upstream_sends(serve, start_proxy, stream):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    body = {**BODY, "stream": stream}

    direct = raw_exchange(upstream.url, body)
    via = raw_exchange(proxy.url, body)

    assert via == direct
    assert len(via[2]) == (len(openai_stream(MODEL, SCRIPT).parts) if stream else 1)


def test_the_openai_client_gets_the_same_bytes_and_the_request_is_recorded(serve, start_proxy, store):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    answers = []
    for base in (upstream.url, proxy.url):
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-never-stored-123", max_retries=0)
        with client.chat.completions.with_streaming_response.create(**BODY, stream=True) as response:
            streamed = b"".join(response.iter_bytes())
        plain = client.chat.completions.with_raw_response.create(**BODY).http_response.content
        answers.append((streamed, plain))
        client.close()
    assert answers[1] == answers[0]

    streamed_run, plain_run = wait_recorded(proxy, 2)  # recorded in the order they ended
    for run in (streamed_run, plain_run):
        assert (run.backend, run.source, run.status, run.model) == ("proxy", "live use", "ok", MODEL)
        assert run.client.startswith("OpenAI/Python")
        assert run.completion_tokens == 5 and run.token_count_source == "usage"
        assert run.ttft_s is not None and run.ttft_s > 0
        assert run.energy_wh is not None and run.energy_wh > 0 and run.components
    assert streamed_run.finish_reason == "length" and streamed_run.decode_tps is not None
    assert plain_run.finish_reason == "stop" and plain_run.decode_tps is None  # one body: no decode span
    assert streamed_run.live_detail["streamed"] is True and plain_run.live_detail["streamed"] is False
    stored = {run.id: run for run in store.runs()}
    assert set(stored) == {streamed_run.id, plain_run.id}
    assert "sk-never-stored-123" not in json.dumps([stored[i].live_detail for i in stored] + [stored[i].environment for i in stored])


def test_both_sockets_of_a_relay_send_each_chunk_at_once(serve, start_proxy):
    """TCP_NODELAY on the client's and the upstream's socket (the event loop's transports set it): no chunk
    waits for the peer's ACK under Nagle's algorithm."""
    upstream = serve(openai_routes([MODEL], lambda request: openai_stream(MODEL, TokenScript([" a", " b"], 1.0, 10.0))))
    proxy = start_proxy(upstream.url)
    request = threading.Thread(target=httpx.post, args=(proxy.url + "/v1/chat/completions",),
                               kwargs={"json": {**BODY, "stream": True}, "timeout": 10})
    request.start()
    deadline = time.monotonic() + 5
    while not (relaying := [c for c in list(proxy._connections) if c.relay is not None and c.relay.transport is not None]):
        assert time.monotonic() < deadline, "the request never reached the upstream"
        time.sleep(0.01)
    connection = relaying[0]
    sockets = [connection.transport.get_extra_info("socket"), connection.relay.transport.get_extra_info("socket")]
    assert [sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in sockets] == [1, 1]
    request.join()


def test_an_upstream_that_keeps_connections_alive_gets_the_next_requests_on_the_same_one(start_proxy):
    """llama.cpp's server, Ollama and vLLM keep connections alive: the proxy reuses its idle one instead of
    connecting per request (a connect is a good part of what the proxy adds to TTFT)."""
    with ScriptedServer(openai_routes([MODEL], chat_route), keep_alive=True) as upstream:
        proxy = start_proxy(upstream.url)
        for stream in (True, False, True):
            status, _, chunks = raw_exchange(proxy.url, {**BODY, "stream": stream})
            assert status == 200 and b"".join(chunks)
        assert len(upstream.requests) == 3 and upstream.connections == 1


def test_the_client_tag_header_names_the_client_and_does_not_reach_the_upstream(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    raw_exchange(proxy.url, BODY, headers={"X-EnviroLLM-Client": "my-editor", "Authorization": "Bearer sk-abc"})
    (run,) = wait_recorded(proxy, 1)
    assert run.client == "my-editor" and run.live_detail["user_agent"].startswith("python-httpx")
    (seen,) = upstream.requests
    assert "x-envirollm-client" not in seen.headers
    assert seen.headers["authorization"] == "Bearer sk-abc"  # keys pass through, untouched


def test_ollama_streams_and_other_paths_pass_through(serve, start_proxy):
    entry = ollama_model_entry("llama3:8b")
    upstream = serve({
        ("POST", "/api/chat"): ollama_chat_stream("llama3:8b", SCRIPT),
        ("GET", "/api/tags"): ollama_tags([entry]),
    })
    proxy = start_proxy(upstream.url, kind="ollama")
    body = {"model": "llama3:8b", "messages": [{"role": "user", "content": "hi"}]}
    results = []
    for base in (upstream.url, proxy.url):
        with httpx.stream("POST", base + "/api/chat", json=body) as response:
            chat = list(response.iter_raw())
        results.append((chat, httpx.get(base + "/api/tags").content))
    assert results[1] == results[0]
    (run,) = wait_recorded(proxy, 1)  # the listing is passed through, not recorded
    assert (run.status, run.completion_tokens, run.token_count_source, run.finish_reason) == ("ok", 5, "server-native", "length")


def test_upstream_down_gives_a_clear_502_and_a_failed_record(start_proxy, closed_port):
    proxy = start_proxy(f"http://127.0.0.1:{closed_port}")
    status, content_type, body = raw_exchange(proxy.url, BODY)
    assert status == 502 and content_type == "application/json"
    assert "did not answer" in json.loads(b"".join(body))["error"]["message"]
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "failed" and "did not answer" in run.error


def test_an_upstream_5xx_reaches_the_client_as_it_is_and_is_no_good_run(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], openai_error(503, "model is loading")))
    proxy = start_proxy(upstream.url)
    assert raw_exchange(proxy.url, BODY) == raw_exchange(upstream.url, BODY)
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "failed" and "HTTP 503" in run.error and run.live_detail["http_status"] == 503


def test_a_dropped_stream_is_dropped_for_the_client_too_and_the_proxy_keeps_serving(serve, start_proxy, proxy_logs, capfd):
    dropped = openai_stream(MODEL, SCRIPT, drop_after=2)
    upstream = serve(openai_routes([MODEL], lambda request: dropped if request.body.get("stream") else chat_body_reply()))
    proxy = start_proxy(upstream.url)
    with pytest.raises(httpx.RemoteProtocolError):
        raw_exchange(proxy.url, {**BODY, "stream": True})
    status, _, _ = raw_exchange(proxy.url, BODY)  # still serving
    assert status == 200
    runs = {run.live_detail["streamed"]: run for run in wait_recorded(proxy, 2)}
    assert runs[True].status == "failed" and "dropped" in runs[True].error
    assert runs[False].status == "ok"
    assert not any("Traceback" in line for line in proxy_logs)
    assert "Traceback" not in capfd.readouterr().err  # uvicorn's log of the cut is kept quiet too


def test_a_malformed_chunk_is_passed_on_as_it_came_and_recorded_as_failed(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT, malformed_after=2)))
    proxy = start_proxy(upstream.url)
    body = {**BODY, "stream": True}
    assert raw_exchange(proxy.url, body) == raw_exchange(upstream.url, body)
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "failed" and "malformed" in run.error


def test_a_client_that_disconnects_cancels_the_upstream_request(serve, start_proxy):
    long_script = TokenScript(tokens=[f" t{i}" for i in range(400)], ttft_s=0.02, tokens_per_s=50)
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, long_script, noise=False)))
    proxy = start_proxy(upstream.url)
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json={**BODY, "stream": True}) as response:
        for index, _ in enumerate(response.iter_raw()):
            if index == 3:
                break  # leaving the block closes the connection midway
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "cancelled" and "disconnected" in run.error
    (request,) = upstream.requests
    sent = len(request.token_sent_at_s)
    time.sleep(1.0)
    assert len(request.token_sent_at_s) == sent < 100  # the upstream stopped sending: its request was closed
    assert httpx.get(proxy.url + "/v1/models").status_code == 200  # and the proxy still serves


def test_overlapping_requests_share_the_energy_without_counting_it_twice(serve, start_proxy):
    slow = TokenScript(tokens=[f" w{i}" for i in range(30)], ttft_s=0.02, tokens_per_s=60)
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, slow)))
    proxy = start_proxy(upstream.url)
    import threading

    threads = [threading.Thread(target=raw_exchange, args=(proxy.url, {**BODY, "stream": True})) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = wait_recorded(proxy, 3)
    assert all(run.status == "ok" and run.energy_wh > 0 for run in runs)
    assert max(run.live_detail["energy_shared_with"] for run in runs) >= 1


def test_text_of_real_use_is_stored_nowhere_without_store_text(serve, start_proxy, store, tmp_path, proxy_logs, capfd):
    planted = "PLANTED-a9f3e1-secret-words"
    key = "sk-PLANTEDKEY-0f9e8d"
    answer = TokenScript(tokens=[planted[:10], planted[10:]], ttft_s=0.01, tokens_per_s=100)
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, answer)))
    proxy = start_proxy(upstream.url)
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Repeat {planted}"}], "stream": True}
    passed = b"".join(raw_exchange(proxy.url, body, headers={"Authorization": f"Bearer {key}"})[2])
    assert planted.encode()[:10] in passed  # it did pass through
    assert upstream.requests[0].headers["authorization"] == f"Bearer {key}"
    (run,) = wait_recorded(proxy, 1)
    assert run.prompt == "" and run.response == ""
    assert run.live_detail["prompt_chars"] == len(f"Repeat {planted}") and run.live_detail["response_chars"] == len(planted)
    proxy.stop()
    exports = []
    for fmt in ("csv", "json", "parquet"):
        exports.append(tmp_path / f"export.{fmt}")
        assert main(["export", "--db", str(store.path), "--format", fmt, "--output", str(exports[-1])]) == 0
    searched = [store.path, *exports, *store.path.parent.glob("*.wal")]
    for path in searched:
        assert planted.encode() not in path.read_bytes() and key.encode() not in path.read_bytes(), path
    out, err = capfd.readouterr()
    for secret in (planted, key):
        assert secret not in out + err + "\n".join(proxy_logs)
    assert proxy_logs  # the log does have a line for the request


def test_with_store_text_the_planted_string_is_found(serve, start_proxy, store):
    """The same search finds the text when the user asks for it to be kept: the search above can fail."""
    planted = "PLANTED-kept-7c21"
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    proxy = start_proxy(upstream.url, store_text=True)
    raw_exchange(proxy.url, {"model": MODEL, "messages": [{"role": "user", "content": planted}], "stream": True})
    (run,) = wait_recorded(proxy, 1)
    assert run.prompt == planted and run.response == "The sky is blue."
    proxy.stop()
    assert planted in store.run(run.id).prompt


def test_read_only_mode_refuses_to_start_the_proxy(monkeypatch, store):
    from envirollm_core.proxy.server import MeteringProxy, ProxyConfig
    from envirollm_core.settings import ReadOnlyError

    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="metering proxy"):
        MeteringProxy(ProxyConfig("http://127.0.0.1:9", port=0), store=store)


def test_openai_chunk_helper_matches_what_the_parser_reads():
    """The parser reads a legacy completion's `text` as well as a chat delta."""
    from envirollm_core.proxy.wire import read_answer

    chunk = {**openai_chunk(MODEL, {}), "choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]}
    data = b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"
    metrics = read_answer("/v1/completions", "", 0.0, [(0.5, data)], 0.6)
    assert (metrics.response, metrics.finish_reason, metrics.error, metrics.ttft_s) == ("hi", "stop", None, 0.5)


def test_ollama_generate_answers_are_read_streamed_and_whole():
    from envirollm_core.proxy.wire import read_answer

    lines = [{"model": "m", "response": "Hel", "done": False}, {"model": "m", "response": "lo", "done": False},
             {"model": "m", "response": "", "done": True, "done_reason": "stop", "eval_count": 2, "prompt_eval_count": 3}]
    chunks = [(0.1 * (i + 1), json.dumps(line).encode() + b"\n") for i, line in enumerate(lines)]
    streamed = read_answer("/api/generate", "", 0.0, chunks, 0.35)
    assert (streamed.response, streamed.completion_tokens, streamed.finish_reason, streamed.error) == ("Hello", 2, "stop", None)
    assert streamed.ttft_s == pytest.approx(0.1) and streamed.decode_tps == pytest.approx(10.0)
    whole = {"model": "m", "response": "Hello", "done": True, "done_reason": "length", "eval_count": 2}
    answer = read_answer("/api/generate", "", 0.0, [(0.3, json.dumps(whole).encode())], 0.3)
    assert (answer.response, answer.finish_reason, answer.decode_tps) == ("Hello", "length", None)
