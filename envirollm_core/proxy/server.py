"""The metering proxy: an HTTP pass-through to an LLM server that records each generating request as a run.

What a client receives is what the upstream sent: the same status, the same headers (less the hop-by-hop
ones, which belong to each connection), the same body bytes in the same chunks, as they arrive. The
forwarding path (relay.py: asyncio protocols on one event loop, kept-alive upstream connections) only
passes each read on, stamps its arrival and keeps its bytes; parsing, energy and the database write happen
afterwards in the recorder's own thread, so the client never waits on them. A client that disconnects
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
from urllib.parse import unquote, urlsplit

import httpx
import polars as pl

from envirollm_core import __version__
from envirollm_core.backends.base import check_url, is_local_url, public_url
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.figures import format_figure, milli
from envirollm_core.units import average_power_w
from envirollm_core.proxy import DEFAULT_LISTEN
from envirollm_core.proxy.energy import RequestMeter, RequestEnergy, _Request
from envirollm_core.proxy.http1 import dechunk
from envirollm_core.proxy.relay import MAX_KEPT_BYTES, ClientConnection, Outcome, Request, Upstream, error_response
from envirollm_core.proxy.usage import LIVE_USE
from envirollm_core.proxy.router import AUTO_MODEL, ROUTING_COLUMNS, RouteDecision, choose
from envirollm_core.proxy.wire import METERED_PATHS, RequestText, read_answer, read_request
from envirollm_core.records import RunResult, prompt_hash

ProxyKind = Literal["openai", "ollama"]
CLIENT_HEADER = "x-envirollm-client"
TASK_HEADER = "x-envirollm-task"
_RESULTS_TTL_S = 30.0
_WRITE_EVERY_S = 5.0
_WRITE_AT_LATEST_S = 30.0
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
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # each read of the body as it came: (arrival, bytes)
    chunked: bool = False  # `chunks` carry the chunked framing, taken off when they are read
    kept_bytes: int = 0
    truncated: bool = False  # the answer outgrew MAX_KEPT_BYTES: passed on whole, not kept whole
    counter: _Request = field(default_factory=_Request)  # the energy meter's count of its chunks
    problem: str | None = None  # what went wrong in transit: upstream down, dropped, client gone
    cancelled: bool = False


# --- recording ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Start:
    exchange_id: str
    counter: _Request


class Recorder:
    """Energy boundaries, parsing and database writes, one at a time in one thread, off the forwarding path.

    Only the energy boundaries are taken as requests start and end. Answers are parsed and runs written
    together later: `_WRITE_EVERY_S` after the first pending one, at a moment no request is in flight, or
    `_WRITE_AT_LATEST_S` after it under unbroken use (and on `flush` and `close`). A DuckDB write costs
    tens of ms of CPU whatever it holds, and this thread shares the GIL with the forwarding loop: done
    between requests, neither costs a client anything."""

    def __init__(self, config: ProxyConfig, store: Any, sampler: Any, log: Callable[[str], None]) -> None:
        self.config = config
        self.store = store
        self.batch_id = uuid.uuid4().hex[:12]
        self._meter = RequestMeter(sampler)
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._marks: list[_Start | Exchange] = []  # boundaries of this turn of the event loop, not yet queued
        self._pending: list[tuple[Exchange, RequestEnergy]] = []
        self._write_due_s = self._write_latest_s = 0.0
        self._environment = _environment(config)
        self._log = log
        self.recorded: list[RunResult] = []  # this session's stored runs, oldest first
        self._thread = threading.Thread(target=self._work, name="envirollm-proxy-recorder", daemon=True)
        self._thread.start()

    def started(self, exchange_id: str) -> _Request:
        """A request is forwarded (called on the event loop); its energy boundary is read soon after."""
        counter = _Request()
        self._mark(_Start(exchange_id, counter))
        return counter

    def finished(self, exchange: Exchange) -> None:
        """A request's exchange is over (called on the event loop); recorded in this thread later."""
        self._mark(exchange)

    def _mark(self, boundary: _Start | Exchange) -> None:
        """Boundaries marked in one turn of the event loop go to this thread together, as one task read at one
        instant (RequestMeter.boundary): sixteen requests arriving at once cost one reading and one wake-up of
        this thread, which shares the GIL with the loop, instead of sixteen of each while they are forwarded."""
        self._marks.append(boundary)
        if len(self._marks) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.hand_over)
            except RuntimeError:  # not on a loop: at once
                self.hand_over()

    def hand_over(self) -> None:
        """Queue the boundaries marked so far (on the loop's thread, or once it has stopped)."""
        marks, self._marks = self._marks, []
        if marks:
            self._queue.put(lambda: self._boundaries(marks))

    def _boundaries(self, marks: list[_Start | Exchange]) -> None:
        starts = [(mark.exchange_id, mark.counter) for mark in marks if isinstance(mark, _Start)]
        begun_here = {exchange_id for exchange_id, _ in starts}
        ends = [mark for mark in marks if isinstance(mark, Exchange)]
        earlier = [exchange for exchange in ends if exchange.id not in begun_here]
        same_turn = [exchange for exchange in ends if exchange.id in begun_here]  # a refused request: a reading of its own
        energies = self._meter.boundary(starts, [exchange.id for exchange in earlier])
        if same_turn:
            energies |= self._meter.boundary([], [exchange.id for exchange in same_turn])
        for exchange in earlier + same_turn:
            self._record(exchange, energies[exchange.id])

    def flush(self) -> None:
        """Wait until every exchange handed over so far is recorded and stored."""
        done = threading.Event()

        def write_then_say() -> None:
            self._write()
            done.set()

        self._queue.put(write_then_say)
        done.wait()

    def close(self) -> None:
        self.hand_over()  # boundaries marked in the loop's last turn
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _work(self) -> None:
        while True:
            wait_s = None
            if self._pending:
                wait_s = max(0.0, (self._write_due_s if self._meter.idle else self._write_latest_s) - time.monotonic())
            try:
                task = self._queue.get(timeout=wait_s)
            except queue.Empty:
                task = lambda: None  # noqa: E731 - nothing came: only the write below may be due
            if task is None:
                break
            try:
                task()
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the recording of the rest
                self._log(f"envirollm proxy: recording failed: {type(exc).__name__}: {exc}")
            now = time.monotonic()
            if self._pending and (now >= self._write_latest_s or (now >= self._write_due_s and self._meter.idle)):
                self._write()
        self._write()

    def _record(self, exchange: Exchange, energy: RequestEnergy) -> None:
        if not self._pending:
            now = time.monotonic()
            self._write_due_s, self._write_latest_s = now + _WRITE_EVERY_S, now + _WRITE_AT_LATEST_S
        self._pending.append((exchange, energy))

    def _write(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        runs: list[tuple[Exchange, RunResult]] = []
        for exchange, energy in pending:
            try:
                runs.append((exchange, self._run(exchange, energy)))
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the recording of the rest
                self._log(f"envirollm proxy: recording failed: {type(exc).__name__}: {exc}")
        if not runs:
            return
        try:
            self.store.add_runs([run for _, run in runs])
        except EnviroLLMError as exc:
            self._log(f"envirollm proxy: could not record {len(runs)} request(s): {exc}")
            return
        for exchange, run in runs:
            self.recorded.append(run)
            self._log(_log_line(exchange, run))

    def _run(self, exchange: Exchange, energy: RequestEnergy) -> RunResult:
        text = exchange.request.prompt if exchange.request else ""
        chunks = dechunk(exchange.chunks) if exchange.chunked else exchange.chunks
        metrics = read_answer(exchange.path, exchange.content_encoding, exchange.sent_s, chunks, exchange.ended_s)
        if exchange.truncated and not exchange.problem:
            exchange.problem = f"the answer is over {MAX_KEPT_BYTES // 2**20} MiB: passed on, not read"
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


# --- the request handler -------------------------------------------------------------------------------


class ProxyApp:
    """What happens to each request: metering and routing before it goes, the record after it is answered.

    The bytes themselves go through `relay.py`'s protocols; this runs once per request, never per chunk."""

    def __init__(self, config: ProxyConfig, recorder: Recorder, router: Router) -> None:
        self.config = config
        self.recorder = recorder
        self.router = router
        self.upstream = Upstream(config.upstream_base, config.read_timeout_s, ours=(CLIENT_HEADER, TASK_HEADER))
        self._router_client: httpx.AsyncClient | None = None
        self._where = public_url(config.upstream)  # for error messages; once, not per request

    async def handle(self, client: ClientConnection, request: Request) -> None:
        path = unquote(request.target.split(b"?", 1)[0].decode("latin-1"))
        body = request.body
        exchange: Exchange | None = None
        if request.method == "POST" and path in METERED_PATHS:
            text = read_request(path, body)
            user_agent = _header(request, b"user-agent")
            exchange = Exchange(
                id=uuid.uuid4().hex[:12], method=request.method, path=path, created_at=datetime.now(timezone.utc),
                client=_header(request, CLIENT_HEADER.encode()) or user_agent, user_agent=user_agent,
                request=text, model=text.model if text else None,
            )
            if self.router.applies(text):
                assert text is not None
                exchange.decision = await self.router.decide(
                    self._routing_client(), text, _header(request, TASK_HEADER.encode()), _header(request, b"authorization"),
                )
                if exchange.decision.model is None:
                    self._refuse(client, exchange, exchange.decision.reason)
                    return
                exchange.model = exchange.decision.model
                body = _with_model(body, exchange.decision.model)
            exchange.counter = self.recorder.started(exchange.id)
            exchange.sent_s = time.perf_counter()
        try:
            await self._relay(client, request, body, exchange)
        finally:
            if exchange:
                exchange.ended_s = exchange.ended_s or time.perf_counter()
                self.recorder.finished(exchange)

    async def _relay(self, client: ClientConnection, request: Request, body: bytes, exchange: Exchange | None) -> None:
        payload = self.upstream.request_bytes(request, body)
        where = self._where
        for _ in range(2):
            try:
                connection, reused = await self.upstream.connection()
            except (OSError, asyncio.TimeoutError) as exc:
                name = "ConnectTimeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
                if exchange:
                    exchange.problem = f"the upstream did not answer ({name})"
                client.write(error_response(502, f"envirollm proxy: the upstream {where} did not answer ({name}: {exc})"))
                return
            if client.gone:
                self.upstream.release(connection)
                outcome = Outcome.CLIENT_GONE
                break
            client.relay = connection
            outcome = await connection.send(client, payload, request, exchange)
            if outcome == Outcome.NO_ANSWER and reused and not connection.answered:
                if exchange:  # an idle connection the upstream had closed: once more, on a new one
                    exchange.problem = None
                continue
            break
        if outcome == Outcome.CLIENT_GONE:
            if exchange:
                exchange.cancelled = True
                exchange.problem = "the client disconnected midway; the upstream request was cancelled"
        elif outcome != Outcome.OK:
            if connection.answering:  # the answer had begun: the client sees the cut as the proxy did
                client.keep_alive = False
                client.close()
            else:
                status = 504 if outcome == Outcome.TIMEOUT else 502
                client.write(error_response(status, f"envirollm proxy: {where}: {connection.problem}"))

    def _refuse(self, client: ClientConnection, exchange: Exchange, reason: str) -> None:
        exchange.counter = self.recorder.started(exchange.id)
        exchange.sent_s = exchange.ended_s = time.perf_counter()
        exchange.status_code = 400
        exchange.problem = f"not routed: {reason}"
        client.write(error_response(400, f"envirollm proxy: {AUTO_MODEL} could not be routed: {reason}"))
        self.recorder.finished(exchange)

    def _routing_client(self) -> httpx.AsyncClient:
        """The router's own client, for the upstream's model list (every 30 s at most): off the forwarding path."""
        if self._router_client is None:
            self._router_client = httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False, trust_env=False)
        return self._router_client

    async def close(self) -> None:
        self.upstream.close()
        if self._router_client is not None:
            await self._router_client.aclose()


