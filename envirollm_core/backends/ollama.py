"""Ollama's native API (https://docs.ollama.com/api).

`/api/chat` streams one JSON object per line; the last one (`done: true`)
carries Ollama's own counts and timings in nanoseconds (`load_duration`,
`prompt_eval_count`, `prompt_eval_duration`, `eval_count`, `eval_duration`).
`/api/tags` lists the models, `/api/show` describes one (family, parameter
size, quantization level, context length), `/api/version` the server.
Every request asks Ollama to keep the model loaded (`keep_alive`) so that
repetitions measure generation, not loading.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

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
    UnknownModelError,
    bounded_lines,
    check_url,
    limited_stream,
    listening_pid,
    one_line,
    public_url,
    server_count,
    server_number,
    server_text,
    stamped,
)
from envirollm_core.backends.quantization import resolve_quantization
from envirollm_core.units import NANO_PER_UNIT

DEFAULT_OLLAMA_URL = "http://localhost:11434"
KEEP_ALIVE = "10m"
_NS = NANO_PER_UNIT  # Ollama's durations are in nanoseconds


def ollama_url() -> str:
    """`$OLLAMA_HOST` (which may omit the scheme or the port, as Ollama allows), else http://localhost:11434."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return DEFAULT_OLLAMA_URL
    if "://" not in host:
        host = f"http://{host}"
    scheme, _, rest = host.partition("://")
    authority = rest.split("/", 1)[0]
    if ":" not in authority.rsplit("]", 1)[-1]:
        host = f"{scheme}://{authority}:11434"
    if authority.startswith("0.0.0.0"):  # a listen address, not one to connect to
        host = host.replace("0.0.0.0", "127.0.0.1", 1)
    return check_url(host)


