"""A scripted HTTP/1.1 server on 127.0.0.1 that plays exact byte timings.

It stands in for LLM servers where the real thing is out of reach (Ollama,
LM Studio, vLLM, llama.cpp's server) or where a test needs known timing and
faults. Each route answers with a `Reply`: a status, headers and body parts,
each sent at a fixed time after the request arrived (an absolute schedule, so
sleep jitter never accumulates). Bodies go out with chunked transfer encoding
as real streaming servers do, so a connection cut before the last chunk is a
real "stream dropped midway" for the client.

Helpers build the two wire formats: OpenAI-style server-sent events and
Ollama's newline-delimited JSON.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SPIN_S = 0.002  # busy-wait the last 2 ms before a send: sleep() alone overshoots by ~0.1-1 ms


@dataclass
class Reply:
    """One scripted response: `parts` are (seconds after the request arrived, bytes)."""

    status: int = 200
    parts: Sequence[tuple[float, bytes]] = ()
    content_type: str = "application/json"
    drop: bool = False  # close the connection before the final chunk: a stream dropped midway
    token_parts: frozenset[int] = frozenset()  # indexes of the parts that carry a token


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at_s: float
    token_sent_at_s: list[float] = field(default_factory=list)  # when each token really left, after sendall

    def true_ttft_s(self) -> float:
        """What the server really did, scheduling delays included: the truth a client's TTFT is held to."""
        return self.token_sent_at_s[0] - self.received_at_s

    def true_decode_tps(self) -> float:
        sent = self.token_sent_at_s
        return (len(sent) - 1) / (sent[-1] - sent[0])


Route = Callable[[Request], Reply] | Reply


