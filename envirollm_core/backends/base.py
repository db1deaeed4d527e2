"""What every backend speaks: a chat request in, timestamped stream pieces out.

A backend turns one `ChatRequest` into an iterator of pieces: one
`RequestSent` (the moment the request left), then `Delta`s stamped with
`time.perf_counter()` when their bytes arrived (before any parsing), then one
`StreamEnd` with what the server reported (usage, its own timings, the finish
reason). The benchmark's metrics are computed from these pieces alone, so every
backend is measured the same way.

A failure is a `BackendError` with a one-line message; a run that hits one is
stored as failed with that message.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import psutil

from envirollm_core.errors import EnviroLLMError, UsageError

CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 120.0  # a cold model load (tens of GB) can take a minute before the first byte
DEFAULT_RUN_TIMEOUT_S = 3600.0  # a whole run: generous, but a server streaming forever is stopped


class BackendError(EnviroLLMError):
    """A request to an LLM server failed; the message says how, in one line."""


class UnknownModelError(BackendError):
    """The server does not have the model; the message lists the models it has."""

    def __init__(self, model: str, base_url: str, available: list[str]) -> None:
        listed = ", ".join(available) if available else "none"
        super().__init__(f"model {model!r} is not on {base_url}; it has: {listed}")
        self.available = available


@dataclass(frozen=True)
class ChatRequest:
    model: str
    prompt: str
    max_tokens: int
    temperature: float | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class RequestSent:
    t_s: float


@dataclass(frozen=True, slots=True)
class Delta:
    """One streamed chunk; `t_s` is when its bytes arrived."""

    t_s: float
    content: str = ""
    reasoning: str = ""
    tool_call: bool = False

    @property
    def carries_token(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_call)


@dataclass(frozen=True)
class TokenUsage:
    """Token counts as the server reported them (OpenAI `usage`)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class ServerTimings:
    """The server's own counts and rates (Ollama's timing fields, llama.cpp's `timings`)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    decode_tps: float | None = None
    prompt_tps: float | None = None
    load_s: float | None = None


@dataclass(frozen=True)
class StreamEnd:
    usage: TokenUsage | None = None
    server: ServerTimings | None = None
    finish_reason: str | None = None


StreamPiece = RequestSent | Delta | StreamEnd


@dataclass(frozen=True)
class ModelInfo:
    """What the server (or the model file, or the name) says about a model."""

    name: str
    quantization: str | None = None
    quantization_source: str | None = None  # "server" | "gguf" | "name"
    family: str | None = None
    parameter_size: str | None = None
    context_length: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str  # "ollama" | "openai" | "lmstudio" | "llamacpp" | "vllm" | "embedded"
    base_url: str
    engine_threads: int | None  # the threads the server decodes with, when EnviroLLM started it; else unknown

    def list_models(self) -> list[str]: ...

    def model_info(self, model: str) -> ModelInfo: ...

    def server_description(self) -> dict[str, Any]: ...

    def server_pid(self) -> int | None: ...

    def stream(self, request: ChatRequest) -> Iterator[StreamPiece]: ...

    def close(self) -> None: ...  # the HTTP client and its connections


# -- the client's own limits on a stream: a server that ignores max_tokens, or never ends, is stopped -------------

# The finish reasons of a run the client stopped (the server never said it had finished).
CUT_AT_MAX_TOKENS = "client_cut:max_tokens"
CUT_AT_RUN_TIMEOUT = "client_cut:run_timeout"
MAX_LINE_BYTES = 4 * 2**20  # one SSE event or NDJSON line; a token's chunk is a few hundred bytes
MAX_CHARS_PER_TOKEN = 256  # text a token's chunk may carry on average before the answer counts as too long


@dataclass(frozen=True)
class StreamLimits:
    """Where the client stops reading one answer: a little past `max_tokens` token chunks (servers count
    tokens their own way, and a few send two in a chunk), at as many characters, and at the run's deadline."""

    max_chunks: int
    max_chars: int
    deadline_s: float  # time.perf_counter() value
    run_timeout_s: float

    @classmethod
    def for_request(cls, request: ChatRequest, run_timeout_s: float) -> StreamLimits:
        max_chunks = request.max_tokens + max(16, request.max_tokens // 20)
        return cls(max_chunks, max_chunks * MAX_CHARS_PER_TOKEN, time.perf_counter() + run_timeout_s, run_timeout_s)


class StreamCut(Exception):
    """Raised inside a backend's reading when the client stops it; `limited_stream` turns it into the end."""

    def __init__(self, finish_reason: str) -> None:
        super().__init__(finish_reason)
        self.finish_reason = finish_reason


def bounded_lines(chunks: Iterable[bytes], limits: StreamLimits) -> Iterator[str]:
    """The lines of a streamed body (SSE or NDJSON), read from its raw chunks so that memory stays bounded
    (a line longer than `MAX_LINE_BYTES` is an error, not a buffer that grows) and the run's deadline is checked
    whatever arrives: keep-alives and a trickle of bytes do not keep a run going past it."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            yield bytes(buffer[start:end]).rstrip(b"\r").decode("utf-8", "replace")
            start = end + 1
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise BackendError(f"the server sent a line of more than {MAX_LINE_BYTES // 2**20} MiB without an end")
        if time.perf_counter() > limits.deadline_s:
            raise StreamCut(CUT_AT_RUN_TIMEOUT)
    if buffer:
        yield bytes(buffer).rstrip(b"\r").decode("utf-8", "replace")


def limited_stream(pieces: Iterator[StreamPiece], limits: StreamLimits) -> Iterator[StreamPiece]:
    """A backend's pieces, ended by the client at `limits` with a `StreamEnd` whose finish reason says so (the
    run is stored with what arrived). Both HTTP backends read through this and `bounded_lines`."""
    chunks = chars = 0
    try:
        for piece in pieces:
            if isinstance(piece, Delta):
                chunks += 1
                chars += len(piece.content) + len(piece.reasoning)
                if chunks > limits.max_chunks or chars > limits.max_chars:
                    yield StreamEnd(finish_reason=CUT_AT_MAX_TOKENS)
                    return
                if piece.t_s > limits.deadline_s:
                    yield StreamEnd(finish_reason=CUT_AT_RUN_TIMEOUT)
                    return
            yield piece
    except StreamCut as cut:
        yield StreamEnd(finish_reason=cut.finish_reason)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # the response and its connection, now


@dataclass(frozen=True)
class HttpStreamRequest:
    """A streaming chat request as HTTP: where it goes, its headers (auth) and JSON body; `secrets` are
    what must be redacted from any error about it."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    secrets: tuple[str, ...] = ()


