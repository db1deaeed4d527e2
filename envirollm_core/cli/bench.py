"""`envirollm benchmark` (Ollama), `benchmark-openai` (any OpenAI-compatible server), `demo` (the embedded engine).

Progress goes to stderr; at the end a table goes to stdout, or with `--json`
a list of run objects and nothing else. Exit code 1 when any run failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from contextlib import closing
from pathlib import Path
from typing import Any, TextIO

from envirollm_core.backends.base import (
    CUT_AT_MAX_TOKENS, CUT_AT_RUN_TIMEOUT, DEFAULT_READ_TIMEOUT_S, DEFAULT_RUN_TIMEOUT_S, Backend,
)
from envirollm_core.backends.factory import BackendChoice, BackendKind, open_backend
from envirollm_core.backends.server_metadata import LMSTUDIO_URL
from envirollm_core.benchmark.presets import Prompt, load_presets, select_prompts
from envirollm_core.benchmark.runner import BatchResult, BenchmarkConfig, run_benchmark
from envirollm_core.benchmark.suites import suite_names
from envirollm_core.cli.common import (
    add_db_option, add_engine_options, add_json_option, db_path, emit_json, engine_models, finite_float,
    format_table, info, printable, writable_store,
)
from envirollm_core.cli.quality import add_judge_options, judge_config
from envirollm_core.errors import UsageError
from envirollm_core.figures import format_figure, milli
from envirollm_core.quality.judge import JudgeConfig
from envirollm_core.records import RunResult
from envirollm_core.store import Store

DEFAULT_MAX_TOKENS = 512
DEMO_MAX_TOKENS = 128


def register(subcommands: argparse._SubParsersAction) -> None:
    ollama = subcommands.add_parser(
        "benchmark", help="benchmark Ollama models on identical prompts",
        description="Benchmark models served by Ollama ($OLLAMA_HOST, else http://localhost:11434) on identical "
                    "prompts: timing, tokens, energy by component, and quality. Every run is stored.",
    )
    ollama.add_argument("--models", required=True, help="comma-separated Ollama model names, e.g. llama3:8b,phi3:mini")
    ollama.add_argument("--url", default=None, help="Ollama's URL (default: $OLLAMA_HOST, else http://localhost:11434)")
    _add_run_options(ollama, DEFAULT_MAX_TOKENS)
    add_energy_options(ollama)
    ollama.set_defaults(handler=run_ollama)

    openai_cmd = subcommands.add_parser(
        "benchmark-openai", help="benchmark models on any OpenAI-compatible server (LM Studio, vLLM, llama.cpp...)",
        description="Benchmark models on an OpenAI-compatible server (LM Studio, vLLM, llama.cpp, "
                    "text-generation-webui...). The API key is used for the requests only, never stored.",
    )
    openai_cmd.add_argument("--url", default=LMSTUDIO_URL, help=f"the server's base URL (default: LM Studio's, {LMSTUDIO_URL})")
    openai_cmd.add_argument("--model", "--models", dest="models", required=True, help="model name(s), comma-separated")
    openai_cmd.add_argument("--api-key", default=None, help="API key, if the server wants one (never stored)")
    _add_run_options(openai_cmd, DEFAULT_MAX_TOKENS)
    add_energy_options(openai_cmd)
    openai_cmd.set_defaults(handler=run_openai)

    demo = subcommands.add_parser(
        "demo", help="benchmark the embedded engine's two models (SmolLM2-135M-Instruct, Gemma 3 270M base)",
        description="Start the embedded llama.cpp engine with each model in turn (SmolLM2-135M-Instruct Q4_1, a chat "
                    "model; Gemma 3 270M Q4_K_M, a base model that continues text rather than following "
                    "instructions), benchmark both on identical prompts, store the runs, and stop it. "
                    "Needs no LLM server installed.",
    )
    add_engine_options(demo, several=True)
    _add_run_options(demo, DEMO_MAX_TOKENS)
    demo.set_defaults(handler=run_demo)


def add_prompt_options(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """`--prompt | --preset | --prompt-file`, as every command that sends prompts takes them; `prompts_of`
    reads them."""
    prompts = parser.add_argument_group("prompts (default: the explanation preset)").add_mutually_exclusive_group()
    prompts.add_argument("--prompt", default=None, help="a custom prompt")
    prompts.add_argument(
        "--suite", default=None, help=f"a built-in suite of tasks with automatic checks: {', '.join(suite_names())}"
    )
    prompts.add_argument(
        "--preset", default=None,
        help=f"task preset(s), comma-separated, or 'all': {', '.join(load_presets())}",
    )
    prompts.add_argument(
        "--prompt-file", default=None, type=Path, help="a text file; several prompts separated by a line holding only ---"
    )
    return prompts


def prompts_of(args: argparse.Namespace) -> list[Prompt]:
    """The prompts the options of `add_prompt_options` ask for."""
    presets = [p for p in args.preset.split(",") if p.strip()] if args.preset is not None else None
    if presets == []:
        raise UsageError("--preset names no preset")
    return select_prompts(args.prompt, presets, args.prompt_file, suite=args.suite)


def _add_run_options(parser: argparse.ArgumentParser, max_tokens: int) -> None:
    add_prompt_options(parser)
    runs = parser.add_argument_group("runs")
    runs.add_argument("--repeat", type=int, default=3, help="timed runs per model and prompt (default: 3)")
    runs.add_argument("--warmup", type=int, default=1, help="untimed, unstored warm-up runs per model (default: 1)")
    runs.add_argument("--max-tokens", type=int, default=max_tokens, help=f"most tokens to generate (default: {max_tokens})")
    runs.add_argument("--temperature", type=finite_float, default=0.0, help="sampling temperature (default: 0)")
    runs.add_argument("--seed", type=int, default=None, help="sampling seed, if the server honours one")
    runs.add_argument(
        "--timeout", type=finite_float, default=DEFAULT_READ_TIMEOUT_S,
        help=f"seconds to wait for the server's next byte before the run fails (default: {DEFAULT_READ_TIMEOUT_S:g})",
    )
    runs.add_argument(
        "--run-timeout", type=finite_float, default=DEFAULT_RUN_TIMEOUT_S, metavar="SECONDS",
        help="longest a run may stream before the client stops it and stores what arrived, finish reason "
             f"{CUT_AT_RUN_TIMEOUT!r} (default: {DEFAULT_RUN_TIMEOUT_S:g}); past --max-tokens the client stops "
             f"reading too ({CUT_AT_MAX_TOKENS!r})",
    )
    runs.add_argument(
        "--idle-s", type=finite_float, default=3.0, help="seconds of idle-power baseline before the batch (default: 3; 0 skips it)"
    )
    runs.add_argument("--notes", default="", help="a note stored with every run")
    add_judge_options(parser)
    add_db_option(parser)
    add_json_option(parser)


def add_energy_options(parser: argparse.ArgumentParser) -> None:
    energy = parser.add_argument_group("energy of a server on another machine (default: the one saved in Settings, else this machine)")
    energy.add_argument(
        "--energy-from", default=None, metavar="local|prometheus://HOST:PORT",
        help="read the serving machine's energy counters (DCGM exporter, node_exporter RAPL, Kepler) from this "
             "Prometheus instead of measuring this machine; user:password@ in the URL is used, never stored",
    )
    energy.add_argument(
        "--energy-selector", default=None, metavar="MATCHERS",
        help='Prometheus label matchers of the serving machine\'s series, e.g. instance="gpu-box:9400"',
    )


def energy_from_args(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """--energy-from and --energy-selector, else the defaults saved in Settings (`demo` is always local)."""
    from envirollm_core.settings import load_settings
    from envirollm_core.telemetry.meters import check_energy_from

    if not hasattr(args, "energy_from"):
        return None, None
    energy_from, selector = args.energy_from, args.energy_selector
    if energy_from is None:
        saved = load_settings()
        energy_from, selector = saved.energy_from, selector if selector is not None else saved.energy_selector
    check_energy_from(energy_from, selector)
    return energy_from, selector


def _models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    if not models:
        raise UsageError(f"no model named in {text!r}: give comma-separated model names")
    return models


def _config(args: argparse.Namespace, models: tuple[str, ...]) -> BenchmarkConfig:
    if not args.timeout > 0:
        raise UsageError(f"--timeout must be positive, not {args.timeout:g}")
    if not args.run_timeout > 0:
        raise UsageError(f"--run-timeout must be positive, not {args.run_timeout:g}")
    prompts = prompts_of(args)
    return BenchmarkConfig(
        models=models, prompts=tuple(prompts), repeat=args.repeat, warmup=args.warmup, max_tokens=args.max_tokens,
        temperature=args.temperature, seed=args.seed, idle_s=args.idle_s, notes=args.notes,
    )


def _open_store(args: argparse.Namespace) -> Store:
    store = writable_store(args, "store benchmark runs")  # say so now, not after the whole batch has run
    store.require_healthy()
    return store


def backend_choice(args: argparse.Namespace, kind: BackendKind, default_url: str | None = None) -> BackendChoice:
    """The server a command's `--url`, `--api-key`, `--timeout` and `--run-timeout` name (those it has)."""
    return BackendChoice(
        kind, url=getattr(args, "url", None) or default_url, api_key=getattr(args, "api_key", None),
        read_timeout_s=args.timeout, run_timeout_s=getattr(args, "run_timeout", DEFAULT_RUN_TIMEOUT_S),
    )


