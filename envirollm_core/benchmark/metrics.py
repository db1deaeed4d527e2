"""Timing and token counts of one streamed answer, by DESIGN.md's rules.

- TTFT: request sent -> first chunk carrying content, reasoning or a tool
  call (backends only pass such chunks on as `Delta`s; role-only chunks,
  empty deltas, keep-alive comments and usage-only chunks never become one).
- Decode rate: (completion tokens - 1) / (last token time - first token time).
- Token counts: the server's `usage`, else its native counts (Ollama's
  `eval_count`, llama.cpp's `timings`), else one per content chunk; the
  source is kept in `token_count_source`.
- Inter-token latency: gaps between consecutive token-carrying chunks
  (one chunk is one token on Ollama, llama.cpp, vLLM and LM Studio).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

from envirollm_core.backends.base import BackendError, Delta, RequestSent, StreamEnd, StreamPiece
from envirollm_core.records import TokenCountSource


@dataclass(frozen=True)
class StreamMetrics:
    response: str
    ttft_s: float | None = None
    first_token_at_s: float | None = None  # `time.perf_counter()` when the first token arrived
    e2e_s: float | None = None
    decode_tps: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    token_count_source: TokenCountSource | None = None
    server_decode_tps: float | None = None
    server_prompt_tps: float | None = None
    finish_reason: str | None = None
    error: str | None = None


def measure_stream(pieces: Iterable[StreamPiece], ended_s: float | None = None) -> StreamMetrics:
    """Consume one backend stream; a `BackendError` midway becomes `error`, with what arrived so far kept.

    `ended_s`: when the stream really ended, for pieces replayed after it (else: when they run out)."""
    sent_s: float | None = None
    token_times_s: list[float] = []
    content: list[str] = []
    reasoning_chunks = 0
    end: StreamEnd | None = None
    error: str | None = None
    try:
        for piece in pieces:
            if isinstance(piece, Delta):
                token_times_s.append(piece.t_s)
                content.append(piece.content)
                reasoning_chunks += bool(piece.reasoning)
            elif isinstance(piece, RequestSent):
                sent_s = piece.t_s
            elif isinstance(piece, StreamEnd):
                end = piece
    except BackendError as exc:
        error = str(exc)
    ended_s = time.perf_counter() if ended_s is None else ended_s
    completion, prompt, source = _token_counts(end, len(token_times_s))
    usage_reasoning = end.usage.reasoning_tokens if end and end.usage else None
    gaps = [b - a for a, b in zip(token_times_s, token_times_s[1:])]
    return StreamMetrics(
        response="".join(content),
        ttft_s=token_times_s[0] - sent_s if token_times_s and sent_s is not None else None,
        first_token_at_s=token_times_s[0] if token_times_s else None,
        e2e_s=ended_s - sent_s if sent_s is not None else None,
        decode_tps=decode_rate(completion, token_times_s),
        itl_p50_s=percentile(gaps, 50),
        itl_p95_s=percentile(gaps, 95),
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=usage_reasoning if usage_reasoning is not None else (reasoning_chunks or None),
        token_count_source=source,
        server_decode_tps=end.server.decode_tps if end and end.server else None,
        server_prompt_tps=end.server.prompt_tps if end and end.server else None,
        finish_reason=end.finish_reason if end else None,
        error=error,
    )


def _token_counts(end: StreamEnd | None, chunks: int) -> tuple[int | None, int | None, TokenCountSource | None]:
    """(completion, prompt, source): usage, else server-native, else one per chunk."""
    if end and end.usage and end.usage.completion_tokens is not None:
        return end.usage.completion_tokens, end.usage.prompt_tokens, "usage"
    if end and end.server and end.server.completion_tokens is not None:
        return end.server.completion_tokens, end.server.prompt_tokens, "server-native"
    if chunks:
        return chunks, None, "chunks"
    return None, None, None


def decode_rate(completion_tokens: int | None, token_times_s: list[float]) -> float | None:
    """(tokens - 1) / (last token time - first token time); None when there is no span to divide by."""
    if not completion_tokens or completion_tokens < 2 or len(token_times_s) < 2:
        return None
    span_s = token_times_s[-1] - token_times_s[0]
    return (completion_tokens - 1) / span_s if span_s > 0 else None


def percentile(values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[int(pct) - 1] if 0 < pct < 100 else (min(values) if pct <= 0 else max(values))
