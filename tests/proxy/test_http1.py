"""The proxy's own HTTP/1.1: chunked framing followed across any split of the bytes, and clients that speak
HTTP/1.0, wait for `100 Continue`, reuse their connection, or send a malformed request."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from envirollm_core.proxy.http1 import ChunkedFraming, FramingError, dechunk, parse_head
from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream
from tests.fakes.proxy import BODY, MODEL, SCRIPT, chat_route, raw_exchange, wait_recorded

CHUNKED = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: yes\r\n\r\n"


def test_the_framing_ends_the_body_where_it_ends_however_the_bytes_are_split():
    for cut in range(1, len(CHUNKED)):
        framing, payload = ChunkedFraming(), []
        used = framing.feed(CHUNKED[:cut], payload.append)
        assert not framing.done and used == cut
        used = framing.feed(CHUNKED[cut:] + b"NEXT", payload.append)
        assert framing.done and used == len(CHUNKED) - cut, cut  # the bytes after the body are not its own
        assert b"".join(payload) == b"hello world"


def test_a_broken_size_line_is_a_framing_error_and_dechunk_keeps_what_came_before():
    with pytest.raises(FramingError):
        ChunkedFraming().feed(b"zz\r\nhello\r\n")
    pieces = dechunk([(1.0, b"5\r\nhello\r\n"), (2.0, b"3\r\nabc\r\n"), (3.0, b"nonsense\r\n")])
    assert pieces == [(1.0, b"hello"), (2.0, b"abc")]


def test_heads_are_parsed_with_their_names_as_sent():
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive, Upgrade")
    assert head.get(b"content-type") == b"text/event-stream" and head.tokens(b"connection") == {b"keep-alive", b"upgrade"}
    with pytest.raises(FramingError):
        parse_head(b"HTTP/1.1 200 OK\r\nno colon here")


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _post(body: dict, version: bytes = b"HTTP/1.1", extra: bytes = b"") -> tuple[bytes, bytes]:
    payload = json.dumps(body).encode()
    head = (b"POST /v1/chat/completions %s\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
            b"Connection: close\r\n\r\n" % (version, len(payload), extra))
    return head, payload


def test_an_http_1_0_client_gets_the_payload_unframed_and_the_connection_closed(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    head, payload = _post({**BODY, "stream": True}, version=b"HTTP/1.0")
    answer = _raw(proxy.url, head + payload)
    status_line, _, body = answer.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in status_line.lower()
    assert body == b"".join(part for _, part in openai_stream(MODEL, SCRIPT).parts)
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "ok" and run.completion_tokens == 5


def test_a_client_that_expects_100_continue_gets_it_then_the_answer(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    head, payload = _post(BODY, extra=b"Expect: 100-continue\r\n")
    host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(payload)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"The sky is blue." in answer
    assert "expect" not in upstream.requests[0].headers  # answered here; the upstream gets the whole body at once


def test_one_client_connection_carries_request_after_request(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        answers = [client.post("/v1/chat/completions", json={**BODY, "stream": stream}) for stream in (True, False, True)]
        assert len({response.extensions["network_stream"] for response in answers}) == 1  # one connection
    assert [response.status_code for response in answers] == [200, 200, 200]
    assert len(wait_recorded(proxy, 3)) == 3


def test_a_malformed_request_gets_a_400_and_nothing_reaches_the_upstream(serve, start_proxy):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url)
    answer = _raw(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nbad header line\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"malformed request" in answer
    assert upstream.requests == []
    assert raw_exchange(proxy.url, BODY)[0] == 200  # and it still serves


def test_a_slow_stream_keeps_its_chunks_through_the_proxy(serve, start_proxy):
    """Tokens that arrive far apart reach the client one by one, not held back to fill a packet."""
    slow = TokenScript(tokens=[f" s{i}" for i in range(5)], ttft_s=0.01, tokens_per_s=20)
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, slow, noise=False)))
    proxy = start_proxy(upstream.url)
    body = {**BODY, "stream": True}
    assert raw_exchange(proxy.url, body) == raw_exchange(upstream.url, body)


def test_an_upstream_that_goes_silent_past_the_read_timeout_is_cut_and_recorded(serve, start_proxy):
    stalled = TokenScript(tokens=["late"], ttft_s=3.0, tokens_per_s=10)
    upstream = serve(openai_routes([MODEL], openai_stream(MODEL, stalled, noise=False)))
    proxy = start_proxy(upstream.url, read_timeout_s=0.3)
    with pytest.raises(httpx.RemoteProtocolError):  # the answer had begun (its head): the client sees the cut
        raw_exchange(proxy.url, {**BODY, "stream": True})
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "failed" and "sent nothing for 0.3 s" in run.error


def test_a_request_the_proxy_fails_on_gets_a_502_and_the_proxy_keeps_serving(serve, start_proxy, proxy_logs, monkeypatch):
    upstream = serve(openai_routes([MODEL], chat_route))
    proxy = start_proxy(upstream.url, route_all=True, default_model=MODEL)

    def broken(*args, **kwargs):
        raise RuntimeError("the store is unreadable")

    monkeypatch.setattr(proxy.app.router, "_stored", broken)
    status, _, body = raw_exchange(proxy.url, BODY)
    assert status == 502 and "failed in the proxy (RuntimeError: the store is unreadable)" in b"".join(body).decode()
    assert any("a request failed (RuntimeError: the store is unreadable)" in line for line in proxy_logs)
    monkeypatch.undo()
    assert raw_exchange(proxy.url, BODY)[0] == 200