def run_ollama(args: argparse.Namespace) -> int:
    return _run_on_server(args, "ollama")


def run_openai(args: argparse.Namespace) -> int:
    return _run_on_server(args, "openai")


def _run_on_server(args: argparse.Namespace, kind: BackendKind) -> int:
    choice = backend_choice(args, kind)
    prepared = _prepare(args, _models(args.models))
    with closing(open_backend(choice)) as backend:
        return _report([_benchmark(backend, prepared)], args)


def run_demo(args: argparse.Namespace) -> int:
    """Each model in its own engine, one after the other: two engines at once would share the cores."""
    from envirollm_core.backends.embedded import EmbeddedEngine

    models = engine_models(args.model, several=True)
    engines = [EmbeddedEngine(model_id=model_id, threads=args.threads) for model_id in models]
    choice = backend_choice(args, "embedded")
    prepared = _prepare(args, models)
    batches = []
    for engine in engines:
        info(f"starting the embedded engine ({engine.model.label}, {engine.threads} thread(s)) ...")
        with engine, closing(open_backend(choice, engine)) as backend:
            info(f"engine ready at {engine.base_url} (pid {engine.pid})")
            config = dataclasses.replace(prepared.config, models=(engine.model_id,))
            batches.append(_benchmark(backend, dataclasses.replace(prepared, config=config)))
    return _report(batches, args)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    config: BenchmarkConfig
    judge: JudgeConfig
    store: Store
    energy_from: tuple[str | None, str | None] = (None, None)