@dataclass
class ScriptedServer:
    routes: dict[tuple[str, str], Route]
    after_reply: Callable[[Request], None] | None = None  # called once a reply is fully sent
    # Serve further requests on a connection, as llama.cpp's server, Ollama and vLLM do (HTTP/1.1 keep-alive),
    # until the client asks to close or a reply is dropped; off: one request per connection, `Connection: close`.
    keep_alive: bool = False
    connections: int = 0  # accepted so far
    requests: list[Request] = field(default_factory=list)
    _sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        assert self._sock is not None
        return self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)  # a load sweep opens its streams all at once
        self._sock.settimeout(0.1)
        accept = threading.Thread(target=self._accept_loop, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while self._next_request_comes(conn):
                try:
                    request = _read_request(conn)
                except OSError:
                    return  # a kept-alive connection the client reset instead of closing
                if request is None:
                    return
                self.requests.append(request)
                route = self.routes.get((request.method, request.path))
                if route is None:
                    reply = json_reply({"error": f"no route {request.method} {request.path}"}, status=404)
                else:
                    reply = route(request) if callable(route) else route
                keep_alive = self.keep_alive and not reply.drop and request.headers.get("connection", "").lower() != "close"
                try:
                    _send_reply(conn, request, reply, self._stopping, keep_alive)
                except OSError:
                    return  # the client hung up (a read timeout, say): nothing left to send to
                if self.after_reply is not None:
                    self.after_reply(request)
                if not keep_alive:
                    return

    def _next_request_comes(self, conn: socket.socket) -> bool:
        """Wait for a request's bytes (or the client's close) on `conn`, until the server stops."""
        while not self._stopping.is_set():
            if select.select([conn], [], [], 0.1)[0]:
                return True
        return False


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    received_at_s = time.perf_counter()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
    return Request(method, target.split("?", 1)[0], headers, parsed, received_at_s)


def wait_until(deadline_s: float, stopping: threading.Event | None = None) -> None:
    remaining = deadline_s - time.perf_counter()
    if remaining > SPIN_S:
        if stopping is not None:
            stopping.wait(remaining - SPIN_S)  # wakes at once when the server stops
        else:
            time.sleep(remaining - SPIN_S)
    while time.perf_counter() < deadline_s and not (stopping and stopping.is_set()):
        pass


def _send_reply(conn: socket.socket, request: Request, reply: Reply, stopping: threading.Event,
                keep_alive: bool = False) -> None:
    head = (
        f"HTTP/1.1 {reply.status} Scripted\r\n"
        f"Content-Type: {reply.content_type}\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    conn.sendall(head.encode())
    for index, (at_s, payload) in enumerate(reply.parts):
        wait_until(request.received_at_s + at_s, stopping)
        if stopping.is_set():
            return
        if payload:
            conn.sendall(b"%x\r\n%s\r\n" % (len(payload), payload))
        if index in reply.token_parts:
            request.token_sent_at_s.append(time.perf_counter())
    if not reply.drop:
        conn.sendall(b"0\r\n\r\n")


def json_reply(payload: Any, status: int = 200, at_s: float = 0.0) -> Reply:
    return Reply(status=status, parts=[(at_s, json.dumps(payload).encode())])


# --- OpenAI-compatible server-sent events -----------------------------------------------------


def sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def openai_chunk(model: str, delta: dict, finish_reason: str | None = None, **extra: Any) -> dict:
    return {
        "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra,
    }


@dataclass(frozen=True)
class TokenScript:
    """Known truth: the first token `ttft_s` after the request, then one token every 1/`tokens_per_s`."""

    tokens: Sequence[str]
    ttft_s: float
    tokens_per_s: float

    def token_times_s(self) -> list[float]:
        return [self.ttft_s + i / self.tokens_per_s for i in range(len(self.tokens))]

    @property
    def decode_tps(self) -> float:
        return self.tokens_per_s


def openai_stream(
    model: str,
    script: TokenScript,
    *,
    usage: bool = True,
    prompt_tokens: int = 12,
    noise: bool = True,
    reasoning_tokens: int = 0,
    timings: dict | None = None,
    drop_after: int | None = None,
    malformed_after: int | None = None,
) -> Reply:
    """An OpenAI-style stream with the quirks real servers send.

    With `noise`, a role-only chunk and a keep-alive comment come before the
    first token (they must not count as the first token) and an empty delta
    sits between tokens. The first `reasoning_tokens` tokens go out as
    `reasoning_content` (as DeepSeek-style servers do).
    """
    parts: list[tuple[float, bytes]] = []
    tokens: set[int] = set()
    if noise:
        parts.append((0.0, sse(openai_chunk(model, {"role": "assistant", "content": ""}))))
        parts.append((script.ttft_s / 2, b": keep-alive\n\n"))
    times = script.token_times_s()
    for i, (token, at_s) in enumerate(zip(script.tokens, times, strict=True)):
        if drop_after is not None and i == drop_after:
            return Reply(parts=parts, content_type="text/event-stream", drop=True, token_parts=frozenset(tokens))
        if malformed_after is not None and i == malformed_after:
            parts.append((at_s, b'data: {"id": "chatcmpl-scripted", "choices": [{"delta": {"content": "x\n\n'))
            return Reply(parts=parts, content_type="text/event-stream", token_parts=frozenset(tokens))
        field_name = "reasoning_content" if i < reasoning_tokens else "content"
        tokens.add(len(parts))
        parts.append((at_s, sse(openai_chunk(model, {field_name: token}))))
        if noise and i == 0:
            parts.append((at_s + 0.0001, sse(openai_chunk(model, {}))))
    end_s = times[-1] if times else script.ttft_s
    final_extra = {"timings": timings} if timings else {}
    parts.append((end_s, sse(openai_chunk(model, {}, finish_reason="length", **final_extra))))
    if usage:
        usage_body: dict[str, Any] = {
            "prompt_tokens": prompt_tokens, "completion_tokens": len(script.tokens),
            "total_tokens": prompt_tokens + len(script.tokens),
        }
        if reasoning_tokens:
            usage_body["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        parts.append((end_s, sse({
            "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [], "usage": usage_body,
        })))
    parts.append((end_s, b"data: [DONE]\n\n"))
    return Reply(parts=parts, content_type="text/event-stream", token_parts=frozenset(tokens))


