"""The metering proxy: an HTTP pass-through to an LLM server that records each generating request as a run.

What a client receives is what the upstream sent: the same status, the same headers (less the hop-by-hop
ones, which belong to each connection), the same body bytes in the same chunks, as they arrive. The
forwarding loop only notes each chunk's arrival time and bumps a counter; parsing, energy and the database
write happen afterwards in the recorder's own thread, so the client never waits on them.

The server is a plain ASGI application run by uvicorn (already installed with llama-cpp-python[server]);
upstream requests go through one `httpx.AsyncClient` with pooled connections. A client that disconnects
midway cancels its upstream request (its connection is closed, which llama.cpp, Ollama and vLLM take as a
cancel). Authorization headers and API keys pass through untouched and are never stored or logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import queue
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import polars as pl

from envirollm_core import __version__
from envirollm_core.backends.base import check_url, is_local_url, public_url
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.figures import format_figure, milli
from envirollm_core.units import average_power_w
from envirollm_core.proxy import DEFAULT_LISTEN
from envirollm_core.proxy.energy import EnergyMeter, RequestEnergy, _Request
from envirollm_core.proxy.usage import LIVE_USE
from envirollm_core.proxy.router import AUTO_MODEL, ROUTING_COLUMNS, RouteDecision, choose
from envirollm_core.proxy.wire import METERED_PATHS, RequestText, read_answer, read_request
from envirollm_core.records import RunResult, prompt_hash

ProxyKind = Literal["openai", "ollama"]
CLIENT_HEADER = "x-envirollm-client"
TASK_HEADER = "x-envirollm-task"
# Headers that describe one connection, not the message (RFC 9110 7.6.1), and ours, which end here.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", CLIENT_HEADER, TASK_HEADER,
})
# httpx sets the length of the body it sends, which the router may have rewritten.
_NOT_FORWARDED = _HOP_BY_HOP | {"content-length"}
_RESULTS_TTL_S = 30.0
_log = logging.getLogger("envirollm.proxy")


@dataclass(frozen=True)
class ProxyConfig:
    upstream: str
    host: str = "127.0.0.1"
    port: int = 11435
    kind: ProxyKind = "openai"
    store_text: bool = False
    route_all: bool = False
    quality_floor: float = 70.0
    default_model: str | None = None
    read_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstream", check_url(self.upstream))
        if self.kind not in ("openai", "ollama"):
            raise UsageError(f"--kind must be openai or ollama, not {self.kind!r}")
        if not 0 <= self.port < 65536:
            raise UsageError(f"the port must be between 0 and 65535, not {self.port}")
        if not 0 <= self.quality_floor <= 100:
            raise UsageError(f"--quality-floor must be between 0 and 100, not {self.quality_floor:g}")

    @property
    def upstream_base(self) -> str:
        """Where a request path goes: the upstream's origin and path, less a final `/v1` (clients send it)."""
        base = self.upstream
        return base[: -len("/v1")] if base.endswith("/v1") else base


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:PORT` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--listen must be HOST:PORT (e.g. {DEFAULT_LISTEN}), not {text!r}")
    return host.strip("[]"), int(port)


@dataclass
class Exchange:
    """One request through the proxy, as the recorder needs it (never any header but the client's name)."""

    id: str
    method: str
    path: str
    created_at: datetime
    client: str | None
    user_agent: str | None
    request: RequestText | None
    model: str | None
    decision: RouteDecision | None = None
    status_code: int | None = None
    content_encoding: str = ""
    sent_s: float = 0.0
    ended_s: float = 0.0
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    problem: str | None = None  # what went wrong in transit: upstream down, dropped, client gone
    cancelled: bool = False


# --- recording ---------------------------------------------------------------------------------------------


class Recorder:
    """Energy boundaries, parsing and database writes, one at a time in one thread, off the forwarding path.

    Runs are written when the recorder has caught up (nothing else queued), all pending ones in one
    transaction: under a burst of requests the database is written once, not once per request."""

    def __init__(self, config: ProxyConfig, store: Any, sampler: Any, log: Callable[[str], None]) -> None:
        self.config = config
        self.store = store
        self.batch_id = uuid.uuid4().hex[:12]
        self._meter = EnergyMeter(sampler)
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._pending: list[tuple[Exchange, RunResult]] = []
        self._environment = _environment(config)
        self._log = log
        self.recorded: list[RunResult] = []  # this session's stored runs, oldest first
        self._thread = threading.Thread(target=self._work, name="envirollm-proxy-recorder", daemon=True)
        self._thread.start()

    def started(self, exchange_id: str) -> _Request:
        counter = _Request()
        self._queue.put(lambda: self._meter.start(exchange_id, counter))
        return counter

    def finished(self, exchange: Exchange) -> None:
        self._queue.put(lambda: self._record(exchange))

    def flush(self) -> None:
        """Wait until every exchange handed over so far is recorded and stored."""
        done = threading.Event()
        self._queue.put(done.set)
        done.wait()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            try:
                task()
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the recording of the rest
                self._log(f"envirollm proxy: recording failed: {type(exc).__name__}: {exc}")
            if self._queue.empty():
                self._write()
        self._write()

    def _record(self, exchange: Exchange) -> None:
        energy = self._meter.finish(exchange.id)
        self._pending.append((exchange, self._run(exchange, energy)))

    def _write(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            self.store.add_runs([run for _, run in pending])
        except EnviroLLMError as exc:
            self._log(f"envirollm proxy: could not record {len(pending)} request(s): {exc}")
            return
        for exchange, run in pending:
            self.recorded.append(run)
            self._log(_log_line(exchange, run))

    def _run(self, exchange: Exchange, energy: RequestEnergy) -> RunResult:
        text = exchange.request.prompt if exchange.request else ""
        metrics = read_answer(exchange.path, exchange.content_encoding, exchange.sent_s, exchange.chunks, exchange.ended_s)
        status, error = _outcome(exchange, metrics.error)
        keep = self.config.store_text
        run = RunResult(
            id=exchange.id, batch_id=self.batch_id, created_at=exchange.created_at,
            model=exchange.model or "unknown", backend="proxy", base_url=public_url(self.config.upstream),
            prompt=text if keep else "", prompt_hash=prompt_hash(text), status=status, error=error,
            response=metrics.response if keep else "", environment=self._environment,
            source=LIVE_USE, client=exchange.client,
            live_detail={
                "path": exchange.path, "http_status": exchange.status_code, "user_agent": exchange.user_agent,
                "prompt_chars": len(text), "response_chars": len(metrics.response), "text_stored": keep,
                "streamed": exchange.request.stream if exchange.request else None,
                "energy_shared_with": energy.overlapped,
                **({"route": exchange.decision.as_detail()} if exchange.decision else {}),
            },
        )
        for name in ("ttft_s", "e2e_s", "decode_tps", "itl_p50_s", "itl_p95_s", "prompt_tokens", "completion_tokens",
                     "reasoning_tokens", "token_count_source", "server_decode_tps", "server_prompt_tps", "finish_reason"):
            setattr(run, name, getattr(metrics, name))
        run.energy_wh = energy.energy_wh
        run.components = list(energy.components)
        if energy.energy_wh is not None and run.completion_tokens:
            run.energy_per_token_wh = energy.energy_wh / run.completion_tokens
        if energy.energy_wh is not None and run.e2e_s:
            run.avg_power_w = average_power_w(energy.energy_wh, run.e2e_s)
        return run


def _outcome(exchange: Exchange, parse_error: str | None) -> tuple[str, str | None]:
    """(status, error): only a complete 2xx answer that parses is a good run."""
    if exchange.cancelled:
        return "cancelled", exchange.problem
    if exchange.problem:
        return "failed", exchange.problem
    if exchange.status_code is None or not 200 <= exchange.status_code < 300:
        return "failed", f"the upstream answered HTTP {exchange.status_code}"
    if parse_error:
        return "failed", parse_error
    return "ok", None


def _log_line(exchange: Exchange, run: RunResult) -> str:
    """One line per request, never any text of it: status, model, tokens, timing, energy."""
    parts = [f"{exchange.method} {exchange.path}", str(exchange.status_code or "-"), run.status, f"model={run.model}"]
    if run.completion_tokens is not None:
        parts.append(f"tokens={run.completion_tokens}")
    if run.ttft_s is not None:
        parts.append(f"ttft={run.ttft_s * 1000:.0f}ms")
    if run.energy_wh is not None:
        parts.append(f"energy={format_figure(milli(run.energy_wh), 'mWh')}mWh")
    if exchange.decision:
        parts.append(f"routed {exchange.decision.requested}->{exchange.decision.model}")
    if run.error:
        parts.append(f"({run.error})")
    return "envirollm proxy: " + " ".join(parts)


def _environment(config: ProxyConfig) -> dict[str, Any]:
    from envirollm_core.telemetry.system_info import system_info

    return {**dataclasses.asdict(system_info()), "server": f"proxy to {public_url(config.upstream)}",
            "proxy_kind": config.kind, "envirollm": __version__}


# --- routing ------------------------------------------------------------------------------------------------


class Router:
    """Decides where `envirollm/auto` goes; stored results and the upstream's models are re-read every 30 s."""

    def __init__(self, config: ProxyConfig, store: Any) -> None:
        self.config = config
        self.store = store
        self._results: tuple[float, pl.DataFrame] | None = None
        self._models: tuple[float, list[str]] | None = None

    def applies(self, request: RequestText | None) -> bool:
        return request is not None and (self.config.route_all or request.model == AUTO_MODEL)

    async def decide(self, client: httpx.AsyncClient, request: RequestText, task: str | None, auth: str | None) -> RouteDecision:
        available = await self._available(client, auth)
        results = await asyncio.to_thread(self._stored)
        default = self.config.default_model or (request.model if request.model != AUTO_MODEL else None)
        return choose(
            results, requested=request.model, task=task, prompt_hash=prompt_hash(request.prompt),
            available=available, quality_floor=self.config.quality_floor, default_model=default,
        )

    def _stored(self) -> pl.DataFrame:
        now = time.monotonic()
        if self._results is None or now - self._results[0] > _RESULTS_TTL_S:
            self._results = (now, self.store.runs_frame(columns=ROUTING_COLUMNS))
        return self._results[1]

    async def _available(self, client: httpx.AsyncClient, auth: str | None) -> list[str]:
        now = time.monotonic()
        if self._models is not None and now - self._models[0] <= _RESULTS_TTL_S:
            return self._models[1]
        path = "/api/tags" if self.config.kind == "ollama" else "/v1/models"
        try:
            response = await client.get(self.config.upstream_base + path, headers={"authorization": auth} if auth else None)
            payload = response.json()
            entries = payload.get("models") if self.config.kind == "ollama" else payload.get("data")
            key = "name" if self.config.kind == "ollama" else "id"
            models = [entry[key] for entry in entries or [] if isinstance(entry, dict) and isinstance(entry.get(key), str)]
        except (httpx.HTTPError, ValueError, AttributeError):
            models = []  # no listing: no candidate is known to be served, so the default is used
        self._models = (now, models)
        return models


# --- the ASGI application ------------------------------------------------------------------------------


class UpstreamDropped(Exception):
    """Raised after the answer has started, to make uvicorn cut the client's connection as the upstream cut ours."""


class ProxyApp:
    def __init__(self, config: ProxyConfig, recorder: Recorder, router: Router) -> None:
        self.config = config
        self.recorder = recorder
        self.router = router
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = httpx.AsyncClient(
                    timeout=httpx.Timeout(connect=5.0, read=self.config.read_timeout_s, write=60.0, pool=None),
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
                    follow_redirects=False, trust_env=False,
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        assert self.client is not None
        body = await _read_body(receive)
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        named = dict(headers)
        path = scope["path"]
        metered = scope["method"] == "POST" and path in METERED_PATHS
        exchange: Exchange | None = None
        if metered:
            request = read_request(path, body)
            exchange = Exchange(
                id=uuid.uuid4().hex[:12], method=scope["method"], path=path, created_at=datetime.now(timezone.utc),
                client=named.get(CLIENT_HEADER) or named.get("user-agent"), user_agent=named.get("user-agent"),
                request=request, model=request.model if request else None,
            )
            if self.router.applies(request):
                assert request is not None
                exchange.decision = await self.router.decide(self.client, request, named.get(TASK_HEADER), named.get("authorization"))
                if exchange.decision.model is None:
                    await self._refuse(exchange, send, exchange.decision.reason)
                    return
                exchange.model = exchange.decision.model
                body = _with_model(body, exchange.decision.model)
        target = scope.get("raw_path") or path.encode()
        url = self.config.upstream_base + target.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        upstream_request = self.client.build_request(
            scope["method"], url, content=body, headers=[(k, v) for k, v in headers if k not in _NOT_FORWARDED],
        )
        counter = self.recorder.started(exchange.id) if exchange else None
        forward = asyncio.ensure_future(self._forward(upstream_request, exchange, counter, send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({forward, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not forward.done():  # the client went away first: stop reading, which closes the upstream request
                forward.cancel()
                await asyncio.gather(forward, return_exceptions=True)
                if exchange:
                    exchange.cancelled = True
                    exchange.problem = "the client disconnected midway; the upstream request was cancelled"
            else:
                forward.result()
        finally:
            watch.cancel()
            if exchange:
                exchange.ended_s = exchange.ended_s or time.perf_counter()
                self.recorder.finished(exchange)

    async def _forward(self, request: httpx.Request, exchange: Exchange | None, counter: _Request | None, send: Callable) -> None:
        chunks = exchange.chunks if exchange else None
        if exchange:
            exchange.sent_s = time.perf_counter()
        try:
            response = await self.client.send(request, stream=True)  # type: ignore[union-attr]
        except httpx.HTTPError as exc:
            message = f"envirollm proxy: the upstream {public_url(self.config.upstream)} did not answer ({type(exc).__name__}: {exc})"
            if exchange:
                exchange.problem = f"the upstream did not answer ({type(exc).__name__})"
            await _send_error(send, 502, message)
            return
        try:
            if exchange:
                exchange.status_code = response.status_code
                exchange.content_encoding = response.headers.get("content-encoding", "")
            await send({
                "type": "http.response.start", "status": response.status_code,
                "headers": [(k, v) for k, v in response.headers.raw if k.lower().decode("latin-1") not in _HOP_BY_HOP],
            })
            try:
                async for chunk in response.aiter_raw():
                    if chunks is not None:
                        chunks.append((time.perf_counter(), chunk))
                        counter.chunks += 1  # type: ignore[union-attr]
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                if exchange:
                    exchange.ended_s = time.perf_counter()
                    exchange.problem = f"the upstream dropped the answer midway ({type(exc).__name__})"
                raise UpstreamDropped() from None
            if exchange:
                exchange.ended_s = time.perf_counter()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _refuse(self, exchange: Exchange, send: Callable, reason: str) -> None:
        self.recorder.started(exchange.id)
        exchange.sent_s = exchange.ended_s = time.perf_counter()
        exchange.status_code = 400
        exchange.problem = f"not routed: {reason}"
        await _send_error(send, 400, f"envirollm proxy: {AUTO_MODEL} could not be routed: {reason}")
        self.recorder.finished(exchange)


async def _read_body(receive: Callable) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _disconnected(receive: Callable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_error(send: Callable, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "proxy_error", "code": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _with_model(body: bytes, model: str) -> bytes:
    payload = json.loads(body)
    payload["model"] = model
    return json.dumps(payload).encode()


# --- running it ------------------------------------------------------------------------------------------


class _QuietDrops(logging.Filter):
    """uvicorn logs an application's exception with its traceback; a dropped upstream is foreseen and
    already logged in one line by the recorder."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], UpstreamDropped))


_QUIET_DROPS = _QuietDrops()  # one instance: adding it again is then a no-op


class MeteringProxy:
    """The proxy in a background thread: `start()` binds and serves, `stop()` ends it. The CLI and the app
    both run it through this class."""

    def __init__(self, config: ProxyConfig, *, store: Any = None, sampler: Any = None,
                 log: Callable[[str], None] | None = None) -> None:
        import uvicorn

        if store is None:
            from envirollm_core.store import Store

            store = Store()
        store.require_writable("starting the metering proxy (it records every request)")
        if sampler is None:
            from envirollm_core.telemetry.sampler import get_sampler

            sampler = get_sampler()
        self.config = config
        self.recorder = Recorder(config, store, sampler, log or _stderr)
        self.app = ProxyApp(config, self.recorder, Router(config, store))
        self._socket = _bind(config.host, config.port)
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, lifespan="on", log_level="warning", access_log=False, server_header=False,
            date_header=False, timeout_graceful_shutdown=3, timeout_keep_alive=30,
        ))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    @property
    def is_loopback(self) -> bool:
        return is_local_url(self.url) and urlsplit(self.url).hostname in ("127.0.0.1", "::1", "localhost")

    def start(self) -> MeteringProxy:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="envirollm-proxy", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise EnviroLLMError(f"the metering proxy did not start on {self.url}")
            time.sleep(0.01)
        return self

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.recorder.close()
        self._socket.close()

    def __enter__(self) -> MeteringProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --listen") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)



# --- the app's proxy: one per process, outliving page reruns ----------------------------------------------

_app_proxy: MeteringProxy | None = None
_app_lock = threading.Lock()


def app_proxy() -> MeteringProxy | None:
    """The proxy the app started, while it runs."""
    return _app_proxy if _app_proxy is not None and _app_proxy.is_running() else None


def start_app_proxy(config: ProxyConfig) -> MeteringProxy:
    """Start the app's proxy (refused in read-only mode, by the store, whatever the page shows)."""
    global _app_proxy
    with _app_lock:
        if app_proxy() is not None:
            raise UsageError(f"the metering proxy already runs at {_app_proxy.url}; stop it first")  # type: ignore[union-attr]
        _app_proxy = MeteringProxy(config, log=_log.info).start()
        return _app_proxy


def stop_app_proxy() -> None:
    global _app_proxy
    with _app_lock:
        if _app_proxy is not None:
            _app_proxy.stop()
            _app_proxy = None