def _prepare(args: argparse.Namespace, models: tuple[str, ...]) -> _Prepared:
    """Everything that can reject the command's input, checked before any server is contacted."""
    return _Prepared(_config(args, models), judge_config(args), _open_store(args), energy_from_args(args))


def _benchmark(backend: Backend, prepared: _Prepared) -> BatchResult:
    config = prepared.config
    info(f"benchmarking {', '.join(config.models)} on {backend.name} at {backend.base_url}: "
         f"{len(config.prompts)} prompt(s) x {config.repeat} run(s), {config.warmup} warm-up(s) per model")
    from envirollm_core.telemetry.meters import energy_meter

    with energy_meter(*prepared.energy_from) as meter:
        if meter.description:
            info(f"energy from {meter.description} (the serving machine's counters; this machine's are not added)")
        return run_benchmark(backend, config, sampler=meter, store=prepared.store, judge=prepared.judge,
                              progress=ProgressBar(sys.stderr))


def _report(batches: list[BatchResult], args: argparse.Namespace) -> int:
    runs = [run for batch in batches for run in batch.runs]
    if args.json:
        emit_json([run_to_json(run) for run in runs])
    else:
        print_table(runs, sys.stdout)
    for batch in batches:
        cost = batch.judge_cost
        if cost is not None and cost.calls:
            energy = f", {format_figure(milli(cost.energy_wh), 'mWh')} mWh" if cost.energy_wh is not None else ""
            info(f"grading cost ({cost.method}): {cost.calls} call(s), {format_figure(cost.duration_s, 's')} s{energy}, "
                 "outside the runs' energy")
        if batch.recovery_file is not None:
            info(f"the database {db_path(args)} could not store every run of batch {batch.batch_id}: those runs are"
                 f" kept in {batch.recovery_file}; once the database is repaired (envirollm doctor), add them with"
                 f" `envirollm import {batch.recovery_file}`")
            continue
        info(f"stored {len(batch.runs)} run(s) of batch {batch.batch_id} in {db_path(args)}"
             + (f"; {batch.failed} failed" if batch.failed else ""))
    return 1 if any(batch.failed or batch.recovery_file is not None for batch in batches) else 0


