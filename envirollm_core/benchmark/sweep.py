"""Load sweeps: a closed loop of N concurrent streams per level, measured in a steady-state window.

At each concurrency level the async client keeps exactly `level` requests in
flight: each stream sends its next request as soon as its last one ends,
until the level's request budget (or duration) is spent. The first
completion ends the ramp-up (every stream has started, and the cohort that
started together has turned over once); the first completion after the last
request was sent starts the drain (from then on fewer than `level` are in
flight). Between those two moments is the **steady-state window**: an energy
window of the sampler spans exactly it, and throughput (tokens whose arrival
falls inside it), requests/s, latency percentiles and goodput are measured
over it. Every request is kept as a run of the sweep (its level in
`sweep_concurrency`), failed ones too.

Why one event loop and not threads: a thread per stream stamps a token when
it next gets the GIL (a 5 ms switch interval), which is larger than the gaps
being timed. The loop only stamps and keeps each line while streams run; the
lines are parsed by the backends' own readers once a stream has ended, so
parsing never delays a stamp (bench/sweep_client.py measures the error at 64
streams).

Per-run energy does not exist here: while streams overlap, the machine's
energy cannot be told apart per request, so each run's energy is null and the
level's window energy is divided by its tokens and requests instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from envirollm_core.backends.base import (
    DEFAULT_READ_TIMEOUT_S,
    Backend,
    BackendError,
    ChatRequest,
    Delta,
    HttpStreamRequest,
    RequestSent,
    StreamPiece,
    one_line,
    redact,
)
from envirollm_core.benchmark.metrics import StreamMetrics, measure_stream, percentile
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.stream_client import stream_request
from envirollm_core.benchmark.runner import (
    BenchmarkConfig,
    _begin_window,
    _environment,
    _fill_stream,
    _model_details,
    _model_info,
    _new_run,
)
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.records import ComponentEnergy, RunResult
from envirollm_core.store import Store
from envirollm_core.telemetry.measurement import EnergyMeter

MAX_CONCURRENCY = 256
KNEE_GAIN = 0.10  # past the knee, doubling the load adds less than this to throughput while latency grows
DEFAULT_LEVELS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class SweepConfig:
    model: str
    prompts: tuple[Prompt, ...]
    concurrency: tuple[int, ...] = DEFAULT_LEVELS
    requests_per_level: int | None = None  # None (and no duration): 4 x the level, at least 8
    duration_per_level_s: float | None = None
    max_tokens: int = 128
    temperature: float | None = 0.0
    slo_ttft_s: float | None = None
    slo_itl_s: float | None = None
    idle_s: float = 3.0
    timeout_s: float = DEFAULT_READ_TIMEOUT_S
    notes: str = ""

    def __post_init__(self) -> None:
        # The per-run checks (model, prompts, max tokens, temperature, note) are the benchmark's.
        self.run_config()
        if not self.concurrency:
            raise UsageError("--concurrency names no level")
        for level in self.concurrency:
            if not 1 <= level <= MAX_CONCURRENCY:
                raise UsageError(f"a concurrency level must be between 1 and {MAX_CONCURRENCY}, not {level}")
        if list(self.concurrency) != sorted(set(self.concurrency)):
            raise UsageError("--concurrency levels must be given once each, in increasing order (e.g. 1,2,4,8)")
        if self.requests_per_level is not None and self.duration_per_level_s is not None:
            raise UsageError("give --requests-per-level or --duration-per-level, not both")
        if self.requests_per_level is not None and self.requests_per_level < 2 * max(self.concurrency):
            raise UsageError(
                f"--requests-per-level {self.requests_per_level} leaves no steady state at concurrency "
                f"{max(self.concurrency)}: give at least twice the highest level ({2 * max(self.concurrency)})"
            )
        if self.duration_per_level_s is not None and not 0 < self.duration_per_level_s <= 3600:
            raise UsageError(f"--duration-per-level must be between 0 and 3600 s, not {self.duration_per_level_s:g}")
        for name, value in (("--slo-ttft", self.slo_ttft_s), ("--slo-itl", self.slo_itl_s)):
            if value is not None and not value > 0:
                raise UsageError(f"{name} must be a positive number of seconds, not {value:g}")
        if not self.timeout_s > 0:
            raise UsageError(f"--timeout must be positive, not {self.timeout_s:g}")

    def run_config(self) -> BenchmarkConfig:
        return BenchmarkConfig(models=(self.model,), prompts=self.prompts, repeat=1, warmup=0,
                               max_tokens=self.max_tokens, temperature=self.temperature, idle_s=self.idle_s,
                               notes=self.notes)

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model,)

    @property
    def total_runs(self) -> int | None:
        """Every request the sweep will send; None when its levels run for a duration."""
        budgets = [self.requests_for(level) for level in self.concurrency]
        return None if None in budgets else sum(budgets)  # type: ignore[arg-type]

    def requests_for(self, level: int) -> int | None:
        """The level's request budget; None when the level runs for a duration instead."""
        if self.duration_per_level_s is not None:
            return None
        return self.requests_per_level or max(8, 4 * level)


