"""What passed through the proxy, read after the fact: the request's model and text, the answer's timing,
tokens and finish reason, by the same rules as a benchmark run (bench/metrics.py).

The proxy forwards bytes untouched and only notes when each chunk arrived; this module parses them once
the exchange is over, off the forwarding path. Both wire formats are read: OpenAI's (server-sent events,
or one JSON body) and Ollama's (newline-delimited JSON, or one JSON body).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from envirollm_core.backends.base import BackendError, Delta, RequestSent, StreamEnd, StreamPiece, server_text
from envirollm_core.backends.ollama import done_timings, parse_line
from envirollm_core.backends.openai_compat import llamacpp_timings, parse_chunk, parse_usage
from envirollm_core.benchmark.metrics import StreamMetrics, measure_stream

# The generating endpoints; every other path is passed through without being recorded.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions")
OLLAMA_PATHS = ("/api/chat", "/api/generate")
METERED_PATHS = OPENAI_PATHS + OLLAMA_PATHS


@dataclass(frozen=True)
class RequestText:
    """The request as the recorder needs it: the model named and the prompt's text."""

    model: str | None
    prompt: str
    stream: bool


def read_request(path: str, body: bytes) -> RequestText | None:
    """The model and prompt of a generating request; None when the body is not a JSON object."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    model = payload.get("model") if isinstance(payload.get("model"), str) else None
    if isinstance(payload.get("messages"), list):
        prompt = "\n".join(_message_text(message) for message in payload["messages"])
    else:
        prompt = payload.get("prompt") if isinstance(payload.get("prompt"), str) else ""
    streamed = payload.get("stream")
    # Ollama streams unless told not to; OpenAI answers in one body unless told to stream.
    stream = streamed is not False if path in OLLAMA_PATHS else streamed is True
    return RequestText(model, prompt, stream)


def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, list):  # OpenAI's content parts
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return content if isinstance(content, str) else ""


def read_answer(
    path: str, content_encoding: str, sent_s: float, chunks: Sequence[tuple[float, bytes]], ended_s: float,
) -> StreamMetrics:
    """Timing, tokens, text and finish reason of an answer from its chunks and their arrival times."""
    try:
        lines = list(_timed_lines(_decoded(chunks, content_encoding)))
    except zlib.error as exc:
        return StreamMetrics(response="", error=f"the answer's {content_encoding} body could not be decoded: {exc}")
    single = len(lines) == 1 and not lines[0][1].startswith("data:")
    if path in OLLAMA_PATHS:
        pieces = _ollama_pieces(lines, path)
    elif single:
        pieces = _openai_body_pieces(lines[0])
    else:
        pieces = _openai_event_pieces(lines)
    metrics = measure_stream(_with_start(sent_s, pieces))
    return _replace_e2e(metrics, ended_s - sent_s)


def _replace_e2e(metrics: StreamMetrics, e2e_s: float) -> StreamMetrics:
    from dataclasses import replace

    return replace(metrics, e2e_s=e2e_s)


def _with_start(sent_s: float, pieces: Iterator[StreamPiece]) -> Iterator[StreamPiece]:
    yield RequestSent(sent_s)
    yield from pieces


def _decoded(chunks: Sequence[tuple[float, bytes]], content_encoding: str) -> list[tuple[float, bytes]]:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return list(chunks)
    if encoding not in ("gzip", "deflate"):
        raise zlib.error(f"unknown content encoding {encoding!r}")
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    return [(t_s, decoder.decompress(data)) for t_s, data in chunks]


def _timed_lines(chunks: Sequence[tuple[float, bytes]]) -> Iterator[tuple[float, str]]:
    """Non-empty lines with the arrival time of the chunk that completed each one."""
    pending = b""
    for t_s, data in chunks:
        pending += data
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield t_s, line.decode("utf-8", "replace").rstrip("\r")
    if pending.strip() and chunks:
        yield chunks[-1][0], pending.decode("utf-8", "replace")


def _openai_event_pieces(lines: list[tuple[float, str]]) -> Iterator[StreamPiece]:
    usage = timings = finish_reason = None
    count = 0
    for t_s, line in lines:
        if not line.startswith("data:"):
            continue  # comments (keep-alives) and `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = parse_chunk(data, count)
        count += 1
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                raise BackendError(f"malformed chunk {count} from the server (a choice is not an object)")
            yield from _choice_delta(t_s, choice, choice.get("delta"))
            finish_reason = server_text(choice.get("finish_reason")) or finish_reason
        if isinstance(chunk.get("usage"), dict):
            usage = parse_usage(chunk["usage"])
        if isinstance(chunk.get("timings"), dict):
            timings = llamacpp_timings(chunk["timings"])
    if finish_reason is None:
        raise BackendError(f"the stream ended after {count} chunks without a finish reason (dropped or cut short)")
    yield StreamEnd(usage, timings, finish_reason)


def _openai_body_pieces(line: tuple[float, str]) -> Iterator[StreamPiece]:
    t_s, text = line
    body = parse_chunk(text, 0)
    finish_reason = None
    for choice in body.get("choices") or []:
        if isinstance(choice, dict):
            yield from _choice_delta(t_s, choice, choice.get("message"))
            finish_reason = server_text(choice.get("finish_reason")) or finish_reason
    usage = parse_usage(body["usage"]) if isinstance(body.get("usage"), dict) else None
    timings = llamacpp_timings(body["timings"]) if isinstance(body.get("timings"), dict) else None
    yield StreamEnd(usage, timings, finish_reason)


def _choice_delta(t_s: float, choice: dict[str, Any], delta: Any) -> Iterator[Delta]:
    """One choice's text: a chat delta or message, or a legacy completion's `text`."""
    delta = delta if isinstance(delta, dict) else {}
    piece = Delta(
        t_s,
        content=server_text(delta.get("content")) or server_text(choice.get("text")),
        reasoning=server_text(delta.get("reasoning_content")) or server_text(delta.get("reasoning")),
        tool_call=bool(delta.get("tool_calls") or delta.get("function_call")),
    )
    if piece.carries_token:
        yield piece


def _ollama_pieces(lines: list[tuple[float, str]], path: str) -> Iterator[StreamPiece]:
    for count, (t_s, line) in enumerate(lines):
        chunk = parse_line(line, count)
        message = chunk.get("message") if isinstance(chunk.get("message"), dict) else {}
        piece = Delta(
            t_s,
            content=server_text(message.get("content")) or server_text(chunk.get("response")),
            reasoning=server_text(message.get("thinking")) or server_text(chunk.get("thinking")),
            tool_call=bool(message.get("tool_calls")),
        )
        if piece.carries_token:
            yield piece
        if chunk.get("done") is True:
            yield StreamEnd(server=done_timings(chunk), finish_reason=server_text(chunk.get("done_reason")) or "stop")
            return
    raise BackendError(f"the answer from {path} ended after {len(lines)} chunks without `done` (dropped or cut short)")
