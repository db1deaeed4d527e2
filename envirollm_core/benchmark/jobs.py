"""Benchmark batches that run in the background, owned by the core.

The app starts a batch with a click; the batch must outlive the script rerun
that every later click causes, so it runs in a thread owned here (never one
that calls Streamlit). The page keeps the process-wide `JobRegistry` in
`st.cache_resource` and reads each job's `snapshot()`: progress, the current
model, the runs finished so far, a one-line error. `cancel()` stops the batch
between two runs; the runs done by then are stored. Only one batch runs at a
time: two batches on one machine would measure each other's energy.

The API key of a custom server is used for the requests only: it lives in the
`BackendChoice` (kept out of its repr) and in the backend's client for the
length of the batch, and in no snapshot, log line or stored run.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from envirollm_core.backends.base import Backend
from envirollm_core.backends.factory import BackendChoice, BackendKind, open_backend
from envirollm_core.backends.quantization import resolve_quantization
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from envirollm_core.benchmark.sweep import LevelResult, SweepConfig, run_sweep
from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.quality.judge import JudgeConfig
from envirollm_core.records import RunResult
from envirollm_core.settings import ensure_writable
from envirollm_core.store import Store
from envirollm_core.telemetry.measurement import EnergyMeter

JobState = Literal["starting", "running", "finished", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"finished", "failed", "cancelled"})

_log = logging.getLogger(__name__)
_job_numbers = itertools.count(1)


@dataclass(frozen=True)
class ModelChoice:
    """A model a server offers, with what it says about its size and quantization."""

    name: str
    size_gb: float | None = None
    quantization: str | None = None
    parameter_size: str | None = None
    note: str = ""

    @property
    def label(self) -> str:
        details = [part for part in (
            f"{self.size_gb:.1f} GB" if self.size_gb is not None else None, self.parameter_size, self.quantization,
            self.note,
        ) if part]
        return f"{self.name} ({', '.join(details)})" if details else self.name


def list_models(choice: BackendChoice) -> list[ModelChoice]:
    """The models the chosen server offers; a server that is down is a one-line `BackendError`.

    Refused in read-only mode (`ReadOnlyError`) for every server but the embedded engine (read from disk):
    on a page shared on a LAN, a visitor's URL would make this machine send requests wherever it points,
    into the owner's network, and no benchmark can be started there anyway."""
    if choice.kind == "embedded":
        from envirollm_core.backends.embedded import EMBEDDED_MODELS, model_path

        return [  # the default chat model first
            ModelChoice(m.model_id, model_path(m.model_id).stat().st_size / 1e9,
                        resolve_quantization(model_name=m.model_id)[0], m.parameters,
                        "" if m.kind == "chat" else "base model: continues text, follows no instructions")
            for m in EMBEDDED_MODELS.values()
        ]
    ensure_writable("asking a server for its models")
    from envirollm_core.backends.ollama import OllamaBackend

    with closing(open_backend(choice)) as backend:
        if isinstance(backend, OllamaBackend):  # its tags say each model's size and quantization
            return [_ollama_model(tag) for tag in backend.tags()]
        names = backend.list_models()
    return [ModelChoice(name, quantization=resolve_quantization(model_name=name)[0]) for name in names]


def _ollama_model(tag: dict[str, Any]) -> ModelChoice:
    details = tag.get("details") if isinstance(tag.get("details"), dict) else {}
    size = tag.get("size")
    name = str(tag.get("name") or tag.get("model"))
    return ModelChoice(
        name=name,
        size_gb=size / 1e9 if isinstance(size, (int, float)) and size > 0 else None,
        quantization=resolve_quantization(details.get("quantization_level"), None, name)[0],
        parameter_size=details.get("parameter_size") or None,
    )


@dataclass(frozen=True)
class JobSnapshot:
    """A job at one moment, safe to read from any thread."""

    job_id: str
    title: str
    state: JobState
    total_runs: int
    done_runs: int
    current_model: str | None
    phase: str
    runs: tuple[RunResult, ...]
    error: str | None
    batch_id: str | None
    started_at: datetime
    finished_at: datetime | None
    unit: str = "runs"  # what total_runs and done_runs count: a load sweep counts its levels
    levels: tuple[LevelResult, ...] = ()  # a load sweep's finished levels

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def fraction_done(self) -> float:
        return self.done_runs / self.total_runs if self.total_runs else 0.0

    @property
    def failed_runs(self) -> int:
        return sum(run.status != "ok" for run in self.runs)