@dataclass(frozen=True)
class LevelResult:
    """One concurrency level, measured over its steady-state window (None where the window held nothing)."""

    sweep_id: str
    concurrency: int
    requests: int
    failed: int
    window_s: float | None
    window_requests: int
    window_tokens: float
    output_tps: float | None
    requests_per_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_p99_s: float | None
    itl_p50_s: float | None
    itl_p95_s: float | None
    itl_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p95_s: float | None
    e2e_p99_s: float | None
    goodput_rps: float | None
    goodput_fraction: float | None
    energy_wh: float | None
    energy_net_wh: float | None
    energy_per_token_wh: float | None
    energy_per_request_wh: float | None
    components: tuple[ComponentEnergy, ...] = ()


@dataclass
class SweepResult:
    sweep_id: str
    model: str
    backend: str
    base_url: str
    created_at: datetime
    slo_ttft_s: float | None
    slo_itl_s: float | None
    levels: list[LevelResult] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)
    cancelled: bool = False

    @property
    def failed(self) -> int:
        return sum(run.status != "ok" for run in self.runs)

    @property
    def knee(self) -> int | None:
        return find_knee(self.levels)


@dataclass
class _Request:
    """One request of a level as the async client saw it."""

    level: int
    prompt: Prompt
    metrics: StreamMetrics
    sent_s: float
    ended_s: float
    token_times_s: list[float]


def find_knee(levels: Sequence[Any]) -> int | None:
    """The level past which throughput grows less than 10 % while p95 end-to-end latency grows; None if none.

    Works on any objects with `concurrency`, `output_tps` and `e2e_p95_s` (level results, or stored rows)."""
    measured = [lv for lv in sorted(levels, key=lambda lv: lv.concurrency)
                if lv.output_tps is not None and lv.e2e_p95_s is not None]
    for before, after in zip(measured, measured[1:]):
        if after.output_tps < before.output_tps * (1 + KNEE_GAIN) and after.e2e_p95_s > before.e2e_p95_s:
            return before.concurrency
    return None


def levels_of(frame: Any) -> list[Any]:
    """Stored levels (a `Store.sweep_levels` frame) as objects `find_knee` reads."""
    from types import SimpleNamespace

    return [SimpleNamespace(**row) for row in frame.iter_rows(named=True)]


class SweepProgress:
    """What the sweep tells as it goes (the CLI prints it, the page shows it); every method may be left as is."""

    def phase(self, text: str) -> None: ...

    def level_done(self, level: LevelResult) -> None: ...


