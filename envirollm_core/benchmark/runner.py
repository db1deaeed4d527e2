"""The benchmark runner: models x prompts x repetitions, each run inside an energy window.

For a batch: an idle baseline first (the machine's idle power, so net energy
can be told from gross), then per model its warm-up runs (kept out of the
results: the first request pays for loading the model), then every timed run
inside an energy window of the telemetry sampler with the server's process
tracked when it is local. Each run is stored as soon as it is measured, failed
ones included, so a batch killed midway (even by SIGKILL) keeps every run it
finished. Judging happens after all timed runs, outside every energy window,
and its scores are then written to the stored runs.
"""

from __future__ import annotations

import dataclasses
import platform
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from envirollm_core import __version__
from envirollm_core.backends.base import Backend, BackendError, ChatRequest, ModelInfo, UnknownModelError, model_listed
from envirollm_core.backends.quantization import resolve_quantization
from envirollm_core.benchmark.metrics import StreamMetrics, measure_stream
from envirollm_core.benchmark.phases import split_at_first_token
from envirollm_core.benchmark.presets import MAX_PROMPT_CHARS, Prompt
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.quality.judge import JudgeConfig, JudgeCost
from envirollm_core.records import RunResult, prompt_hash
from envirollm_core.store import Store
from envirollm_core.telemetry.measurement import EnergyMeter, IdleBaseline, Measurement


@dataclass(frozen=True)
class BenchmarkConfig:
    models: tuple[str, ...]
    prompts: tuple[Prompt, ...]
    repeat: int = 3
    warmup: int = 1
    max_tokens: int = 512
    temperature: float | None = 0.0
    seed: int | None = None
    idle_s: float = 3.0
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.models or any(not m.strip() for m in self.models):
            raise UsageError("name at least one model (an empty model name was given)")
        if not self.prompts:
            raise UsageError("no prompt to benchmark")
        for model in self.models:
            _check_text("the model name", model)
        _check_text("the note", self.notes)
        for prompt in self.prompts:
            _check_text("a prompt", prompt.text)
            if len(prompt.text) > MAX_PROMPT_CHARS:
                raise UsageError(f"a prompt is longer than {MAX_PROMPT_CHARS:,} characters, the most a run can store")
        if self.repeat < 1:
            raise UsageError(f"--repeat must be at least 1, not {self.repeat}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, not {self.warmup}")
        if self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be at least 1, not {self.max_tokens}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise UsageError(f"--temperature must be between 0 and 2, not {self.temperature}")
        if not 0 <= self.idle_s <= 600:
            raise UsageError(f"--idle-s must be between 0 and 600, not {self.idle_s}")

    @property
    def total_runs(self) -> int:
        return len(self.models) * len(self.prompts) * self.repeat


