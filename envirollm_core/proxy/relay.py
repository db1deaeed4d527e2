"""The forwarding path: asyncio protocols that pass each upstream read on to the client as it arrives.

Per read of the answer's body the proxy does one `recv`, one `send` of the same bytes (both sockets have
TCP_NODELAY: asyncio's and uvloop's TCP transports set it themselves, so each chunk leaves at once, never
held back by Nagle's algorithm for the peer's ACK; tests/proxy/test_proxy.py checks it), follows the chunked
framing to find the end, and, for a metered request, keeps the bytes with their arrival time (bounded) for
the recorder. No JSON, no coroutine switch, no lock, no queue per read: the upstream protocol's
`data_received` writes straight to the client's transport. Heads and request bodies are parsed here too (http1.py); everything the record
needs is read from the kept bytes after the exchange, in the recorder's thread.

Upstream connections are kept alive and reused (HTTP/1.1), so a request pays no TCP connect when one is
idle. A client that disconnects aborts its upstream connection: llama.cpp, Ollama and vLLM take a closed
connection as a cancel.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from envirollm_core.proxy.http1 import HEAD_END, MAX_HEAD_BYTES, ChunkedFraming, FramingError, Head, parse_head

if TYPE_CHECKING:
    from envirollm_core.proxy.server import Exchange

MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024
MAX_KEPT_BYTES = 64 * 1024 * 1024  # of one answer, for the recorder; the client gets all of it regardless
CONNECT_TIMEOUT_S = 5.0
KEEP_ALIVE_S = 30.0
_MAX_IDLE_UPSTREAM = 64
# Fields that describe one connection, not the message (RFC 9110 7.6.1); `host` is the upstream's own.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"host", b"expect",
})


@dataclass(frozen=True)
class Request:
    """One request as the client sent it, its body de-framed."""

    method: str
    target: bytes  # the request target as sent: path and query, still percent-encoded
    version: bytes
    head: Head
    body: bytes

    @property
    def keep_alive(self) -> bool:
        tokens = self.head.tokens(b"connection")
        return b"keep-alive" in tokens if self.version == b"HTTP/1.0" else b"close" not in tokens


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "proxy_error", "code": status}}).encode()


_REASONS = {400: b"Bad Request", 413: b"Content Too Large", 431: b"Request Header Fields Too Large",
            502: b"Bad Gateway", 504: b"Gateway Timeout"}


def error_response(status: int, message: str, close: bool = False) -> bytes:
    body = error_body(status, message)
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (status, _REASONS.get(status, b"Error"), len(body), b"connection: close\r\n" if close else b"", body))


# --- the upstream side -------------------------------------------------------------------------------------


class Upstream:
    """Where requests go (scheme, host, port, path prefix), and its idle keep-alive connections."""

    def __init__(self, base_url: str, read_timeout_s: float, ours: tuple[str, ...] = ()) -> None:
        parts = urlsplit(base_url)
        self._not_forwarded = HOP_BY_HOP | {b"content-length"} | {name.encode() for name in ours}
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/").encode()
        default_port = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (host if default_port else f"{host}:{self.port}").encode()
        self.read_timeout_s = read_timeout_s
        self._idle: list[UpstreamConnection] = []
        self._address: tuple[str, int] | None = None

    async def connection(self) -> tuple[UpstreamConnection, bool]:
        """An idle connection (reused: True) or a new one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection, True
        loop = asyncio.get_running_loop()
        if self._address is None:  # resolved once, not per request (a name lookup is a thread hop)
            infos = await asyncio.wait_for(loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM), CONNECT_TIMEOUT_S)
            self._address = infos[0][4][:2]
        host, port = self._address
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):  # no task of its own, as wait_for makes one
                _, connection = await loop.create_connection(
                    lambda: UpstreamConnection(self), host, port, ssl=self.ssl, server_hostname=self.host if self.ssl else None,
                )
        except (OSError, asyncio.TimeoutError):
            self._address = None  # looked up again next time: the name may point elsewhere now
            raise
        return connection, False

    def release(self, connection: UpstreamConnection) -> None:
        if connection.usable and len(self._idle) < _MAX_IDLE_UPSTREAM:
            self._idle.append(connection)
        else:
            connection.close()

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def request_bytes(self, request: Request, body: bytes) -> bytes:
        lines = [b"%s %s%s HTTP/1.1" % (request.method.encode(), self.prefix, request.target), b"host: " + self.host_header]
        for name, value in request.head.headers:
            if name.lower() not in self._not_forwarded:  # the length is set below: the router may rewrite the body
                lines.append(name + b": " + value)
        if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(b"content-length: %d" % len(body))
        return b"\r\n".join(lines) + HEAD_END + body