def run_sweep(
    backend: Backend,
    config: SweepConfig,
    *,
    sampler: EnergyMeter | None = None,
    store: Store | None = None,
    progress: SweepProgress | None = None,
    cancel: threading.Event | None = None,
) -> SweepResult:
    """Run every level in turn; store each finished level with its runs at once, so Ctrl-C or `cancel`
    (checked before each new request) keeps every finished level. `sampler` is the energy meter (default:
    this machine's sampler)."""
    if store is not None:  # as `run_benchmark`: refused before any server is asked
        store.require_writable("store load sweep runs")
    if sampler is None:
        from envirollm_core.telemetry.sampler import get_sampler

        sampler = get_sampler()
    progress = progress or SweepProgress()
    result = SweepResult(uuid.uuid4().hex[:12], config.model, backend.name, backend.base_url,
                         datetime.now(timezone.utc), config.slo_ttft_s, config.slo_itl_s)
    info = _model_info(backend, config.model)
    environment = {**_environment(backend), "model": _model_details(info)}
    baseline = None
    try:
        if config.idle_s > 0:
            progress.phase(f"measuring idle power for {config.idle_s:g} s")
            baseline = sampler.measure_idle(config.idle_s)
        pid = backend.server_pid()
        for level in config.concurrency:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            progress.phase(f"concurrency {level}: {_budget_text(config, level)}")
            requests: list[_Request] = []
            try:
                level_result = _measure_level(backend, config, level, result.sweep_id, sampler, pid, baseline,
                                              cancel, requests)
            finally:  # an interrupted level still keeps every request it finished, as runs
                runs = [_to_run(backend, config, request, result.sweep_id, info, environment) for request in requests]
                result.runs.extend(runs)
                if store is not None and runs:
                    store.add_runs(runs)
            if cancel is not None and cancel.is_set():  # a level cut short is not a measurement of that level
                result.cancelled = True
                break
            result.levels.append(level_result)
            if store is not None:
                store.add_sweep_level(result, level_result)
            progress.level_done(level_result)
    except KeyboardInterrupt:
        result.cancelled = True
    return result


def _budget_text(config: SweepConfig, level: int) -> str:
    budget = config.requests_for(level)
    return f"{budget} requests" if budget is not None else f"{config.duration_per_level_s:g} s"


def _measure_level(
    backend: Backend, config: SweepConfig, level: int, sweep_id: str, sampler: EnergyMeter,
    pid: int | None, baseline: Any, cancel: threading.Event | None, requests: list[_Request],
) -> LevelResult:
    window = _SteadyWindow(sampler, f"sweep-{sweep_id}-c{level}", pid)
    try:
        asyncio.run(_closed_loop(backend, config, level, window, cancel, requests))
    finally:
        window.close_now()
    return summarize_level(sweep_id, level, requests, window.start_s, window.end_s, window.measurement, baseline,
                           config.slo_ttft_s, config.slo_itl_s)


class _SteadyWindow:
    """The level's energy window, opened and closed off the event loop (a GPU counter read takes ~4 ms,
    which would delay every stamp of that moment); its edges are the middles of those calls."""

    def __init__(self, sampler: EnergyMeter, name: str, pid: int | None) -> None:
        self.sampler, self.name, self.pid = sampler, name, pid
        self.start_s: float | None = None
        self.end_s: float | None = None
        self.measurement: Any = None
        self._opening: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    def open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(asyncio.to_thread(self._open))

    def close(self) -> None:
        if self._opening is not None and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())

    async def wait(self) -> None:
        for task in (self._opening, self._closing):
            if task is not None:
                await task

    def _open(self) -> None:
        before = time.perf_counter()
        _begin_window(self.sampler, self.name, self.pid)
        self.start_s = (before + time.perf_counter()) / 2

    async def _close(self) -> None:
        assert self._opening is not None
        await self._opening
        await asyncio.to_thread(self._end)

    def _end(self) -> None:
        before = time.perf_counter()
        measurement = self.sampler.end_window(self.name)
        self.end_s = (before + time.perf_counter()) / 2
        self.measurement = measurement

    def close_now(self) -> None:
        """After an interruption: a window left open is closed and its measurement dropped."""
        if self.measurement is None:
            self.start_s = self.end_s = None
            with contextlib.suppress(EnviroLLMError):
                self.sampler.end_window(self.name)


