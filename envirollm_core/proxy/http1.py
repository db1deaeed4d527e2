"""Just enough HTTP/1.1 for a pass-through: message heads, and where a body ends.

The proxy never re-encodes a body: a chunked answer goes to the client with the upstream's own framing,
so its chunk boundaries are kept as they were. `ChunkedFraming` only follows that framing over the bytes
as they arrive, to tell where the body ends (a few slice and int operations a read); the recorder runs
the same class over the kept bytes afterwards to get the payload back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 64 * 1024
_MAX_SIZE_LINE = 4096
HEAD_END = b"\r\n\r\n"


class FramingError(ValueError):
    """The peer's bytes are not HTTP/1.1 as RFC 9112 frames it."""


@dataclass(frozen=True)
class Head:
    """A request or status line and its header fields, names as they were sent."""

    start: bytes
    headers: list[tuple[bytes, bytes]]
    _values: dict[bytes, list[bytes]] = field(init=False, repr=False, compare=False)  # by lower-case name

    def __post_init__(self) -> None:
        values: dict[bytes, list[bytes]] = {}
        for key, value in self.headers:
            values.setdefault(key.lower(), []).append(value)
        object.__setattr__(self, "_values", values)  # a head is read several times a request: names lowered once

    def get(self, name: bytes) -> bytes | None:
        """The last value of a header field (`name` in lower case)."""
        values = self._values.get(name)
        return values[-1] if values else None

    def tokens(self, name: bytes) -> set[bytes]:
        """A comma-separated list field's tokens, lower case, across all its lines (`Connection`, say)."""
        return {token.strip().lower() for value in self._values.get(name, ()) for token in value.split(b",")}

    def content_length(self) -> int | None:
        value = self.get(b"content-length")
        if value is None:
            return None
        if not value.strip().isdigit():
            raise FramingError(f"bad Content-Length {value[:40]!r}")
        return int(value)

    def is_chunked(self) -> bool:
        value = self.get(b"transfer-encoding")
        return value is not None and value.split(b",")[-1].strip().lower() == b"chunked"


def parse_head(data: bytes) -> Head:
    """A head without its final empty line."""
    start, *lines = data.split(b"\r\n")
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise FramingError(f"malformed header line {line[:60]!r}")
        headers.append((name, value.strip()))
    return Head(start, headers)


class ChunkedFraming:
    """Follows a chunked body (RFC 9112 7.1) across reads; `done` once its last chunk and trailers are in."""

    __slots__ = ("_left", "_line", "_trailers", "done")

    def __init__(self) -> None:
        self._left = 0  # bytes of the current chunk still to come, its closing CRLF included
        self._line = b""  # a size or trailer line cut by a read
        self._trailers = False
        self.done = False

    def feed(self, data: bytes, sink: Callable[[bytes], object] | None = None) -> int:
        """How many of `data`'s bytes belong to the body (all, until it ends); `sink` gets the payload."""
        pos, size = 0, len(data)
        while pos < size and not self.done:
            if self._left:
                take = min(self._left, size - pos)
                if sink is not None and self._left > 2:
                    payload = data[pos: pos + min(take, self._left - 2)]
                    sink(payload)
                pos += take
                self._left -= take
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]
                if len(self._line) > _MAX_SIZE_LINE:
                    raise FramingError("a chunk size line longer than 4 KiB")
                return size
            line = (self._line + data[pos:end]).rstrip(b"\r")
            self._line = b""
            pos = end + 1
            if self._trailers:
                self.done = not line
                continue
            try:
                chunk = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise FramingError(f"malformed chunk size line {line[:40]!r}") from None
            if chunk < 0:
                raise FramingError(f"malformed chunk size line {line[:40]!r}")
            if chunk:
                self._left = chunk + 2
            else:
                self._trailers = True
        return pos


def dechunk(reads: Sequence[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """The payload of a chunked body read as `(arrival time, bytes)`, each piece with its read's time.

    Stops at a framing error: what came before it is what the client got as payload too."""
    framing = ChunkedFraming()
    pieces: list[tuple[float, bytes]] = []
    for t_s, data in reads:
        parts: list[bytes] = []
        try:
            framing.feed(data, parts.append)
        except FramingError:
            break
        finally:
            if parts:
                pieces.append((t_s, b"".join(parts)))
    return pieces