def run_to_json(run: RunResult) -> dict[str, Any]:
    """A run as JSON-ready data: every field but the sample trace (kept in the database)."""
    data = dataclasses.asdict(run)
    data.pop("trace")
    data["created_at"] = run.created_at.isoformat()
    return data


class ProgressBar:
    """A one-line bar redrawn on a terminal; one line per run when stderr is a file or pipe."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.total = 0
        self.done = 0

    def started(self, total_runs: int) -> None:
        self.total = total_runs

    def phase(self, text: str) -> None:
        self._write(text)

    def run_done(self, run: RunResult) -> None:
        self.done += 1
        what = f"{run.model} {run.preset or run.prompt_hash} #{run.repeat_index + 1}"
        outcome = f"ok {format_figure(run.decode_tps, 'tokens/s')} tok/s" if run.status == "ok" else f"FAILED: {run.error}"
        self._write(f"{what}: {outcome}")

    def _write(self, text: str) -> None:
        filled = self.WIDTH * self.done // self.total if self.total else 0
        bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total}"
        if self.tty:
            self.stream.write(f"\r\033[K{bar} {printable(text)}"[:200])
            if self.done == self.total and self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"{bar} {printable(text)}\n")
        self.stream.flush()


_COLUMNS = ("model", "task", "#", "status", "TTFT s", "tok/s", "tokens", "energy mWh", "net mWh", "mWh/tok", "energy source",
            "quality")


def print_table(runs: list[RunResult], stream: TextIO) -> None:
    from envirollm_core.analysis.pass_rates import pass_rate_lines  # the analysis package is slow to import: not for --help

    stream.write(format_table(_COLUMNS, [_row(run) for run in runs]) + "\n")
    if any(run.completion_tokens and run.token_count_source != "usage" for run in runs):
        stream.write("* tokens counted from the server's own fields or one per streamed chunk (no usage report)\n")
    methods = sorted({run.quality_method for run in runs if run.quality_method})
    if methods:
        stream.write(f"quality (0-100) by: {', '.join(methods)}"
                     + (" (different methods: do not compare their scores)" if len(methods) > 1 else "") + "\n")
    for summary in pass_rate_lines(runs):
        stream.write(summary + "\n")
    for run in runs:
        if run.status != "ok":
            stream.write(printable(f"run {run.id} failed: {run.error}") + "\n")
    stream.flush()


def _row(run: RunResult) -> tuple[str, ...]:
    sources = sorted({f"{c.component}:{c.source}" for c in run.components})
    return (
        run.model, run.preset or f"prompt {run.prompt_hash[:8]}", str(run.repeat_index + 1), run.status,
        format_figure(run.ttft_s, "s"), format_figure(run.decode_tps, "tokens/s"),
        f"{run.completion_tokens}{'' if run.token_count_source == 'usage' else '*'}" if run.completion_tokens else "-",
        format_figure(milli(run.energy_wh), "mWh") + (
            f"±{format_figure(milli(run.energy_uncertainty_wh), 'mWh')}" if run.energy_uncertainty_wh is not None else ""),
        format_figure(milli(run.energy_net_wh), "mWh"),
        format_figure(milli(run.energy_per_token_wh), "mWh"),
        " ".join(sources) or "-", format_figure(run.quality_score, "score"),
    )