def _header(request: Request, name: bytes) -> str | None:
    value = request.head.get(name)
    return value.decode("latin-1") if value is not None else None


def _with_model(body: bytes, model: str) -> bytes:
    payload = json.loads(body)
    payload["model"] = model
    return json.dumps(payload).encode()


# --- running it ------------------------------------------------------------------------------------------


class MeteringProxy:
    """The proxy in a background thread with its own event loop: `start()` binds and serves, `stop()` ends
    it. The CLI and the app both run it through this class."""

    def __init__(self, config: ProxyConfig, *, store: Any = None, sampler: Any = None,
                 log: Callable[[str], None] | None = None) -> None:
        if store is None:
            from envirollm_core.store import Store

            store = Store()
        store.require_writable("starting the metering proxy (it records every request)")
        if sampler is None:
            from envirollm_core.telemetry.sampler import get_sampler

            sampler = get_sampler()
        self.config = config
        self._log = log or _stderr
        self.recorder = Recorder(config, store, sampler, self._log)
        self.app = ProxyApp(config, self.recorder, Router(config, store))
        self._socket = _bind(config.host, config.port)
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        self._connections: set[ClientConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_loopback(self) -> bool:
        return is_local_url(self.url) and urlsplit(self.url).hostname in ("127.0.0.1", "::1", "localhost")

    def start(self) -> MeteringProxy:
        self._thread = threading.Thread(target=self._serve, name="envirollm-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(10) or self._loop is None:
            raise EnviroLLMError(f"the metering proxy did not start on {self.url}")
        return self

    def _serve(self) -> None:
        loop = _new_loop()
        loop.set_exception_handler(self._loop_error)
        try:
            server = loop.run_until_complete(loop.create_server(
                lambda: ClientConnection(self.app.handle, self._connections), sock=self._socket, backlog=1024,
            ))
        except OSError as exc:
            self._log(f"envirollm proxy: could not serve on {self.url}: {exc}")
            loop.close()
            self._started.set()
            return
        self._loop = loop
        self._started.set()
        try:
            loop.run_forever()
            loop.run_until_complete(self._shut(server))
        finally:
            loop.close()

    async def _shut(self, server: asyncio.AbstractServer) -> None:
        """Stop accepting, give requests in flight up to 3 s to end, then cut the rest (recorded as cancelled)."""
        server.close()
        deadline = time.monotonic() + 3
        while any(c.busy for c in self._connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self._connections):
            connection.close()
        await asyncio.sleep(0)  # let the handlers see their cancelled relays and hand over their records
        await self.app.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self._log(f"envirollm proxy: {context.get('message', 'error')}" + (f" ({type(exc).__name__}: {exc})" if exc else ""))

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._loop is not None and self.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.recorder.close()
        self._socket.close()

    def __enter__(self) -> MeteringProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux, macOS): a chunk passed on costs about a third
    less CPU than on asyncio's own loop (11 vs 16 µs here); asyncio's elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


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