async def _closed_loop(
    backend: Backend, config: SweepConfig, level: int, window: _SteadyWindow,
    cancel: threading.Event | None, requests: list[_Request],
) -> None:
    budget = config.requests_for(level)
    deadline_s = None if budget is not None else time.perf_counter() + float(config.duration_per_level_s or 0)
    sent = 0

    def may_send() -> bool:
        if cancel is not None and cancel.is_set():
            return False
        if budget is not None:
            return sent < budget
        return time.perf_counter() < deadline_s  # type: ignore[operator]

    async def stream() -> None:
        nonlocal sent
        while may_send():
            prompt = config.prompts[sent % len(config.prompts)]
            sent += 1
            requests.append(await send_request(backend, _request(config, prompt), level, prompt, config.timeout_s))
            window.open()  # the first completion ends the ramp-up (later calls do nothing)
            if not may_send():
                window.close()  # the first completion after the last send starts the drain

    await asyncio.gather(*(stream() for _ in range(level)))
    await window.wait()


def _request(config: SweepConfig, prompt: Prompt) -> ChatRequest:
    return ChatRequest(model=config.model, prompt=prompt.text, max_tokens=config.max_tokens,
                       temperature=config.temperature)


async def send_request(
    backend: Backend, request: ChatRequest, level: int, prompt: Prompt, read_timeout_s: float
) -> _Request:
    """Send one streaming request and parse it with the backend's own reader once it has ended. A refused,
    dropped or failed request comes back with its error, never raises."""
    http: HttpStreamRequest = backend.http_request(request)  # type: ignore[attr-defined]
    response = await stream_request(http, read_timeout_s, backend.base_url)
    ended_s = time.perf_counter()
    error = response.error
    if error is None and response.status != 200:
        text = response.body.decode("utf-8", "replace")
        error = f"{backend.base_url} answered HTTP {response.status}: {one_line(text)}"
    pieces = _KeptStream(backend, response.sent_s, response.lines, error)
    metrics = measure_stream(pieces, ended_s=ended_s)
    if metrics.error:
        metrics = replace(metrics, error=redact(metrics.error, http.secrets))
    token_times_s = [piece.t_s for piece in pieces.seen if isinstance(piece, Delta)]
    return _Request(level, prompt, metrics, response.sent_s, ended_s, token_times_s)


class _KeptStream:
    """The stream's pieces as the backend's own reader gives them from the kept lines; a transport error
    comes after whatever was read, as the synchronous backends raise it."""

    def __init__(self, backend: Backend, sent_s: float, lines: list[tuple[float, str]], error: str | None) -> None:
        self.backend, self.sent_s, self.lines, self.error = backend, sent_s, lines, error
        self.seen: list[StreamPiece] = []

    def __iter__(self) -> Iterator[StreamPiece]:
        yield RequestSent(self.sent_s)
        if self.error is None:
            for piece in self.backend.read_events(self.lines):  # type: ignore[attr-defined]
                self.seen.append(piece)
                yield piece
            return
        with contextlib.suppress(BackendError):  # what arrived before the failure is kept
            for piece in self.backend.read_events(self.lines):  # type: ignore[attr-defined]
                if isinstance(piece, Delta):
                    self.seen.append(piece)
                    yield piece
        raise BackendError(self.error)