class Outcome:
    """How one answer's relay ended, for the request handler: set once, awaited once."""

    OK, NO_ANSWER, DROPPED, CLIENT_GONE, TIMEOUT = "ok", "no answer", "dropped", "client gone", "timeout"


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to the upstream; while it carries an answer, it writes to that client."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._client: ClientConnection | None = None
        self._exchange: Exchange | None = None
        self._done: asyncio.Future[str] | None = None
        self._head = bytearray()
        self._in_body = False
        self._framing: ChunkedFraming | None = None
        self._left: int | None = None  # Content-Length bytes still to come; None: chunked or until close
        self._dechunk = False
        self._keep_alive = False
        self._no_body = False
        self._head_request = False
        self._received = False
        self._last_read_s = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.problem: str | None = None  # what went wrong with the last answer, for the client's 502

    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, client: ClientConnection, payload: bytes, request: Request, exchange: Exchange | None) -> asyncio.Future[str]:
        """Write a request and relay its answer to `client`; the future says how the relay ended."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._client, self._exchange, self._done = client, exchange, loop.create_future()
        self._head.clear()
        self._in_body = self._received = False
        self.problem = None
        self._head_request = request.method == "HEAD"
        self._dechunk = request.version == b"HTTP/1.0"
        self._last_read_s = time.perf_counter()
        self._timer = loop.call_later(self.upstream.read_timeout_s, self._check_timeout)
        self.transport.write(payload)
        return self._done

    # -- reading the answer

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            self.lost = True  # bytes nobody asked for: this connection is out of step, never reuse it
            self.close()
            return
        self._received = True
        self._last_read_s = now_s = time.perf_counter()
        if self._in_body:
            self._body(now_s, data)
            return
        self._head += data
        while not self._in_body:
            end = self._head.find(HEAD_END)
            if end < 0:
                if len(self._head) > MAX_HEAD_BYTES:
                    self._fail_head("the upstream sent a head over 64 KiB")
                return
            try:
                head = parse_head(bytes(self._head[:end]))
                status = _status(head)
            except FramingError as exc:
                self._fail_head(f"the upstream's answer is not HTTP/1.1 ({exc})")
                return
            rest = bytes(self._head[end + 4:])
            del self._head[:]
            if 100 <= status < 200:  # interim answers (100 Continue, 103 Early Hints) end here
                self._head += rest
                continue
            try:
                self._start_body(head, status)
            except FramingError as exc:
                self._fail_head(f"the upstream's answer is not HTTP/1.1 ({exc})")
                return
            if self._no_body:
                self._finish(Outcome.OK)
            elif rest:
                self._body(now_s, rest)

    def _start_body(self, head: Head, status: int) -> None:
        client = self._client
        assert client is not None
        exchange = self._exchange
        chunked = head.is_chunked()
        length = None if chunked else head.content_length()
        self._no_body = self._head_request or status in (204, 304)
        self._framing = ChunkedFraming() if chunked and not self._no_body else None
        self._left = length
        close_delimited = not self._no_body and not chunked and length is None
        version = head.start[:8]
        self._keep_alive = (version == b"HTTP/1.1" and b"close" not in head.tokens(b"connection")) and not close_delimited
        client_closes = close_delimited or not client.keep_alive
        if exchange is not None:
            exchange.status_code = status
            exchange.content_encoding = (head.get(b"content-encoding") or b"").decode("latin-1")
            exchange.chunked = self._framing is not None
        lines = [b"HTTP/1.1" + head.start[8:]]
        lines.extend(name + b": " + value for name, value in head.headers if name.lower() not in HOP_BY_HOP)
        if self._framing is not None and not self._dechunk:
            lines.append(b"transfer-encoding: chunked")
        if client_closes:
            lines.append(b"connection: close")
            client.keep_alive = False
        client.write(b"\r\n".join(lines) + HEAD_END)
        self._in_body = True

    def _body(self, now_s: float, data: bytes) -> None:
        """The hot path: one call per read of the answer's body."""
        framing = self._framing
        client = self._client
        assert client is not None
        if framing is not None:
            try:
                used = framing.feed(data, client.write if self._dechunk else None)
            except FramingError as exc:
                self._keep(now_s, data)
                self._finish(Outcome.DROPPED, f"the upstream's chunked framing broke ({exc})")
                return
            if not self._dechunk:
                client.write(data if used == len(data) else data[:used])
            ended = framing.done
            if used < len(data):
                self._keep_alive = False  # bytes past the answer's end: no reuse
        else:
            left = self._left
            if left is not None:
                if len(data) >= left:
                    self._keep_alive = self._keep_alive and len(data) == left
                    data = data[:left]
                self._left = left - len(data)
                ended = self._left == 0
            else:
                ended = False
            client.write(data)
        self._keep(now_s, data)
        if ended:
            self._finish(Outcome.OK)

    def _keep(self, now_s: float, data: bytes) -> None:
        exchange = self._exchange
        if exchange is not None:
            if exchange.kept_bytes < MAX_KEPT_BYTES:
                exchange.chunks.append((now_s, data))
                exchange.kept_bytes += len(data)
            else:
                exchange.truncated = True
            exchange.counter.chunks += 1

    def _fail_head(self, problem: str) -> None:
        self._keep_alive = False
        self._finish(Outcome.NO_ANSWER, problem)

    # -- how it ends

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.upstream.forget(self)
        if self._done is not None and not self._done.done():
            if not self._in_body:
                self._finish(Outcome.NO_ANSWER, "the upstream closed the connection without an answer")
            elif self._framing is None and self._left is None:
                self._finish(Outcome.OK)  # an answer delimited by the connection's close ends here
            else:
                self._finish(Outcome.DROPPED, "the upstream dropped the answer midway (connection closed)")

    def cancel(self) -> None:
        """The client went away: abort the upstream request (a closed connection is a cancel)."""
        self._keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        self._finish(Outcome.CLIENT_GONE)

    def _check_timeout(self) -> None:
        idle_s = time.perf_counter() - self._last_read_s
        if idle_s < self.upstream.read_timeout_s:
            self._timer = asyncio.get_running_loop().call_later(self.upstream.read_timeout_s - idle_s, self._check_timeout)
            return
        self._keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        self._finish(Outcome.TIMEOUT, f"the upstream sent nothing for {self.upstream.read_timeout_s:g} s")

    def _finish(self, outcome: str, problem: str | None = None) -> None:
        done = self._done
        if done is None or done.done():
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._exchange is not None:
            self._exchange.ended_s = self._last_read_s if outcome == Outcome.OK else time.perf_counter()
            if problem and not self._exchange.problem:
                self._exchange.problem = problem
        self.problem = problem
        done.set_result(outcome)
        self._client = self._exchange = None
        if outcome == Outcome.OK and self._keep_alive:
            self.upstream.release(self)
        elif self.transport is not None:
            self.transport.close()

    @property
    def answering(self) -> bool:
        """Whether the answer's head went to the client (a failure after it can only cut the connection)."""
        return self._in_body

    @property
    def answered(self) -> bool:
        """Whether any byte of an answer arrived (a request on a stale connection gets none and is retried)."""
        return self._received


