"""OpenAI-compatible servers: LM Studio, vLLM, llama.cpp, text-generation-webui, the embedded engine...

The `openai` client builds and sends the request (auth, base URL, HTTP status
errors), but the stream is read as raw server-sent-event lines: each line is
stamped with `time.perf_counter()` as it comes off the socket, before any
parsing. The client's typed stream parses every chunk into a model first
(~150-200 µs a token) and times streams within 2 % only up to 5,000 tokens/s;
raw lines hold 2 % up to 20,000 tokens/s (bench/client_throughput.py, results
in bench/RESULTS.md). The request time is stamped by an httpx request hook,
after the client has built the request, so its own overhead (~2 ms) does not
count as the server's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2  # the transport the openai 3.x client is built on; its stream errors are httpx2's
import openai

from envirollm_core.backends import server_metadata
from envirollm_core.backends.base import (
    CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    DEFAULT_RUN_TIMEOUT_S,
    BackendError,
    HttpClientOwner,
    HttpStreamRequest,
    ChatRequest,
    Delta,
    ModelInfo,
    RequestSent,
    ServerTimings,
    StreamEnd,
    StreamLimits,
    StreamPiece,
    TokenUsage,
    UnknownModelError,
    bounded_lines,
    check_url,
    limited_stream,
    listening_pid,
    one_line,
    public_url,
    redact,
    secrets_of,
    server_count,
    server_number,
    server_text,
    stamped,
)
from envirollm_core.backends.quantization import resolve_quantization

# Local servers need no key, but the client insists on one.
NO_API_KEY = "not-needed"


class OpenAIBackend(HttpClientOwner):
    """One OpenAI-compatible server. Sends one request at a time (the request stamp is per backend)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        name: str | None = None,
        pid: int | None = None,
        server: server_metadata.ServerDescription | None = None,
        gguf_path: Path | None = None,
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
        engine_threads: int | None = None,
    ) -> None:
        url = check_url(base_url)
        self.base_url = public_url(url)  # shown in messages and stored with each run
        self.read_timeout_s = read_timeout_s
        self.run_timeout_s = run_timeout_s
        self._pid = pid
        self._request_sent_s = 0.0
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        http_client = openai.DefaultHttpxClient(timeout=timeout, event_hooks={"request": [self._stamp_request]})
        # The key lives only in this client object: never in a result, a log line or an error message.
        self._client = openai.OpenAI(
            base_url=url, api_key=api_key or NO_API_KEY, max_retries=0, timeout=timeout,
            http_client=http_client,
        )
        self._probe_key = api_key  # for the servers' own endpoints; the placeholder key is not sent there
        self._secrets = secrets_of(url, api_key)
        self._server = server  # None: probed on first use
        self._gguf_path = gguf_path
        self.engine_threads = engine_threads
        self.name = name or self.server().kind

    def _stamp_request(self, request: Any) -> None:
        self._request_sent_s = time.perf_counter()

    def server(self) -> server_metadata.ServerDescription:
        """What kind of server this is (LM Studio, llama.cpp, vLLM...), probed once."""
        if self._server is None:
            self._server = server_metadata.describe_openai_server(self.base_url, self._probe_key)
        return self._server

    def server_description(self) -> dict[str, Any]:
        server = self.server()
        return {"server": server.kind, "server_version": server.version}

    def list_models(self) -> list[str]:
        try:
            return [model.id for model in self._client.models.list().data]
        except openai.APIError as exc:
            raise self._without_secrets(self._error(exc)) from None
        except httpx2.HTTPError as exc:
            raise self._without_secrets(
                BackendError(f"{self.base_url} failed while listing models: {one_line(exc)}")
            ) from None

    def _without_secrets(self, error: BackendError) -> BackendError:
        """The error as it may be shown and stored: a server can echo the key back in its message."""
        message = str(error)
        clean = redact(message, self._secrets)
        return error if clean == message else BackendError(clean)

    def model_info(self, model: str) -> ModelInfo:
        meta = server_metadata.model_metadata(self.server(), self.base_url, self._probe_key, model)
        gguf = meta.gguf_path or self._gguf_path
        quantization, source = resolve_quantization(meta.quantization, gguf, f"{model} {meta.details.get('root', '')}")
        return ModelInfo(
            name=model, quantization=quantization, quantization_source=source, family=meta.family,
            parameter_size=meta.parameter_size, context_length=meta.context_length, details=meta.details,
        )

    def server_pid(self) -> int | None:
        return self._pid if self._pid is not None else listening_pid(self.base_url)

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        try:
            limits = StreamLimits.for_request(request, self.run_timeout_s)
            yield from limited_stream(self._stream(request, limits), limits)
        except BackendError as exc:
            raise self._without_secrets(exc) from None

    def _stream(self, request: ChatRequest, limits: StreamLimits) -> Iterator[StreamPiece]:
        body = self._body(request)
        try:
            with self._client.chat.completions.with_streaming_response.create(**body) as response:
                yield RequestSent(self._request_sent_s)
                yield from self.read_events(stamped(bounded_lines(response.iter_bytes(), limits)))
        except openai.APIStatusError as exc:
            if exc.status_code == 404:
                available = self.list_models()
                if request.model not in available:
                    raise UnknownModelError(request.model, self.base_url, available) from None
            raise self._error(exc) from None
        except openai.APIError as exc:
            raise self._error(exc) from None

    def http_request(self, request: ChatRequest) -> HttpStreamRequest:
        """The same streaming request, for a client that sends it itself (the load sweep's async client)."""
        headers = {"Authorization": f"Bearer {self._client.api_key}"} if self._client.api_key != NO_API_KEY else {}
        url = str(self._client.base_url).rstrip("/") + "/chat/completions"
        return HttpStreamRequest(url, headers, self._body(request), self._secrets)

    @staticmethod
    def _body(request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    def read_events(self, lines: Iterable[tuple[float, str]]) -> Iterator[StreamPiece]:
        """The pieces of a stream given as (arrival time, line) pairs."""
        usage: TokenUsage | None = None
        timings: ServerTimings | None = None
        finish_reason: str | None = None
        chunks = 0
        try:
            for t_s, line in lines:
                if not line.startswith("data:"):
                    continue  # blank separators, `: keep-alive` comments, `event:` lines
                data = line[5:].strip()
                if data == "[DONE]":
                    yield StreamEnd(usage, timings, finish_reason)
                    return
                chunk = parse_chunk(data, chunks)
                chunks += 1
                choices = chunk.get("choices") or []
                if not isinstance(choices, list):
                    raise BackendError(f"malformed chunk {chunks} from the server (its choices are not a list)")
                for choice in choices:
                    if not isinstance(choice, dict):
                        raise BackendError(f"malformed chunk {chunks} from the server (a choice is not an object)")
                    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                    piece = Delta(
                        t_s,
                        content=server_text(delta.get("content")),
                        reasoning=server_text(delta.get("reasoning_content")) or server_text(delta.get("reasoning")),
                        tool_call=bool(delta.get("tool_calls") or delta.get("function_call")),
                    )
                    if piece.carries_token:
                        yield piece
                    finish_reason = server_text(choice.get("finish_reason")) or finish_reason
                if isinstance(chunk.get("usage"), dict):
                    usage = parse_usage(chunk["usage"])
                if isinstance(chunk.get("timings"), dict):
                    timings = llamacpp_timings(chunk["timings"])
        except httpx2.TimeoutException:
            raise BackendError(
                f"no data from {self.base_url} for {self.read_timeout_s:g} s after {chunks} chunks (read timeout)"
            ) from None
        except (httpx2.HTTPError, httpx2.StreamError) as exc:
            raise BackendError(
                f"the stream from {self.base_url} dropped midway after {chunks} chunks: {one_line(exc)}"
            ) from None
        if finish_reason is None:
            raise BackendError(
                f"the stream from {self.base_url} ended after {chunks} chunks without a finish reason or [DONE]"
            )
        yield StreamEnd(usage, timings, finish_reason)  # some servers omit [DONE] after a finish reason

    def _error(self, exc: openai.APIError) -> BackendError:
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(f"{self.base_url} did not answer in time (timeout {self.read_timeout_s:g} s)")
        if isinstance(exc, openai.APIConnectionError):
            cause = one_line(exc.__cause__) if exc.__cause__ else "connection error"
            return BackendError(f"cannot connect to {self.base_url} ({cause}): is the server running?")
        if isinstance(exc, openai.APIStatusError):
            return BackendError(f"{self.base_url} answered HTTP {exc.status_code}: {_status_detail(exc)}")
        return BackendError(f"{self.base_url} failed: {one_line(exc)}")


def parse_chunk(data: str, index: int) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise BackendError(f"malformed chunk {index + 1} from the server ({exc}): {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise BackendError(f"malformed chunk {index + 1} from the server (not a JSON object): {data[:80]!r}")
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise BackendError(f"the server reported an error mid-stream: {one_line(message)}")
    return chunk


def parse_usage(usage: dict[str, Any]) -> TokenUsage:
    details = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=server_count(usage.get("prompt_tokens")),
        completion_tokens=server_count(usage.get("completion_tokens")),
        reasoning_tokens=server_count(details.get("reasoning_tokens")) if isinstance(details, dict) else None,
    )


def llamacpp_timings(timings: dict[str, Any]) -> ServerTimings:
    """llama.cpp's server adds `timings` (counts, ms and rates) to its last chunk."""
    return ServerTimings(
        prompt_tokens=server_count(timings.get("prompt_n")),
        completion_tokens=server_count(timings.get("predicted_n")),
        decode_tps=server_number(timings.get("predicted_per_second")),
        prompt_tps=server_number(timings.get("prompt_per_second")),
    )


def _status_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return one_line(message)
    return one_line(exc.message)



def stream_text(base_url: str, model: str, prompt: str, max_tokens: int = 128, api_key: str | None = None) -> Iterator[str]:
    """Yield the pieces of one chat completion's text as the server streams them."""
    with OpenAIBackend(base_url, api_key=api_key, read_timeout_s=60.0, name="openai") as backend:
        for piece in backend.stream(ChatRequest(model=model, prompt=prompt, max_tokens=max_tokens)):
            if isinstance(piece, Delta) and piece.content:
                yield piece.content