def summarize_level(
    sweep_id: str, level: int, requests: Sequence[_Request], start_s: float | None, end_s: float | None,
    measurement: Any, baseline: Any, slo_ttft_s: float | None, slo_itl_s: float | None,
) -> LevelResult:
    """The level's figures over its steady-state window [start_s, end_s] (perf_counter seconds).

    Tokens count where they arrived inside the window (a chunk carrying several tokens, as the usage
    report tells, counts for its share); requests, latencies and goodput are those that ended inside it."""
    failed = sum(r.metrics.error is not None for r in requests)
    window_s = end_s - start_s if start_s is not None and end_s is not None and end_s > start_s else None
    inside = [r for r in requests if window_s is not None and start_s <= r.ended_s <= end_s]  # type: ignore[operator]
    tokens = sum(_tokens_between(r, start_s, end_s) for r in requests) if window_s else 0.0
    ok = [r for r in inside if r.metrics.error is None]
    ttfts = [r.metrics.ttft_s for r in ok if r.metrics.ttft_s is not None]
    e2es = [r.metrics.e2e_s for r in ok if r.metrics.e2e_s is not None]
    gaps = [b - a for r in ok for a, b in zip(r.token_times_s, r.token_times_s[1:])]
    good = [r for r in ok if _meets_slo(r, slo_ttft_s, slo_itl_s)]
    energy_wh = measurement.energy_wh if measurement is not None else None
    net_wh = measurement.net_energy_wh(baseline) if measurement is not None and baseline is not None else None
    return LevelResult(
        sweep_id=sweep_id, concurrency=level, requests=len(requests), failed=failed, window_s=window_s,
        window_requests=len(inside), window_tokens=tokens,
        output_tps=tokens / window_s if window_s else None,
        requests_per_s=len(ok) / window_s if window_s else None,
        ttft_p50_s=percentile(ttfts, 50), ttft_p95_s=percentile(ttfts, 95), ttft_p99_s=percentile(ttfts, 99),
        itl_p50_s=percentile(gaps, 50), itl_p95_s=percentile(gaps, 95), itl_p99_s=percentile(gaps, 99),
        e2e_p50_s=percentile(e2es, 50), e2e_p95_s=percentile(e2es, 95), e2e_p99_s=percentile(e2es, 99),
        goodput_rps=len(good) / window_s if window_s else None,
        goodput_fraction=len(good) / len(inside) if inside else None,
        energy_wh=energy_wh, energy_net_wh=net_wh,
        energy_per_token_wh=energy_wh / tokens if energy_wh is not None and tokens else None,
        energy_per_request_wh=energy_wh / len(ok) if energy_wh is not None and ok else None,
        components=tuple(measurement.components) if measurement is not None else (),
    )


def _tokens_between(request: _Request, start_s: float | None, end_s: float | None) -> float:
    times = request.token_times_s
    if not times or start_s is None or end_s is None:
        return 0.0
    per_chunk = (request.metrics.completion_tokens or len(times)) / len(times)
    return per_chunk * sum(start_s <= t <= end_s for t in times)


def _meets_slo(request: _Request, slo_ttft_s: float | None, slo_itl_s: float | None) -> bool:
    """A request meets the SLOs when its TTFT and its p95 inter-token latency are within them. An SLO not
    given holds; a TTFT not measured (no token came) misses one; a one-token answer has no gap to miss by."""
    metrics = request.metrics
    if slo_ttft_s is not None and (metrics.ttft_s is None or metrics.ttft_s > slo_ttft_s):
        return False
    if slo_itl_s is not None and (metrics.itl_p95_s is not None and metrics.itl_p95_s > slo_itl_s):
        return False
    return True


def _to_run(
    backend: Backend, config: SweepConfig, request: _Request, sweep_id: str, info: Any, environment: dict[str, Any]
) -> RunResult:
    run = _new_run(backend, config.run_config(), config.model, request.prompt, 0, sweep_id, info, environment)
    run.created_at -= timedelta(seconds=time.perf_counter() - request.sent_s)  # when it was sent, not now
    _fill_stream(run, request.metrics)
    run.sweep_concurrency = request.level
    return run


def level_rows(result: SweepResult) -> list[dict[str, Any]]:
    """The levels as plain rows (JSON output, the store), with the sweep's own fields on each."""
    rows = []
    for level in result.levels:
        row = asdict(level)
        row["components"] = [asdict(c) for c in level.components]
        rows.append({
            **row, "model": result.model, "backend": result.backend, "base_url": result.base_url,
            "created_at": result.created_at, "slo_ttft_s": result.slo_ttft_s, "slo_itl_s": result.slo_itl_s,
        })
    return rows


def parse_levels(text: str) -> tuple[int, ...]:
    """Concurrency levels written as a person types them (`1,2,4,8`), for the CLI and the Benchmark page."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--concurrency takes comma-separated whole numbers (e.g. 1,2,4,8), not {text!r}") from None
    if not values:
        raise UsageError("--concurrency names no level")
    return values
