"""`envirollm sweep`: throughput, latency and energy per token of one model at rising concurrency.

Progress goes to stderr; at the end a table of the levels goes to stdout, or
with `--json` one object (the sweep, its levels, the knee) and nothing else.
Exit code 1 when any request failed, 130 when interrupted (the finished
levels are kept and shown).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from typing import Any, TextIO

from envirollm_core.backends.base import DEFAULT_READ_TIMEOUT_S, Backend
from envirollm_core.backends.factory import open_backend
from envirollm_core.backends.server_metadata import LMSTUDIO_URL
from envirollm_core.benchmark.sweep import (
    DEFAULT_LEVELS, LevelResult, SweepConfig, SweepProgress, SweepResult, level_rows, parse_levels, run_sweep,
)
from envirollm_core.cli.bench import add_energy_options, add_prompt_options, backend_choice, energy_from_args, prompts_of
from envirollm_core.cli.common import (
    add_db_option, add_json_option, db_path, emit_json, finite_float, format_table, info, writable_store,
)
from envirollm_core.figures import format_figure
from envirollm_core.metrics import METRIC
from envirollm_core.units import wh_to_mwh
from envirollm_core.errors import UsageError
from envirollm_core.store import Store

DEFAULT_SWEEP_MAX_TOKENS = 128
INTERRUPTED = 130


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "sweep", help="load sweep: throughput, latency and energy per token at rising concurrency",
        description="Send a closed loop of N concurrent streams to one model at each concurrency level and "
                    "measure, over each level's steady-state window, output tokens/s, requests/s, TTFT, "
                    "inter-token and end-to-end latency (p50/p95/p99), goodput against the SLOs, and energy "
                    "per token and per request. Every request is stored as a run of the sweep.",
    )
    parser.add_argument("--url", default=None,
                        help=f"the server's base URL (default: LM Studio's {LMSTUDIO_URL} for openai, "
                             "$OLLAMA_HOST or http://localhost:11434 for ollama; none for embedded)")
    parser.add_argument("--model", default=None, help="the model to load (default for embedded: its model)")
    parser.add_argument("--backend", choices=("openai", "ollama", "embedded"), default="openai",
                        help="how to talk to the server (default: openai, any OpenAI-compatible server)")
    parser.add_argument("--api-key", default=None, help="API key, if the server wants one (never stored)")
    parser.add_argument("--concurrency", default=",".join(map(str, DEFAULT_LEVELS)),
                        help="comma-separated concurrency levels, rising (default: 1,2,4,8,16)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--requests-per-level", type=int, default=None,
                        help="requests per level (default: 4 x the level, at least 8)")
    budget.add_argument("--duration-per-level", type=finite_float, default=None, metavar="S",
                        help="seconds per level instead of a request count")
    add_prompt_options(parser)
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_SWEEP_MAX_TOKENS,
                        help=f"most tokens per request (default: {DEFAULT_SWEEP_MAX_TOKENS})")
    parser.add_argument("--slo-ttft", type=finite_float, default=None, metavar="S",
                        help="a request meets the SLO with its TTFT at most this many seconds")
    parser.add_argument("--slo-itl", type=finite_float, default=None, metavar="S",
                        help="... and its p95 inter-token latency at most this many seconds")
    parser.add_argument("--timeout", type=finite_float, default=DEFAULT_READ_TIMEOUT_S,
                        help=f"seconds to wait for the server's next byte (default: {DEFAULT_READ_TIMEOUT_S:g})")
    parser.add_argument("--idle-s", type=finite_float, default=3.0,
                        help="seconds of idle-power baseline before the sweep (default: 3; 0 skips it)")
    parser.add_argument("--notes", default="", help="a note stored with every run")
    add_energy_options(parser)
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(handler=run_sweep_command)


def sweep_config(args: argparse.Namespace, model: str) -> SweepConfig:
    """The sweep the arguments ask for; prompts are chosen as the benchmark commands choose them."""
    prompts = prompts_of(args)
    return SweepConfig(
        model=model, prompts=tuple(prompts), concurrency=parse_levels(args.concurrency),
        requests_per_level=args.requests_per_level, duration_per_level_s=args.duration_per_level,
        max_tokens=args.max_tokens, slo_ttft_s=args.slo_ttft, slo_itl_s=args.slo_itl, idle_s=args.idle_s,
        timeout_s=args.timeout, notes=args.notes,
    )


def run_sweep_command(args: argparse.Namespace) -> int:
    args.energy = energy_from_args(args)  # checked before any server or engine is started
    if args.backend == "embedded":
        from envirollm_core.backends.embedded import EmbeddedEngine

        engine = EmbeddedEngine()
        choice = backend_choice(args, "embedded")
        config = sweep_config(args, args.model or engine.model_id)
        store = writable_store(args, "store load sweep runs")
        info(f"starting the embedded engine ({engine.model_id}) ...")
        with engine, closing(open_backend(choice, engine)) as backend:
            return _run(backend, config, store, args)
    if not args.model:
        raise UsageError("--model is required (the model to sweep)")
    choice = backend_choice(args, args.backend, default_url=LMSTUDIO_URL if args.backend == "openai" else None)
    config = sweep_config(args, args.model)
    store = writable_store(args, "store load sweep runs")
    with closing(open_backend(choice)) as backend:
        return _run(backend, config, store, args)


class _Progress(SweepProgress):
    def phase(self, text: str) -> None:
        info(text)

    def level_done(self, level: LevelResult) -> None:
        failed = f", {level.failed} failed" if level.failed else ""
        info(f"concurrency {level.concurrency}: {METRIC['output_tps'].format(level.output_tps)} tok/s, "
             f"p95 latency {format_figure(level.e2e_p95_s, 's')} s{failed}")


def _run(backend: Backend, config: SweepConfig, store: Store, args: argparse.Namespace) -> int:
    info(f"sweeping {config.model} on {backend.name} at {backend.base_url}: concurrency "
         f"{','.join(map(str, config.concurrency))}")
    from envirollm_core.telemetry.meters import energy_meter

    with energy_meter(*args.energy) as meter:
        if meter.description:
            info(f"energy from {meter.description} (the serving machine's counters; this machine's are not added)")
        result = run_sweep(backend, config, sampler=meter, store=store, progress=_Progress())
    if args.json:
        emit_json(sweep_to_json(result))
    else:
        print_levels(result, sys.stdout)
    info(f"stored {len(result.runs)} request(s) of sweep {result.sweep_id} in {db_path(args)}"
         + (f"; {result.failed} failed" if result.failed else ""))
    if result.cancelled:
        info(f"interrupted: kept the {len(result.levels)} finished level(s)")
        return INTERRUPTED
    return 1 if result.failed else 0


def sweep_to_json(result: SweepResult) -> dict[str, Any]:
    rows = level_rows(result)
    for row in rows:
        for key in ("model", "backend", "base_url", "created_at", "slo_ttft_s", "slo_itl_s", "sweep_id"):
            row.pop(key)
    return {
        "sweep_id": result.sweep_id, "model": result.model, "backend": result.backend, "base_url": result.base_url,
        "created_at": result.created_at.isoformat(), "slo_ttft_s": result.slo_ttft_s, "slo_itl_s": result.slo_itl_s,
        "knee": result.knee, "cancelled": result.cancelled, "requests": len(result.runs), "failed": result.failed,
        "levels": rows,
    }


_COLUMNS = ("conc", "reqs", "failed", METRIC["output_tps"].short, METRIC["requests_per_s"].short, "TTFT p50", "TTFT p95",
            "ITL p50", "ITL p95", "e2e p50", "e2e p95", "e2e p99", METRIC["goodput_fraction"].short, "energy mWh",
            METRIC["energy_per_token_wh"].short, METRIC["energy_per_request_wh"].short, "energy source")


def print_levels(result: SweepResult, stream: TextIO) -> None:
    knee = result.knee
    rows = [_row(level, knee) for level in result.levels]
    stream.write(format_table(_COLUMNS, rows) + "\n")
    stream.write("latencies in seconds; goodput = share of the window's requests meeting the SLOs; "
                 "energy over each level's steady-state window\n")
    stream.write(f"knee: concurrency {knee} (past it, throughput grows < 10 % while p95 latency grows)\n"
                 if knee is not None else "knee: none found in these levels\n")
    stream.flush()


def _row(level: LevelResult, knee: int | None) -> tuple[str, ...]:
    sources = sorted({f"{c.component}:{c.source}" for c in level.components})
    return (
        f"{level.concurrency}{' *knee' if level.concurrency == knee else ''}", str(level.requests), str(level.failed),
        METRIC["output_tps"].format(level.output_tps), METRIC["requests_per_s"].format(level.requests_per_s),
        *(format_figure(value, "s") for value in (level.ttft_p50_s, level.ttft_p95_s, level.itl_p50_s,
                                                     level.itl_p95_s, level.e2e_p50_s, level.e2e_p95_s, level.e2e_p99_s)),
        METRIC["goodput_fraction"].format(level.goodput_fraction) + " %" if level.goodput_fraction is not None else "-",
        format_figure(wh_to_mwh(level.energy_wh), "mWh"), METRIC["energy_per_token_wh"].format(level.energy_per_token_wh),
        METRIC["energy_per_request_wh"].format(level.energy_per_request_wh), " ".join(sources) or "-",
    )