def openai_models(models: Sequence[str]) -> Reply:
    return json_reply({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "scripted"} for m in models]})


def openai_error(status: int, message: str) -> Reply:
    return json_reply({"error": {"message": message, "type": "server_error", "code": status}}, status=status)


def openai_routes(
    models: Sequence[str], chat: Route, extra: dict[tuple[str, str], Route] | None = None
) -> dict[tuple[str, str], Route]:
    return {("GET", "/v1/models"): openai_models(models), ("POST", "/v1/chat/completions"): chat, **(extra or {})}


# --- Ollama's native API (https://docs.ollama.com/api) ---------------------------------------


def ndjson(payload: Any) -> bytes:
    return json.dumps(payload).encode() + b"\n"


def ollama_chat_stream(
    model: str,
    script: TokenScript,
    *,
    prompt_tokens: int = 12,
    thinking_tokens: int = 0,
    eval_duration_s: float | None = None,
    drop_after: int | None = None,
) -> Reply:
    """Ollama's `/api/chat` stream: one JSON object per line, the last with `done` and the timing fields (ns)."""
    parts: list[tuple[float, bytes]] = []
    times = script.token_times_s()
    for i, (token, at_s) in enumerate(zip(script.tokens, times, strict=True)):
        if drop_after is not None and i == drop_after:
            return Reply(parts=parts, content_type="application/x-ndjson", drop=True, token_parts=frozenset(range(i)))
        message = {"role": "assistant", "content": ""}
        message["thinking" if i < thinking_tokens else "content"] = token
        parts.append((at_s, ndjson({"model": model, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": False})))
    end_s = times[-1] if times else script.ttft_s
    decode_s = eval_duration_s if eval_duration_s is not None else (len(script.tokens) / script.tokens_per_s)
    parts.append((end_s, ndjson({
        "model": model, "created_at": "2025-01-01T00:00:01Z", "message": {"role": "assistant", "content": ""},
        "done": True, "done_reason": "length",
        "total_duration": int((end_s + 0.001) * 1e9), "load_duration": 1_000_000,
        "prompt_eval_count": prompt_tokens, "prompt_eval_duration": 20_000_000,
        "eval_count": len(script.tokens), "eval_duration": int(decode_s * 1e9),
    })))
    return Reply(parts=parts, content_type="application/x-ndjson", token_parts=frozenset(range(len(script.tokens))))


def ollama_tags(models: Sequence[dict]) -> Reply:
    return json_reply({"models": list(models)})


def ollama_model_entry(
    name: str, quantization_level: str = "Q4_K_M", parameter_size: str = "8.0B", family: str = "llama"
) -> dict:
    return {
        "name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": 4_920_000_000,
        "digest": "sha256:" + "0" * 64,
        "details": {
            "parent_model": "", "format": "gguf", "family": family, "families": [family],
            "parameter_size": parameter_size, "quantization_level": quantization_level,
        },
    }


def ollama_show(entry: dict, context_length: int = 8192, parameter_count: int = 8_030_261_248) -> Reply:
    family = entry["details"]["family"]
    return json_reply({
        "modelfile": "# scripted", "parameters": "", "template": "{{ .Prompt }}",
        "details": entry["details"],
        "model_info": {
            "general.architecture": family, "general.parameter_count": parameter_count,
            f"{family}.context_length": context_length,
        },
        "capabilities": ["completion"],
    })


def scripted_sequence(*replies):
    """A chat route answering the n-th request with the n-th reply (the last one repeats)."""
    counter = itertools.count()
    replies = list(replies)
    return lambda request: replies[min(next(counter), len(replies) - 1)]