class BenchmarkJob:
    """One batch in a thread of its own; it is also the runner's `Progress` (called from that thread)."""

    def __init__(
        self,
        choice: BackendChoice,
        config: BenchmarkConfig,
        *,
        store_path: Path | None = None,
        judge: JudgeConfig | None = None,
        sampler: EnergyMeter | None = None,
    ) -> None:
        # The page's action is refused here, once, before any server is asked; the store refuses each write.
        self.store = Store.for_writing(store_path, "running a benchmark")
        self.job_id = f"job-{next(_job_numbers)}"
        self.config = config
        self._choice: BackendChoice | None = choice
        self._title = f"{choice.title}: {', '.join(config.models)}"
        self._judge = judge
        self._sampler = sampler
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._state: JobState = "starting"
        self._phase = "starting"
        self._total = config.total_runs
        self._runs: list[RunResult] = []
        self._error: str | None = None
        self._batch_id: str | None = None
        self._recovery_file: Path | None = None  # where runs the database could not take were kept
        self._started_at = datetime.now(UTC)
        self._finished_at: datetime | None = None
        self._thread = threading.Thread(target=self._main, name=f"envirollm-{self.job_id}", daemon=True)

    def start(self) -> BenchmarkJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the batch to stop before its next run; the run in flight finishes and is kept."""
        self._cancel.set()
        with self._lock:
            if self._state not in FINAL_STATES:
                self._phase = "cancelling after the run in flight"

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the job has ended; True if it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                job_id=self.job_id, title=self._title, state=self._state, total_runs=self._total,
                current_model=self._current_model(), phase=self._phase,
                runs=tuple(self._runs), error=self._error, batch_id=self._batch_id,
                started_at=self._started_at, finished_at=self._finished_at, **self._progress_fields(),
            )

    def _progress_fields(self) -> dict[str, Any]:
        return {"done_runs": len(self._runs)}

    def _current_model(self) -> str | None:
        # The runner goes model by model, every prompt and repetition of one before the next.
        if self._state in FINAL_STATES:
            return None
        per_model = max(self._total // max(len(self.config.models), 1), 1)
        index = min(len(self._runs) // per_model, len(self.config.models) - 1)
        return self.config.models[index]

    # -- the runner's Progress protocol -----------------------------------------------------

    def started(self, total_runs: int) -> None:
        with self._lock:
            self._total = total_runs
            self._state = "running"

    def phase(self, text: str) -> None:
        with self._lock:
            if not self._cancel.is_set():
                self._phase = text

    def run_done(self, run: RunResult) -> None:
        with self._lock:
            self._runs.append(run)
            self._batch_id = run.batch_id
            if not self._cancel.is_set():
                self._phase = f"finished run {len(self._runs)} of {self._total} ({run.model})"

    # -- the thread -------------------------------------------------------------------------

    def _main(self) -> None:
        state: JobState = "finished"
        error: str | None = None
        try:
            assert self._choice is not None
            engine = None
            if self._choice.kind == "embedded":  # the app's engine keeps running for the next batch
                from envirollm_core.backends.embedded import start_shared_engine

                self.phase("starting the embedded engine")
                engine = start_shared_engine("running a benchmark", model_id=self.config.models[0])
            backend = open_backend(self._choice, engine)
            self._choice = None  # the key now lives only in the backend's client, for this batch
            with closing(backend):
                cancelled = self._run(backend)
            state = "cancelled" if cancelled else "finished"
            if self._recovery_file is not None:
                state, error = "failed", (f"the database could not store every run; they are kept in"
                                          f" {self._recovery_file}: add them with `envirollm import` once it is repaired")
        except EnviroLLMError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001  (a bug, not a user's mistake: keep the page alive, say what happened)
            _log.exception("benchmark job %s failed", self.job_id)
            state, error = "failed", " ".join(f"unexpected {type(exc).__name__}: {exc}".split())
        with self._lock:
            self._state, self._error = state, error
            self._phase = {"finished": "done", "cancelled": "cancelled", "failed": "failed"}[state]
            self._finished_at = datetime.now(UTC)
            self._choice = None


    def _run(self, backend: Backend) -> bool:
        """Run the job on the open backend; True when it was cancelled."""
        batch = run_benchmark(
            backend, self.config, sampler=self._sampler, store=self.store, judge=self._judge,
            progress=self, cancel=self._cancel,
        )
        with self._lock:
            self._batch_id = batch.batch_id
        self._recovery_file = batch.recovery_file
        return batch.cancelled


class SweepJob(BenchmarkJob):
    """A load sweep in the background: the same thread, store, cancel and snapshot, counted in levels."""

    def __init__(
        self, choice: BackendChoice, config: SweepConfig, *, store_path: Path | None = None,
        sampler: EnergyMeter | None = None,
    ) -> None:
        super().__init__(choice, config, store_path=store_path, sampler=sampler)
        self._title = f"Load sweep · {choice.title}: {config.model}"
        self._total = len(config.concurrency)
        self._levels: list[LevelResult] = []

    def _progress_fields(self) -> dict[str, Any]:
        return {"done_runs": len(self._levels), "unit": "levels", "levels": tuple(self._levels)}

    def _current_model(self) -> str | None:
        return None if self._state in FINAL_STATES else self.config.model

    def level_done(self, level: LevelResult) -> None:
        with self._lock:
            self._levels.append(level)
            self._batch_id = level.sweep_id

    def _run(self, backend: Backend) -> bool:
        with self._lock:
            self._state = "running"
        result = run_sweep(backend, self.config, sampler=self._sampler, store=self.store, progress=self,
                           cancel=self._cancel)
        with self._lock:
            self._batch_id, self._runs = result.sweep_id, list(result.runs)
        return result.cancelled


class JobRegistry:
    """The process's benchmark jobs, newest last; at most one runs at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, BenchmarkJob] = {}

    def start(
        self,
        choice: BackendChoice,
        config: BenchmarkConfig | SweepConfig,
        *,
        store_path: Path | None = None,
        judge: JudgeConfig | None = None,
        sampler: EnergyMeter | None = None,
    ) -> BenchmarkJob:
        """Start a batch (a `BenchmarkConfig`) or a load sweep (a `SweepConfig`) in the background; refused
        in read-only mode (by the job, before any server is asked) or while another job runs."""
        with self._lock:
            running = [job for job in self._jobs.values() if not job.snapshot().is_final]
            if running:
                raise UsageError(
                    f"a benchmark is already running ({running[0].snapshot().title}); wait for it or cancel it"
                )
            if isinstance(config, BenchmarkConfig):
                job = BenchmarkJob(choice, config, store_path=store_path, judge=judge, sampler=sampler)
            else:  # a load sweep (`bench.sweep.SweepConfig`)
                job = SweepJob(choice, config, store_path=store_path, sampler=sampler)
            self._jobs[job.job_id] = job
            return job.start()

    def get(self, job_id: str) -> BenchmarkJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self) -> BenchmarkJob | None:
        with self._lock:
            return next(reversed(self._jobs.values()), None)

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()


ANSWER_TIMEOUT_S = 2.0  # a page waits this long at most for a local server it only asks whether it is there


def first_answering_backend(candidates: Sequence[BackendChoice]) -> BackendKind:
    """The kind of the first candidate server that answers with at least one model; the embedded engine,
    which needs no server, when none does (or when this instance is read-only and asks no server)."""
    for choice in candidates:
        if not _port_open(choice.url):
            continue  # the usual case (no such server here), told in a millisecond without building a client
        try:
            if list_models(replace(choice, read_timeout_s=min(choice.read_timeout_s, ANSWER_TIMEOUT_S))):
                return choice.kind
        except EnviroLLMError:
            continue
    return "embedded"


def _port_open(url: str | None) -> bool:
    """Whether something accepts connections at the URL's host and port (True when the URL names none)."""
    parsed = urlsplit(url or "")
    if not parsed.hostname:
        return True
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        with socket.create_connection((parsed.hostname, port), timeout=ANSWER_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False