class OllamaBackend(HttpClientOwner):
    name = "ollama"
    engine_threads: int | None = None  # Ollama picks its own

    def __init__(
        self,
        base_url: str | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        keep_alive: str = KEEP_ALIVE,
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    ) -> None:
        url = check_url(base_url) if base_url else ollama_url()
        self.base_url = public_url(url)  # shown in messages and stored with each run
        self.read_timeout_s = read_timeout_s
        self.run_timeout_s = run_timeout_s
        self.keep_alive = keep_alive
        self._request_sent_s = 0.0
        self._client = httpx.Client(
            base_url=url, timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            event_hooks={"request": [self._stamp_request]},
        )
        self._tags: list[dict[str, Any]] | None = None

    def _stamp_request(self, request: httpx.Request) -> None:
        # Stamped once the request is built, just before it is sent: the client's own work is not the server's.
        self._request_sent_s = time.perf_counter()

    def _get(self, path: str) -> Any:
        return self._json(lambda: self._client.get(path), path)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(lambda: self._client.post(path, json=body), path)

    def _json(self, send: Any, path: str) -> Any:
        try:
            response = send()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code != 200:
            raise BackendError(f"{self.base_url}{path} answered HTTP {response.status_code}: {_error_text(response.text)}")
        try:
            return response.json()
        except ValueError:
            raise BackendError(f"{self.base_url}{path} did not answer JSON: {response.text[:80]!r}") from None

    def _transport_error(self, exc: httpx.HTTPError) -> BackendError:
        if isinstance(exc, httpx.ConnectError):
            return BackendError(f"cannot connect to Ollama at {self.base_url} ({one_line(exc)}): is `ollama serve` running?")
        if isinstance(exc, httpx.TimeoutException):
            return BackendError(f"Ollama at {self.base_url} did not answer in time (timeout {self.read_timeout_s:g} s)")
        return BackendError(f"Ollama at {self.base_url} failed: {one_line(exc)}")

    def tags(self) -> list[dict[str, Any]]:
        """`/api/tags`' models, each with a name (a listing without one names nothing to run)."""
        if self._tags is None:
            listing = self._get("/api/tags")
            models = listing.get("models") if isinstance(listing, dict) else None
            if not isinstance(models, list):
                models = []
            self._tags = [m for m in models if isinstance(m, dict) and (m.get("name") or m.get("model"))]
        return self._tags

    def list_models(self) -> list[str]:
        return [str(m.get("name") or m.get("model")) for m in self.tags()]

    def server_description(self) -> dict[str, Any]:
        try:
            version = self._get("/api/version").get("version")
        except BackendError:
            version = None
        return {"server": "ollama", "server_version": version}

    def model_info(self, model: str) -> ModelInfo:
        show = self._post("/api/show", {"model": model})
        details = show.get("details") or {}
        model_info = show.get("model_info") or {}
        architecture = model_info.get("general.architecture")
        context = model_info.get(f"{architecture}.context_length") if architecture else None
        quantization, source = resolve_quantization(details.get("quantization_level"), None, model)
        return ModelInfo(
            name=model, quantization=quantization, quantization_source=source,
            family=details.get("family"), parameter_size=details.get("parameter_size"),
            context_length=context if isinstance(context, int) else None,
            details={k: details[k] for k in ("format", "family", "parameter_size", "quantization_level") if k in details},
        )

    def server_pid(self) -> int | None:
        return listening_pid(self.base_url)

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]:
        limits = StreamLimits.for_request(request, self.run_timeout_s)
        yield from limited_stream(self._stream(request, limits), limits)

    def _stream(self, request: ChatRequest, limits: StreamLimits) -> Iterator[StreamPiece]:
        body = self._body(request)
        try:
            with self._client.stream("POST", "/api/chat", json=body) as response:
                if response.status_code != 200:
                    text = response.read().decode("utf-8", "replace")
                    if response.status_code == 404 and "not found" in text:
                        raise UnknownModelError(request.model, self.base_url, self._fresh_models())
                    raise BackendError(f"{self.base_url}/api/chat answered HTTP {response.status_code}: {_error_text(text)}")
                yield RequestSent(self._request_sent_s)
                yield from self.read_events(stamped(bounded_lines(response.iter_bytes(), limits)))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    def http_request(self, request: ChatRequest) -> HttpStreamRequest:
        """The same streaming request, for a client that sends it itself (the load sweep's async client)."""
        return HttpStreamRequest(str(self._client.base_url).rstrip("/") + "/api/chat", {}, self._body(request), ())

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": request.max_tokens}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.seed is not None:
            options["seed"] = request.seed
        return {
            "model": request.model, "messages": [{"role": "user", "content": request.prompt}],
            "stream": True, "options": options, "keep_alive": self.keep_alive,
        }

    def _fresh_models(self) -> list[str]:
        self._tags = None
        return self.list_models()

    def read_events(self, lines: Iterable[tuple[float, str]]) -> Iterator[StreamPiece]:
        """The pieces of a stream given as (arrival time, line) pairs."""
        count = 0
        try:
            for t_s, line in lines:
                if not line.strip():
                    continue
                chunk = parse_line(line, count)
                count += 1
                message = chunk.get("message") if isinstance(chunk.get("message"), dict) else {}
                piece = Delta(
                    t_s, content=server_text(message.get("content")), reasoning=server_text(message.get("thinking")),
                    tool_call=bool(message.get("tool_calls")),
                )
                if piece.carries_token:
                    yield piece
                if chunk.get("done") is True:
                    yield StreamEnd(server=done_timings(chunk), finish_reason=server_text(chunk.get("done_reason")) or None)
                    return
        except httpx.TimeoutException:
            raise BackendError(
                f"no data from Ollama at {self.base_url} for {self.read_timeout_s:g} s after {count} chunks (read timeout)"
            ) from None
        except httpx.HTTPError as exc:
            raise BackendError(f"the stream from {self.base_url} dropped midway after {count} chunks: {one_line(exc)}") from None
        raise BackendError(f"the stream from {self.base_url} ended after {count} chunks without `done`")


def parse_line(line: str, index: int) -> dict[str, Any]:
    try:
        chunk = json.loads(line)
    except ValueError as exc:
        raise BackendError(f"malformed chunk {index + 1} from Ollama ({exc}): {line[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise BackendError(f"malformed chunk {index + 1} from Ollama (not a JSON object): {line[:80]!r}")
    if chunk.get("error"):
        raise BackendError(f"Ollama reported an error mid-stream: {one_line(chunk['error'])}")
    return chunk


def done_timings(done: dict[str, Any]) -> ServerTimings:
    eval_count, eval_ns = server_count(done.get("eval_count")), server_number(done.get("eval_duration"))
    prompt_count, prompt_ns = server_count(done.get("prompt_eval_count")), server_number(done.get("prompt_eval_duration"))
    load_ns = server_number(done.get("load_duration"))
    return ServerTimings(
        prompt_tokens=prompt_count,
        completion_tokens=eval_count,
        decode_tps=_rate(eval_count, eval_ns),
        prompt_tps=_rate(prompt_count, prompt_ns),
        load_s=load_ns / _NS if load_ns is not None else None,
    )


def _rate(count: int | None, duration_ns: float | None) -> float | None:
    if count is not None and duration_ns:
        return count / (duration_ns / _NS)
    return None


def _error_text(text: str) -> str:
    try:
        payload = json.loads(text)
    except ValueError:
        return one_line(text) or "no detail"
    if isinstance(payload, dict) and payload.get("error"):
        return one_line(payload["error"])
    return one_line(text)