def _check_text(label: str, text: str) -> None:
    """Text from a command line holds a lone surrogate where it had bytes that are not UTF-8 (Python keeps
    them that way): no server, file or database can take it, so it is refused before anything is asked."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{label} {text[:60]!r} is not valid text (it holds bytes that are not UTF-8)") from None


class Progress(Protocol):
    def started(self, total_runs: int) -> None: ...

    def phase(self, text: str) -> None: ...

    def run_done(self, run: RunResult) -> None: ...


@dataclass
class BatchResult:
    batch_id: str
    runs: list[RunResult] = field(default_factory=list)
    judge_cost: JudgeCost | None = None
    cancelled: bool = False  # stopped by `cancel` before every run was made
    recovery_file: Path | None = None  # where runs the database could not take were kept, if any

    @property
    def failed(self) -> int:
        return sum(run.status != "ok" for run in self.runs)


def run_benchmark(
    backend: Backend,
    config: BenchmarkConfig,
    *,
    sampler: EnergyMeter | None = None,
    store: Store | None = None,
    judge: JudgeConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> BatchResult:
    """Run the batch; store each run as it is made (when a store is given), so an interruption loses none.

    `sampler` is the energy meter (default: this machine's sampler). Setting `cancel` (from another thread)
    stops the batch before its next run; the runs made by then are kept and stored, and the judge is skipped."""
    if store is not None:  # the core's own entrance: a script that calls this is refused before any server is asked
        store.require_writable("store benchmark runs")
    if sampler is None:
        from envirollm_core.telemetry.sampler import get_sampler

        sampler = get_sampler()
    batch = BatchResult(batch_id=uuid.uuid4().hex[:12])
    environment = _environment(backend)
    if sampler.description:  # a remote energy meter: where the energy was read
        environment["energy_from"] = sampler.description
    if progress:
        progress.started(config.total_runs)
    baseline = None
    if config.idle_s > 0:
        if progress:
            progress.phase(f"measuring idle power for {config.idle_s:g} s")
        baseline = sampler.measure_idle(config.idle_s)
    for model in config.models:
        _benchmark_model(backend, config, model, sampler, baseline, environment, batch, progress, cancel, store)
        if batch.cancelled:
            break
    if judge is not None and not batch.cancelled:
        batch.judge_cost = _judge(batch.runs, judge, sampler, progress)
        if store is not None and batch.recovery_file is None:  # a database that refused a run takes no grades
            store.set_quality(batch.runs)
    return batch


def _benchmark_model(
    backend: Backend,
    config: BenchmarkConfig,
    model: str,
    sampler: EnergyMeter,
    baseline: IdleBaseline | None,
    environment: dict[str, Any],
    batch: BatchResult,
    progress: Progress | None,
    cancel: threading.Event | None = None,
    store: Store | None = None,
) -> None:
    unknown = _unknown_model(backend, model)
    info = _model_info(backend, model) if unknown is None else ModelInfo(model, *resolve_quantization(model_name=model))
    env = {**environment, "model": _model_details(info)}
    if unknown is None:
        for index in range(config.warmup):
            if _cancelled(cancel, batch):
                return
            if progress:
                progress.phase(f"warm-up {index + 1}/{config.warmup}: {model}")
            measure_stream(backend.stream(_request(config, model, config.prompts[0])))
    pid = backend.server_pid() if unknown is None else None
    pending: list[tuple[RunResult, Measurement]] = []  # windows too short for their energy meter to measure alone
    try:
        for prompt in config.prompts:
            for repeat_index in range(config.repeat):
                if _cancelled(cancel, batch):
                    return
                run = _new_run(backend, config, model, prompt, repeat_index, batch.batch_id, info, env)
                if unknown is not None:
                    run.status, run.error = "failed", str(unknown)
                else:
                    measurement = _measure(backend, config, run, prompt, pid, sampler, baseline)
                    if measurement.pending:
                        pending.append((run, measurement))
                batch.runs.append(run)
                if store is not None:  # now, not at the batch's end: a killed batch keeps every run it finished
                    batch.recovery_file = store.add_run_or_keep(run) or batch.recovery_file
                if progress:
                    progress.run_done(run)
    except BaseException:
        pending.clear()  # interrupted: those stored runs keep "to be measured at batch level" as their reason
        raise
    finally:
        if pending:
            _settle(pending, sampler, baseline, store, progress)


def _settle(
    pending: list[tuple[RunResult, Measurement]], sampler: EnergyMeter, baseline: IdleBaseline | None,
    store: Store | None, progress: Progress | None,
) -> None:
    """Runs too short to measure alone (a remote meter's scrape interval) get their share of the energy of
    their model's runs together, by completion tokens; their stored energy is then rewritten."""
    if progress:
        progress.phase(f"measuring the energy of {len(pending)} short runs together")
    measurements = sampler.settle([m for _, m in pending], [run.completion_tokens for run, _ in pending])
    for (run, _), measurement in zip(pending, measurements):
        _fill_energy(run, measurement, baseline)
    if store is not None:
        store.set_energy([run for run, _ in pending])


def _cancelled(cancel: threading.Event | None, batch: BatchResult) -> bool:
    """Checked between runs only: a run in flight is finished and kept."""
    if cancel is not None and cancel.is_set():
        batch.cancelled = True
    return batch.cancelled


def _unknown_model(backend: Backend, model: str) -> UnknownModelError | None:
    """The error to give every run of a model the server does not have; None when it has it or cannot tell.

    When the listing itself fails (server down), each run is tried and fails with its own reason.
    """
    try:
        available = backend.list_models()
    except BackendError:
        return None
    return None if model_listed(model, available) else UnknownModelError(model, backend.base_url, available)


def _model_info(backend: Backend, model: str) -> ModelInfo:
    try:
        return backend.model_info(model)
    except BackendError:  # metadata is a bonus: the name may still tell the quantization
        label, source = resolve_quantization(model_name=model)
        return ModelInfo(model, quantization=label, quantization_source=source)


def _model_details(info: ModelInfo) -> dict[str, Any]:
    details = {"family": info.family, "parameter_size": info.parameter_size, "context_length": info.context_length}
    return {k: v for k, v in {**details, **info.details}.items() if v is not None}


def _request(config: BenchmarkConfig, model: str, prompt: Prompt) -> ChatRequest:
    return ChatRequest(model=model, prompt=prompt.text, max_tokens=config.max_tokens,
                       temperature=config.temperature, seed=config.seed)


def _new_run(
    backend: Backend, config: BenchmarkConfig, model: str, prompt: Prompt, repeat_index: int,
    batch_id: str, info: ModelInfo, environment: dict[str, Any],
) -> RunResult:
    return RunResult(
        id=uuid.uuid4().hex[:12], batch_id=batch_id, created_at=datetime.now(timezone.utc),
        model=model, backend=backend.name, base_url=backend.base_url,
        prompt=prompt.text, prompt_hash=prompt_hash(prompt.text), preset=prompt.preset,
        repeat_index=repeat_index, status="ok",
        quantization=info.quantization, quantization_source=info.quantization_source,
        temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed,
        engine_threads=backend.engine_threads, environment=environment, notes=config.notes,
    )


def _measure(
    backend: Backend, config: BenchmarkConfig, run: RunResult, prompt: Prompt,
    pid: int | None, sampler: EnergyMeter, baseline: IdleBaseline | None,
) -> Measurement:
    window = f"bench-{run.id}"
    _begin_window(sampler, window, pid)
    opened_s = time.perf_counter()  # the window's start, to within the few ms begin_window takes after its edge
    try:
        metrics = measure_stream(backend.stream(_request(config, run.model, prompt)))
    finally:
        measurement = sampler.end_window(window)
    _fill_stream(run, metrics)
    _fill_energy(run, measurement, baseline)
    first_token_s = metrics.first_token_at_s - opened_s if metrics.first_token_at_s is not None else None
    split = split_at_first_token(measurement.trace, run.energy_wh, measurement.duration_s, first_token_s)
    if split is not None:
        run.prefill_energy_wh, run.decode_energy_wh = split.prefill_energy_wh, split.decode_energy_wh
        run.phase_split_uncertainty_wh = split.uncertainty_wh
    return measurement


def _begin_window(sampler: EnergyMeter, window: str, pid: int | None) -> None:
    if pid is not None:
        try:
            sampler.begin_window(window, pids=(pid,))
            return
        except EnviroLLMError:  # the server process is gone or not ours to watch: measure the machine alone
            pass
    sampler.begin_window(window, pids=())


def _fill_stream(run: RunResult, metrics: StreamMetrics) -> None:
    run.status = "failed" if metrics.error else "ok"
    run.error = metrics.error
    run.response = metrics.response
    for name in ("ttft_s", "e2e_s", "decode_tps", "itl_p50_s", "itl_p95_s", "prompt_tokens", "completion_tokens",
                 "reasoning_tokens", "token_count_source", "server_decode_tps", "server_prompt_tps", "finish_reason"):
        setattr(run, name, getattr(metrics, name))


def _fill_energy(run: RunResult, measurement: Measurement, baseline: IdleBaseline | None) -> None:
    run.energy_wh = measurement.energy_wh
    run.energy_net_wh = measurement.net_energy_wh(baseline) if baseline is not None else None
    run.energy_uncertainty_wh = measurement.energy_uncertainty_wh
    run.energy_per_token_wh = None
    if run.energy_wh is not None and run.completion_tokens:
        run.energy_per_token_wh = run.energy_wh / run.completion_tokens
    run.components = list(measurement.components)
    run.avg_power_w = measurement.avg_power_w
    run.peak_power_w = measurement.peak_power_w
    run.cpu_percent_avg = measurement.cpu_percent_avg
    run.ram_used_mb_peak = measurement.ram_used_mb_peak
    run.server_peak_rss_mb, run.server_gpu_mem_mb = _server_memory(measurement)
    run.trace = list(measurement.trace)


def _server_memory(measurement: Measurement) -> tuple[float | None, float | None]:
    """Peak RSS and GPU memory (MB) of the tracked server process, None when none was tracked."""
    stats = measurement.processes
    if not stats:
        return None, None
    rss = [s.rss_mb_peak for s in stats if s.rss_mb_peak is not None]
    gpu = [s.gpu_mem_mb_peak for s in stats if s.gpu_mem_mb_peak is not None]
    return (sum(rss) if rss else None), (sum(gpu) if gpu else None)


def _judge(runs: list[RunResult], judge: JudgeConfig, sampler: EnergyMeter, progress: Progress | None) -> JudgeCost:
    from envirollm_core.quality import judge_runs

    if progress:
        progress.phase("grading the answers (outside the energy windows)")
    return judge_runs(runs, judge, sampler=sampler)


def _environment(backend: Backend) -> dict[str, Any]:
    """The fingerprint stored with each run: machine, OS, server and its version, this tool's version."""
    from envirollm_core.telemetry.system_info import system_info

    machine = dataclasses.asdict(system_info())
    return {**machine, **backend.server_description(), "python": platform.python_version(), "envirollm": __version__}
