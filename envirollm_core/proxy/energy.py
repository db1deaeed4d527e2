"""Energy of real use: one sampler window over all requests in flight, shared among them by their tokens.

While any request is in flight one energy window of the shared sampler stays open. Each request's start
and end is a boundary: the window is read there (`read_window`, exact counter reads at the edge), which
cuts time into segments where the same requests are in flight. A segment's energy, per component, goes
to those requests in proportion to the chunks each received in it (one chunk is one token on llama.cpp,
Ollama, vLLM and LM Studio); a segment where none received any (prompt processing, say) is shared
equally. A request's energy is the sum of its shares, so overlapping requests never count the same joule
twice and the shares of a busy hour add up to the hour's energy. A non-streamed answer arrives in one
chunk at its end, so it gets its share of the last segment only plus equal shares of token-less ones
(docs/PROXY.md says so).

All calls come from one thread (the proxy's recorder); chunk counts are bumped from the event loop, as
plain integer increments. Boundaries handed over together (requests that arrived in the same turn of the
event loop) share one reading: the same instant for all of them, so the split stays exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from envirollm_core.records import ComponentEnergy


@dataclass
class _Request:
    chunks: int = 0  # bumped by the forwarding loop
    counted: int = 0  # chunks already given to a closed segment
    shares_wh: dict[str, float] = field(default_factory=dict)
    overlapped: int = 0  # the most other requests in flight in any of its segments


@dataclass(frozen=True)
class RequestEnergy:
    energy_wh: float | None
    components: tuple[ComponentEnergy, ...]
    overlapped: int  # the most other requests that shared a segment with it


_meter_ids = itertools.count(1)


class RequestMeter:
    """Per-request energy of real use: the shared sampler's window cut at every request's start and end."""

    def __init__(self, sampler: Any) -> None:
        self._sampler = sampler
        self._window: str | None = None
        self._last: dict[str, float | None] = {}
        self._sources: dict[str, tuple[str, str]] = {}
        self._active: dict[str, _Request] = {}

    def start(self, request_id: str, counter: _Request) -> None:
        """A request begins; `counter` is what its forwarding loop bumps for each chunk."""
        self.boundary([(request_id, counter)], [])

    def finish(self, request_id: str) -> RequestEnergy:
        return self.boundary([], [request_id])[request_id]

    @property
    def idle(self) -> bool:
        """No request in flight."""
        return not self._active

    def boundary(self, starts: Sequence[tuple[str, _Request]], finishes: Sequence[str]) -> dict[str, RequestEnergy]:
        """Requests that begin and end at the same moment share one reading of the window: sixteen requests
        arriving together cost one read, not sixteen. `finishes` are requests in flight (begun at an earlier
        boundary); each gets its energy, and `starts` are in flight from here on."""
        if self._window is None:
            if finishes:
                raise ValueError(f"no request in flight to finish: {list(finishes)}")
            if not starts:
                return {}
            self._window = f"proxy-{next(_meter_ids)}"
            self._sampler.begin_window(self._window)
            self._last = {}
        else:
            last = len(finishes) == len(self._active) and not starts
            measurement = self._sampler.end_window(self._window) if last else self._sampler.read_window(self._window)
            self._close_segment(measurement.components)
            if last:
                self._window = None
        energies = {request_id: self._energy(self._active.pop(request_id)) for request_id in finishes}
        for request_id, counter in starts:
            self._active[request_id] = counter
        return energies

    def _energy(self, request: _Request) -> RequestEnergy:
        components = tuple(
            ComponentEnergy(name, request.shares_wh.get(name), *self._sources[name]) for name in self._sources
        )
        known = [c.energy_wh for c in components if c.energy_wh is not None]
        return RequestEnergy(sum(known) if known else None, components, request.overlapped)

    def _close_segment(self, cumulative: Sequence[ComponentEnergy]) -> None:
        requests = list(self._active.values())
        new_chunks = [r.chunks - r.counted for r in requests]
        total_chunks = sum(new_chunks)
        for request, chunks in zip(requests, new_chunks):
            request.counted += chunks
            request.overlapped = max(request.overlapped, len(requests) - 1)
        for component in cumulative:
            self._sources[component.component] = (component.source, component.note)
            before = self._last.get(component.component, 0.0)
            now = component.energy_wh
            self._last[component.component] = now
            if now is None or before is None or not requests:
                if now is None:
                    for request in requests:
                        request.shares_wh.setdefault(component.component, None)  # type: ignore[arg-type]
                continue
            segment_wh = max(now - before, 0.0)
            for request, chunks in zip(requests, new_chunks):
                fraction = chunks / total_chunks if total_chunks else 1 / len(requests)
                shares = request.shares_wh
                if shares.get(component.component, 0.0) is not None:
                    shares[component.component] = shares.get(component.component, 0.0) + segment_wh * fraction