def _status(head: Head) -> int:
    parts = head.start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise FramingError(f"bad status line {head.start[:60]!r}")
    return int(parts[1])


# --- the client side ---------------------------------------------------------------------------------------


Handler = Callable[["ClientConnection", Request], Any]


class ClientConnection(asyncio.Protocol):
    """One client's connection: reads requests one at a time and hands each to `handler` (a coroutine)."""

    def __init__(self, handler: Handler, connections: set[ClientConnection]) -> None:
        self._handler = handler
        self._connections = connections
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: Head | None = None
        self._head_end = 0
        self._framing: ChunkedFraming | None = None
        self._continued = False
        self.busy = False
        self.wrote = False
        self.gone = False
        self.keep_alive = True
        self.relay: UpstreamConnection | None = None  # the upstream answering it now
        self._idle_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._connections.add(self)
        self._arm_idle()

    def write(self, data: bytes) -> None:
        self.wrote = True
        if not self.gone:
            self.transport.write(data)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.busy:
            self._next_request()
        elif len(self._buffer) > MAX_HEAD_BYTES:
            self.transport.pause_reading()  # type: ignore[union-attr]  # a pipelining client waits its turn

    def eof_received(self) -> bool:
        return False  # the client closed its side: an HTTP client that does is gone (the transport closes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self._connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self.relay is not None:
            self.relay.cancel()

    def pause_writing(self) -> None:  # a slow client holds back the upstream, not the proxy's memory
        if self.relay is not None and self.relay.transport is not None:
            self.relay.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.relay is not None and self.relay.transport is not None and not self.relay.transport.is_closing():
            self.relay.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(KEEP_ALIVE_S, self._idle_timeout)

    def _idle_timeout(self) -> None:
        if not self.busy and not self._buffer:
            self.close()

    def _next_request(self) -> None:
        try:
            request = self._parse()
        except FramingError as exc:
            self._refuse(400, f"envirollm proxy: a malformed request ({exc})")
            return
        except _TooLarge as exc:
            self._refuse(exc.status, f"envirollm proxy: {exc}")
            return
        if request is None:
            return
        self.busy = True
        self.wrote = False  # whether anything of this request's answer went out yet
        self.keep_alive = request.keep_alive
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._task = asyncio.ensure_future(self._handle(request))  # held: the loop keeps only weak references

    async def _handle(self, request: Request) -> None:
        try:
            await self._handler(self, request)
        except Exception as exc:  # noqa: BLE001 - a failure of one request must not leave its client hanging
            self.keep_alive = False
            if not self.wrote:
                self.write(error_response(502, f"envirollm proxy: the request failed in the proxy ({type(exc).__name__}: {exc})", close=True))
            asyncio.get_running_loop().call_exception_handler({"message": "a request failed", "exception": exc})
        self.relay = None
        self.busy = False
        if self.gone:
            return
        if not self.keep_alive:
            self.close()
            return
        self.transport.resume_reading()  # type: ignore[union-attr]
        self._arm_idle()
        if self._buffer:
            self._next_request()

    def _refuse(self, status: int, message: str) -> None:
        self.write(error_response(status, message, close=True))
        self.busy = True  # nothing more is read from a client that broke the framing
        self.close()

    def _parse(self) -> Request | None:
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(HEAD_END)
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _TooLarge(431, "the request head is over 64 KiB")
                return None
            self._head = parse_head(bytes(buffer[:end]))
            self._head_end = end + 4
            if self._head.is_chunked():
                self._framing = ChunkedFraming()
        head = self._head
        parts = head.start.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise FramingError(f"bad request line {head.start[:60]!r}")
        if self._framing is not None:
            payload: list[bytes] = []
            used = self._framing.feed(bytes(buffer[self._head_end:]), payload.append)
            if not self._framing.done:
                self._continue(head)
                if len(buffer) > MAX_REQUEST_BODY_BYTES:
                    raise _TooLarge(413, "the request body is over 64 MiB")
                self._framing = ChunkedFraming()  # fed again from the start with the next read
                return None
            body, consumed = b"".join(payload), self._head_end + used
        else:
            length = head.content_length() or 0
            if length > MAX_REQUEST_BODY_BYTES:
                raise _TooLarge(413, "the request body is over 64 MiB")
            if len(buffer) - self._head_end < length:
                self._continue(head)
                return None
            body, consumed = bytes(buffer[self._head_end: self._head_end + length]), self._head_end + length
        del buffer[:consumed]
        self._head, self._framing, self._continued = None, None, False
        return Request(parts[0].decode("latin-1"), parts[1], parts[2], head, body)

    def _continue(self, head: Head) -> None:
        """A client that sent `Expect: 100-continue` waits for this before sending the body."""
        if not self._continued and (head.get(b"expect") or b"").lower() == b"100-continue":
            self._continued = True
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")


class _TooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