def stamped(lines: Iterable[str]) -> Iterator[tuple[float, str]]:
    """Each line with `time.perf_counter()` taken as it comes off the socket, before any parsing."""
    for line in lines:
        yield time.perf_counter(), line


class HttpClientOwner:
    """Closing for a backend that owns one HTTP client in `self._client` (httpx's or openai's)."""

    _client: Any

    def close(self) -> None:
        """Close the HTTP client and its connections; the backend cannot send after this."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def secrets_of(url: str, api_key: str | None) -> tuple[str, ...]:
    """What must never be shown or stored: the API key and any password in the URL."""
    password = urlsplit(url).password
    return tuple(secret for secret in (api_key, password) if secret)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """The text with each secret replaced by `***` (a server may echo a key back in its error)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def one_line(value: object, limit: int = 200) -> str:
    """A server's message squeezed onto one line and cut to `limit` characters, for error messages."""
    text = " ".join(server_text(str(value)).split())
    return text[:limit] + ("..." if len(text) > limit else "")


# What servers send is not always what their API says: NaN, Infinity, -1, 1e30 or text where a count
# belongs, a number where text belongs, a lone surrogate (`"\ud800"` is valid JSON) in a token. A value
# that cannot be what the field means is not a reading (None); text always ends up storable as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_SERVER_COUNT = 2**53


def server_text(value: Any) -> str:
    """Text from a server ("" for anything that is not text), any lone surrogate replaced by U+FFFD."""
    if not isinstance(value, str):
        return ""
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)


def server_count(value: Any) -> int | None:
    """A count from a server: a whole number from 0 to 2**53 (JSON may write it 12.0), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 0 <= value < MAX_SERVER_COUNT else None


def server_number(value: Any) -> float | None:
    """A rate or a duration from a server: a finite number from 0 up, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past any float
        return None
    return number if math.isfinite(number) and number >= 0 else None


def model_listed(model: str, available: list[str]) -> bool:
    """Whether the server lists the model; a name without a tag means `:latest`, as Ollama reads it."""
    return model in available or (":" not in model and f"{model}:latest" in available)


def check_url(url: str) -> str:
    """A usable http(s) base URL without a trailing slash, or a `UsageError`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not an http(s) URL: {url!r} (e.g. http://localhost:1234/v1)")
    return url.strip().rstrip("/")


def public_url(url: str) -> str:
    """The URL without user:password or query: what may be shown, logged and stored (keys never are)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


class _ShownUrls(logging.Filter):
    """httpx logs every request's URL at INFO, user:password and query string (where keys hide) included:
    its records get the URL as `public_url` shows it, whoever turns that logging on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(type(arg).__name__ == "URL" for arg in record.args):
            record.args = tuple(public_url(str(arg)) if type(arg).__name__ == "URL" else arg for arg in record.args)
        return True


for _client_logger in ("httpx", "httpx2"):  # httpx2: the transport of the openai 3.x client
    logging.getLogger(_client_logger).addFilter(_ShownUrls())


def is_local_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in (socket.gethostname(), socket.getfqdn())
    return address.is_loopback or address.is_unspecified or host in _own_addresses()


def _own_addresses() -> set[str]:
    return {a.address for addrs in psutil.net_if_addrs().values() for a in addrs}


def listening_pid(url: str) -> int | None:
    """The local process listening on the URL's port (the server), or None.

    None when the server is remote or the OS will not tell (no permission):
    the energy window then measures the machine without a tracked process.
    The sampler follows the process's children itself (Ollama's runner, say).
    """
    if not is_local_url(url):
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None
