"""The load sweep's HTTP client: many streaming requests on one event loop, each received chunk stamped.

Why not httpx here: its async stack (anyio, httpcore, h11) spends ~100-150 µs
of Python per streamed chunk, and with 64 streams on 2 cores the loop then
falls behind and stamps tokens late. This client does only what a stamp
needs while the stream runs: `data_received` keeps (arrival time, bytes).
The HTTP/1.1 response (status, headers, chunked or length-delimited body) is
decoded after the stream ends, and each line of the body carries the arrival
time of the bytes that completed it, as a line reader would have seen it.
Each request has its own connection (`Connection: close`), as the sync
backends effectively do between runs.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from envirollm_core.backends.base import CONNECT_TIMEOUT_S, HttpStreamRequest, one_line

_END_OF_CHUNKED = b"0\r\n\r\n"


@dataclass
class StreamResponse:
    """What came back: status, headers, the body's lines with their arrival times, or a one-line error."""

    sent_s: float
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    lines: list[tuple[float, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None


class _Receiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self.closed = asyncio.get_running_loop().create_future()
        self.activity = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.perf_counter(), data))
        self.activity.set()
        if data.endswith(_END_OF_CHUNKED) and self.transport is not None:
            self.transport.close()  # the whole chunked body is in (a server may keep the connection open)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        self.activity.set()


async def stream_request(http: HttpStreamRequest, read_timeout_s: float, shown_url: str) -> StreamResponse:
    """POST the request and collect the response as it streams; never raises for a network failure."""
    parts = urlsplit(http.url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    body = json.dumps(http.body).encode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"POST {target} HTTP/1.1", f"Host: {parts.hostname}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Accept: text/event-stream, application/x-ndjson, application/json",
            "Accept-Encoding: identity", "Connection: close", *(f"{k}: {v}" for k, v in http.headers.items())]
    loop = asyncio.get_running_loop()
    sent_s = time.perf_counter()  # as the sync backends stamp it: before connecting, once the request is built
    try:
        transport, receiver = await asyncio.wait_for(
            loop.create_connection(_Receiver, parts.hostname, port, ssl=ssl.create_default_context() if secure else None),
            CONNECT_TIMEOUT_S,
        )
    except (OSError, asyncio.TimeoutError) as exc:
        reason = one_line(exc) if str(exc) else "timed out"
        return StreamResponse(sent_s, error=f"cannot connect to {shown_url} ({reason})")
    response = StreamResponse(sent_s)
    transport.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)
    try:
        while not receiver.closed.done():
            receiver.activity.clear()
            try:
                await asyncio.wait_for(receiver.activity.wait(), read_timeout_s)
            except asyncio.TimeoutError:
                response.error = f"no data from {shown_url} for {read_timeout_s:g} s (read timeout)"
                break
    finally:
        transport.close()
    _decode(response, receiver.chunks, shown_url)
    return response


def _decode(response: StreamResponse, chunks: list[tuple[float, bytes]], shown_url: str) -> None:
    """Status, headers and the body's stamped lines from the raw stamped bytes."""
    data = b"".join(piece for _, piece in chunks)
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        response.error = response.error or f"{shown_url} closed the connection before answering"
        return
    status_line, *header_lines = data[:head_end].decode("latin-1").split("\r\n")
    try:
        response.status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        response.error = f"{shown_url} answered something that is not HTTP: {status_line[:80]!r}"
        return
    response.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    # Where each byte of the raw data arrived: the stamp of the chunk that held it.
    ends, total = [], 0
    for t_s, piece in chunks:
        total += len(piece)
        ends.append((total, t_s))
    body, stamps, complete = _body(data, head_end + 4, response.headers, ends)
    response.body = body
    if not complete and response.error is None:
        response.error = f"the stream from {shown_url} dropped midway (the body ended early)"
    response.lines = _lines(body, stamps)


def _arrival(ends: list[tuple[int, float]], offset: int) -> float:
    """The arrival time of the raw byte at `offset` (the first chunk whose end lies past it)."""
    lo, hi = 0, len(ends) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid][0] > offset:
            hi = mid
        else:
            lo = mid + 1
    return ends[lo][1]


def _body(
    data: bytes, start: int, headers: dict[str, str], ends: list[tuple[int, float]]
) -> tuple[bytes, list[tuple[int, float]], bool]:
    """The body, the arrival time of each of its pieces as (end offset in the body, time), and whether it
    arrived whole."""
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        length = headers.get("content-length")
        body = data[start:] if length is None or not length.isdigit() else data[start:start + int(length)]
        stamps = [(end - start, t_s) for end, t_s in ends if end > start]
        return body, stamps, length is None or len(body) == int(length or 0)
    pieces: list[bytes] = []
    stamps: list[tuple[int, float]] = []
    position, size = start, 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return b"".join(pieces), stamps, False
        try:
            chunk_size = int(data[position:line_end].split(b";")[0], 16)
        except ValueError:
            return b"".join(pieces), stamps, False
        if chunk_size == 0:
            return b"".join(pieces), stamps, True
        chunk_start = line_end + 2
        chunk = data[chunk_start:chunk_start + chunk_size]
        if len(chunk) < chunk_size:
            return b"".join(pieces + [chunk]), [*stamps, (size + len(chunk), _arrival(ends, len(data) - 1))], False
        pieces.append(chunk)
        size += chunk_size
        stamps.append((size, _arrival(ends, chunk_start + chunk_size - 1)))
        position = chunk_start + chunk_size + 2


def _lines(body: bytes, stamps: list[tuple[int, float]]) -> list[tuple[float, str]]:
    """The body's lines (UTF-8, as every LLM server sends), each with the arrival of the piece holding its
    newline (or its last byte)."""
    lines: list[tuple[float, str]] = []
    start, stamp_index = 0, 0
    while start < len(body):
        newline = body.find(b"\n", start)
        end = len(body) if newline < 0 else newline
        last = max(end - (newline < 0), start)
        while stamp_index < len(stamps) - 1 and stamps[stamp_index][0] <= last:
            stamp_index += 1
        t_s = stamps[stamp_index][1] if stamps else 0.0
        lines.append((t_s, body[start:end].rstrip(b"\r").decode("utf-8", "replace")))
        start = end + 1
    return lines
