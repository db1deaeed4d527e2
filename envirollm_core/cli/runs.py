"""The stored results: `list`, `compare`, `recommend`, `fit`, `export`, `import`, `delete`, `note`, `clean`.

Tables go to stdout (one glance, like llama-bench); with `--json` stdout holds
only the JSON. Messages go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from envirollm_core.cli.common import (
    add_db_option, add_json_option, db_path, emit_json, finite_float, format_table, info, printable, reading_store,
    writable_store,
)
from envirollm_core.errors import UsageError
from envirollm_core.figures import MISSING, format_figure
from envirollm_core.metrics import METRIC, with_shown_columns
from envirollm_core.units import milli_to_unit, wh_to_kwh



def register(subcommands: argparse._SubParsersAction) -> None:
    listing = subcommands.add_parser(
        "list", help="list stored runs, newest first",
        description="List stored runs, newest first: when, model, backend, quantization, task, status, tokens, "
                    "TTFT, decode tokens/s, energy and quality. Ids are shortened to the shortest prefix unique in the "
                    "database (at least 8 characters, as git does); any unique prefix works elsewhere.",
    )
    _add_filters(listing)
    listing.add_argument("--batch", default=None, metavar="ID", help="only this batch")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50; 0 for all)")
    _common(listing, run_list)

    compare = subcommands.add_parser(
        "compare", help="compare configurations per prompt (mean, std, 95%% interval) and find regressions",
        description="Per prompt and configuration (model, backend, quantization, machine, max tokens, temperature): "
                    "runs, mean energy, tokens, "
                    "decode tokens/s and energy per token with 95 % t-intervals, TTFT and quality. Then each "
                    "configuration's latest batch against the one before it (or --baseline/--latest), with "
                    "Welch's t-test (Holm-adjusted); a significant change for the worse is a regression.",
    )
    _add_filters(compare)
    compare.add_argument("--baseline", default=None, metavar="BATCH", help="baseline batch (default: each group's previous one)")
    compare.add_argument("--latest", default=None, metavar="BATCH", help="batch to judge (default: each group's newest)")
    compare.add_argument("--alpha", type=finite_float, default=0.05, help="significance level (default 0.05)")
    compare.add_argument("--min-change", type=finite_float, default=0.05, metavar="FRACTION",
                         help="smallest change that counts, as a fraction of the baseline (default 0.05)")
    compare.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a regression is found (for CI)")
    _add_across_machines(compare)
    _common(compare, run_compare)

    recommend = subcommands.add_parser(
        "recommend", help="pick a configuration per prompt or task from your history, with carbon and cost",
        description="Within each prompt group (or task, --by preset), never across prompts: best overall "
                    "(quality per energy), most efficient (lowest energy per token meeting the quality floor), "
                    "fastest, highest quality, and the Pareto frontier of quality against energy per token; "
                    "with CO2 and cost per 1,000 tokens and per month for a usage you state.",
    )
    recommend.add_argument("--prompt-hash", default=None, metavar="H", help="only this prompt group")
    recommend.add_argument("--by", choices=("prompt", "preset"), default="prompt", help="group by prompt (default) or preset")
    recommend.add_argument("--quality-floor", type=finite_float, default=70.0, metavar="Q",
                           help="quality the most efficient pick must reach, 0-100 (default 70)")
    _add_tariff(recommend)
    _add_across_machines(recommend)
    usage = recommend.add_mutually_exclusive_group()
    usage.add_argument("--tokens-per-day", type=finite_float, default=None, metavar="N", help="projected usage: generated tokens a day")
    usage.add_argument("--requests-per-day", type=finite_float, default=None, metavar="N", help="projected usage: requests a day")
    _common(recommend, run_recommend)

    fit = subcommands.add_parser(
        "fit", help="which models and quantizations fit this machine's RAM and VRAM",
        description="Memory each catalog model needs (weights at its quantization's bits per weight, KV cache "
                    "for the context, runtime overhead) and whether it runs on the GPU, split, or on the CPU. "
                    "RAM and VRAM default to this machine's.",
    )
    fit.add_argument("--ram-gb", type=finite_float, default=None, help="RAM in GB (default: this machine's)")
    fit.add_argument("--vram-gb", type=finite_float, default=None, help="GPU memory in GB (default: this machine's largest GPU)")
    fit.add_argument("--context", type=int, default=4096, metavar="TOKENS", help="context length (default 4096)")
    fit.add_argument("--quant", default="Q4_K_M,Q5_K_M,Q8_0,F16", help="quantizations, comma-separated")
    fit.add_argument("--all", action="store_true", help="also list what does not fit")
    fit.add_argument("--min-tps", type=finite_float, default=5.0, metavar="N",
                     help="slowest estimated decode rate that counts as usable, tokens/s (default 5)")
    fit.add_argument("--probe", action="store_true",
                     help="measure this machine's memory bandwidth again (it is measured once and stored)")
    add_db_option(fit)
    add_json_option(fit)
    fit.set_defaults(handler=run_fit)

    export = subcommands.add_parser(
        "export", help="write stored runs to CSV, Parquet or JSON",
        description="Write stored runs with the original EnviroLLM's CSV columns first, then every field "
                    "(components, environment, quality detail and the sample trace as JSON). API keys are never "
                    "stored, so never exported.",
    )
    export.add_argument("--format", choices=("csv", "parquet", "json"), default=None,
                        help="file format (default: from --output's extension, else csv)")
    export.add_argument("--output", default=None, metavar="FILE",
                        help="where to write ('-' for stdout; default envirollm-export-<time>.<format>)")
    _add_filters(export)
    _common(export, run_export)

    importing = subcommands.add_parser(
        "import", help="add runs from an export (ours, or the original EnviroLLM's CSV)",
        description="Validate the whole file, then add its runs in one transaction; runs already stored (same "
                    "id) are skipped and counted. A bad file changes nothing and gets one line naming the row "
                    "and column at fault (exit 2).",
    )
    importing.add_argument("file", type=Path, metavar="FILE", help="a CSV, Parquet or JSON export")
    importing.add_argument("--dry-run", action="store_true", help="validate only; store nothing")
    _common(importing, run_import)

    delete = subcommands.add_parser("delete", help="delete one stored run", description="Delete one run and its samples.")
    delete.add_argument("run_id", metavar="RUN_ID", help="the run's id, or a unique prefix of it")
    _common(delete, run_delete)

    note = subcommands.add_parser("note", help="set a stored run's note", description="Replace a run's note ('' clears it).")
    note.add_argument("run_id", metavar="RUN_ID", help="the run's id, or a unique prefix of it")
    note.add_argument("text", metavar="TEXT", help="the note")
    _common(note, run_note)

    clean = subcommands.add_parser(
        "clean", help="delete every stored run", description="Delete every stored run, sample and batch."
    )
    clean.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _common(clean, run_clean)


def _common(parser: argparse.ArgumentParser, handler: Any) -> None:
    add_db_option(parser)
    add_json_option(parser)
    parser.set_defaults(handler=handler)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt-hash", default=None, metavar="H", help="only runs of this prompt")
    parser.add_argument("--model", default=None, help="only runs of this model")


def _add_across_machines(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--across-machines", action="store_true",
                        help="put the configurations of different machines side by side (default: each machine apart)")


def _add_tariff(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--country", default=None, metavar="CODE",
                      help="grid carbon intensity of this country (ISO alpha-3 like FRA, or a name; default: "
                           "your settings, else the world mean)")
    grid.add_argument("--grid-g-per-kwh", type=finite_float, default=None, metavar="G", help="your own grid intensity, g CO2e/kWh")
    parser.add_argument("--price-per-kwh", type=finite_float, default=None, metavar="P", help="electricity price per kWh (default: your settings)")
    parser.add_argument("--currency", default=None, help="currency label for prices (default: your settings)")


# -- tables -----------------------------------------------------------------------------------


def _config_label(row: dict[str, Any]) -> list[str]:
    from envirollm_core.analysis.configuration import config_label

    return [config_label(row)]


def _jsonable(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows for JSON, times as ISO 8601 in UTC."""
    return frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()


# -- commands ---------------------------------------------------------------------------------

_PICK_FIGURES = ("energy_per_token_wh", "decode_tps", "quality_score")
_LIST_FIGURES = ("completion_tokens", "ttft_s", "decode_tps", "energy_wh", "energy_per_token_wh", "quality_score")
# compare's columns after the configuration, n and fail: a mean, or a mean ± half its 95 % interval
_COMPARE_FIGURES = (("energy_wh", False), ("completion_tokens", False), ("decode_tps", True), ("ttft_s", False),
                    ("energy_per_token_wh", True), ("quality_score", False))


def run_list(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {args.limit}")
    store = reading_store(args)
    frame = store.with_short_ids(store.runs_frame(
        prompt_hash=args.prompt_hash, model=args.model, batch_id=args.batch, limit=args.limit or None
    ))
    if args.json:
        emit_json(_jsonable(frame))
        return 0
    if frame.height == 0:
        info(f"no stored runs in {db_path(args)}")
        return 0
    figures = [METRIC[name] for name in _LIST_FIGURES]
    columns = ["id", "when (UTC)", "model", "backend", "quant", "task", "status", *(m.short for m in figures), "note"]
    rows = [
        [row["short_id"], row["created_at"].strftime("%Y-%m-%d %H:%M"), row["model"], row["backend"],
         row["quantization"] or "-", row["preset"] or (row["prompt_preview"] or "")[:24], row["status"],
         *(m.format_shown(row[m.shown_column]) for m in figures), row["notes"][:30]]
        for row in with_shown_columns(frame).iter_rows(named=True)  # rounded as the app's table rounds
    ]
    print(format_table(columns, rows))
    info(f"{frame.height} run(s) shown from {db_path(args)}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from envirollm_core.analysis.stats import ANALYSIS_COLUMNS, group_stats
    from envirollm_core.analysis.trends import compare_batches, regressions

    store = reading_store(args)
    frame = store.runs_frame(prompt_hash=args.prompt_hash, model=args.model, columns=ANALYSIS_COLUMNS)
    stats = group_stats(frame)
    changes = compare_batches(frame, baseline_batch=args.baseline, latest_batch=args.latest,
                              alpha=args.alpha, min_change=args.min_change)
    found = regressions(changes)
    sweeps = _sweeps(store, args.model)
    if args.json:
        emit_json({"groups": _jsonable(stats), "changes": [dataclasses.asdict(c) for c in changes],
                   "regressions": len(found), "sweeps": [dataclasses.asdict(s) for s in sweeps]})
    elif stats.height == 0 and not sweeps:
        info(f"no stored runs to compare in {db_path(args)}")
    else:
        if stats.height:
            _print_compare(stats, changes, args.across_machines)
        _print_sweeps(sweeps)
    if found:
        info(f"{len(found)} regression(s) found")
    return 1 if found and args.fail_on_regression else 0


def _print_compare(stats: pl.DataFrame, changes: list[Any], across_machines: bool) -> None:
    from envirollm_core.analysis.quality_methods import methods_of_stats
    from envirollm_core.machines import machine_label

    columns = ["configuration", "n", "fail",
               *(f"{METRIC[name].short}{' (95% CI)' if spread else ''}" for name, spread in _COMPARE_FIGURES)]
    keys = ["prompt_hash"] if across_machines else ["prompt_hash", "machine"]
    for group_key, group in stats.group_by(keys, maintain_order=True):
        prompt = group_key[0]
        first = group.row(0, named=True)
        label = first.get("preset") or ""
        preview = first.get("prompt_preview") or ""
        machines = group["machine"].unique().to_list()
        where = (f"across {len(machines)} machines" if len(machines) > 1 else machine_label(machines[0]))
        sys.stdout.write("\n" + printable(f"prompt {prompt}{f' ({label})' if label else ''} on {where}: {preview}") + "\n")
        rows = [
            [*_config_label(row), str(row["n_runs"]), str(row["n_failed"]),
             *(METRIC[name].format_spread(row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"]) if spread
               else METRIC[name].format(row[f"{name}_mean"]) for name, spread in _COMPARE_FIGURES)]
            for row in group.sort("energy_per_token_wh_mean", nulls_last=True).iter_rows(named=True)
        ]
        print(format_table(columns, rows))
        _warn_mixed_methods(methods_of_stats(group))
    # Untested changes are shown too, with why they were not tested (too few runs, no spread).
    judged = [c for c in changes if c.verdict != "no significant change" and c.change_fraction is not None]
    if not changes:
        sys.stdout.write("\nno configuration has two batches on one prompt yet: nothing to compare over time\n")
        return
    sys.stdout.write(f"\nlatest batch against baseline: {len(changes)} metric(s) tested, "
                     f"{sum(c.verdict == 'regression' for c in changes)} regression(s), "
                     f"{sum(c.verdict == 'improvement' for c in changes)} improvement(s)\n")
    if judged:
        columns = ["verdict", "configuration", "prompt", "metric", "unit", "baseline", "latest", "change", "p (Holm)"]
        rows = [
            [c.verdict, c.label, c.prompt_hash[:8], c.metric, METRIC[c.metric].unit, METRIC[c.metric].format(c.baseline_mean),
             METRIC[c.metric].format(c.latest_mean),
             f"{'+' if c.change_fraction > 0 else ''}{format_figure(c.change_fraction * 100, '%')} %",
             MISSING if c.p_adjusted is None else "< 0.001" if c.p_adjusted < 0.001 else format_figure(c.p_adjusted)]
            for c in judged
        ]
        print(format_table(columns, rows))


def _warn_mixed_methods(methods: list[str]) -> None:
    from envirollm_core.analysis.quality_methods import mixed_methods_warning

    warning = mixed_methods_warning(methods)
    if warning:
        sys.stdout.write(printable(f"warning: {warning}") + "\n")


def _sweeps(store: Any, model: str | None = None) -> list[Any]:
    from envirollm_core.analysis.load import summarize_sweeps

    return summarize_sweeps(store.sweep_levels(), model=model)


def _print_sweeps(sweeps: list[Any]) -> None:
    """Load sweeps side by side: peak throughput, the knee, the most efficient level meeting the SLOs."""
    if not sweeps:
        return
    sys.stdout.write("\nload sweeps (most efficient level: lowest energy per token with >= 95 % of requests "
                     "meeting the SLOs)\n")
    columns = ["sweep", "model", "backend", "levels", "peak tok/s", "knee", "SLO TTFT/ITL s", "best level",
               "mWh/tok", "tok/s", "e2e p95 s"]
    rows = [
        [s.sweep_id[:8], s.model, s.backend, ",".join(map(str, s.levels)), METRIC["output_tps"].format(s.peak_output_tps),
         str(s.knee) if s.knee is not None else "-",
         f"{format_figure(s.slo_ttft_s, 's')}/{format_figure(s.slo_itl_s, 's')}",
         str(s.best_level) if s.best_level is not None else "-", METRIC["energy_per_token_wh"].format(s.best_energy_per_token_wh),
         METRIC["output_tps"].format(s.best_output_tps), format_figure(s.best_e2e_p95_s, "s")]
        for s in sweeps
    ]
    print(format_table(columns, rows))


def _tariff(args: argparse.Namespace) -> Any:
    from envirollm_core.analysis.carbon import make_tariff
    from envirollm_core.settings import load_settings

    settings = load_settings()
    own = args.grid_g_per_kwh
    country = args.country
    if own is None and country is None:
        own, country = settings.carbon_intensity_g_per_kwh, settings.country_code
    return make_tariff(
        country=country, g_co2_per_kwh=own,
        price_per_kwh=args.price_per_kwh if args.price_per_kwh is not None else settings.electricity_price_per_kwh,
        currency=args.currency if args.currency is not None else settings.currency,
    )


def run_recommend(args: argparse.Namespace) -> int:
    from envirollm_core.analysis.carbon import monthly, per_thousand_tokens
    from envirollm_core.analysis.recommend import PICK_TITLES, recommend
    from envirollm_core.analysis.stats import ANALYSIS_COLUMNS
    if not 0 <= args.quality_floor <= 100:
        raise UsageError(f"--quality-floor is a score from 0 to 100, not {args.quality_floor:g}")
    tariff = _tariff(args)
    by = "preset" if args.by == "preset" else "prompt_hash"
    store = reading_store(args)
    frame = store.runs_frame(prompt_hash=args.prompt_hash, columns=ANALYSIS_COLUMNS)
    groups = recommend(frame, by=by, quality_floor=args.quality_floor, across_machines=args.across_machines)
    sweeps = _sweeps(store)

    def costs(config: Any) -> dict[str, Any]:
        thousand = None if config.energy_per_token_wh is None else per_thousand_tokens(config.energy_per_token_wh, tariff)
        month = monthly(tariff, energy_per_token_wh=config.energy_per_token_wh, tokens_per_day=args.tokens_per_day,
                        energy_per_request_wh=config.energy_wh, requests_per_day=args.requests_per_day)
        return {"per_1k_tokens": thousand and dataclasses.asdict(thousand),
                "per_month": month and dataclasses.asdict(month)}

    if args.json:
        emit_json({
            "tariff": dataclasses.asdict(tariff),
            "usage": {"tokens_per_day": args.tokens_per_day, "requests_per_day": args.requests_per_day},
            "groups": [
                {**dataclasses.asdict(group),
                 "picks": [{**dataclasses.asdict(pick), **costs(pick.config)} for pick in group.picks]}
                for group in groups
            ],
            "sweeps": [{**dataclasses.asdict(sweep),
                        **({"per_1k_tokens": dataclasses.asdict(per_thousand_tokens(sweep.best_energy_per_token_wh, tariff))}
                           if sweep.best_energy_per_token_wh is not None else {"per_1k_tokens": None})}
                       for sweep in sweeps],
        })
        return 0
    if not groups and not sweeps:
        info(f"no completed runs to recommend from in {db_path(args)}")
        return 0
    _print_sweeps(sweeps)
    money = f" {tariff.currency}" if tariff.currency else ""
    columns = ["pick", "configuration", "n", *(METRIC[name].short for name in _PICK_FIGURES), "CO2 g/1k tok"]
    if tariff.price_per_kwh is not None:
        columns.append(f"cost{money}/1k tok")
    projected = args.tokens_per_day is not None or args.requests_per_day is not None
    if projected:
        columns += ["month kWh", "month kg CO2"] + ([f"month cost{money}"] if tariff.price_per_kwh is not None else [])
    for group in groups:
        sys.stdout.write("\n" + printable(f"{'task' if by == 'preset' else 'prompt'} {group.group}: {group.label}"
                                   f" on {group.measured_on} ({group.n_configs} configuration(s))") + "\n")
        rows = []
        for pick in group.picks:
            config, cost = pick.config, costs(pick.config)
            row = [PICK_TITLES[pick.kind], config.label, str(config.n_runs),
                   *(METRIC[name].format(getattr(config, name)) for name in _PICK_FIGURES)]
            thousand, month = cost["per_1k_tokens"], cost["per_month"]
            row.append(MISSING if thousand is None else format_figure(thousand["co2_g"], "g"))
            if tariff.price_per_kwh is not None:
                row.append(MISSING if thousand is None else format_figure(thousand["cost"], "money"))
            if projected:
                row += ([MISSING, MISSING] if month is None
                        else [format_figure(wh_to_kwh(month["energy_wh"]), "kWh"), format_figure(milli_to_unit(month["co2_g"]), "kg")])
                if tariff.price_per_kwh is not None:
                    row.append(MISSING if month is None else format_figure(month["cost"], "money"))
            rows.append(row)
        if rows:
            print(format_table(columns, rows))
        if group.pareto:
            sys.stdout.write(printable("Pareto frontier (quality vs energy/token, cheapest first): "
                             + " -> ".join(f"{c.label} [q {METRIC['quality_score'].format(c.quality_score)}, "
                                           f"{METRIC['energy_per_token_wh'].format(c.energy_per_token_wh)} mWh/tok]"
                                           for c in group.pareto)) + "\n")
        for note in group.notes:
            sys.stdout.write(printable(f"note: {note}") + "\n")
        if group.quality_methods_mixed:
            sys.stdout.write(printable(f"warning: {group.quality_methods_mixed}") + "\n")
    grid = tariff.grid
    info(f"grid: {grid.country} {format_figure(grid.g_co2_per_kwh, 'g/kWh')} g CO2e/kWh ({grid.source}"
         + (f", {grid.year}" if grid.year else "") + ")"
         + ("" if tariff.price_per_kwh is not None else "; give --price-per-kwh for costs"))
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from envirollm_core.analysis.hardware import detected_memory_gb, hardware_fit, largest_fits, usable
    from envirollm_core.analysis.speed import (
        check_against_runs,
        fit_verdict,
        memory_bandwidth,
        this_gpu_bandwidth_gbps,
        with_speeds,
    )

    if args.min_tps < 0:
        raise UsageError(f"--min-tps must be 0 or more, not {args.min_tps:g}")
    ram_gb, vram_gb = args.ram_gb, args.vram_gb
    if ram_gb is None or vram_gb is None:
        detected_ram_gb, detected_vram_gb = detected_memory_gb()
        ram_gb = detected_ram_gb if ram_gb is None else ram_gb
        vram_gb = (detected_vram_gb or 0.0) if vram_gb is None else vram_gb  # no GPU detected: nothing runs on one
    quantizations = tuple(q.strip() for q in args.quant.split(",") if q.strip())
    if not quantizations:
        raise UsageError("--quant needs at least one quantization, e.g. Q4_K_M")
    probe = memory_bandwidth(refresh=args.probe)
    gpu_gbps = this_gpu_bandwidth_gbps() if vram_gb else None
    estimates = with_speeds(hardware_fit(ram_gb, vram_gb, context_tokens=args.context, quantizations=quantizations),
                            ram_gbps=probe.gbps, gpu_gbps=gpu_gbps, vram_gb=vram_gb)
    checks = check_against_runs(
        reading_store(args).runs_frame(columns=["model", "quantization", "machine", "status", "decode_tps"]),
        ram_gbps=probe.gbps, gpu_gbps=gpu_gbps, ram_gb=ram_gb, vram_gb=vram_gb, context_tokens=args.context,
    )
    # Usable first (fastest first), then what fits but crawls, then (with --all) what does not fit.
    ranked = sorted(estimates, key=lambda e: (not usable(e, args.min_tps), e.placement == "does not fit",
                                              -(e.decode_tps or 0.0), e.total_gb))
    shown = ranked if args.all else [e for e in ranked if e.placement != "does not fit"]
    if args.json:
        emit_json({"ram_gb": ram_gb, "vram_gb": vram_gb, "context_tokens": args.context, "min_tps": args.min_tps,
                   "memory_bandwidth": dataclasses.asdict(probe), "gpu_bandwidth_gbps": gpu_gbps,
                   "estimates": [{**dataclasses.asdict(e), "usable": usable(e, args.min_tps),
                                  "verdict": fit_verdict(e, args.min_tps)} for e in shown],
                   "checks": [{**dataclasses.asdict(c), "ratio": c.ratio} for c in checks]})
        return 0
    columns = ["model", "ollama", "quant", "weights GB", "KV GB", "total GB", "runs on", "verdict"]
    rows = [[e.model, e.ollama_tag, e.quantization, format_figure(e.weights_gb, "GB"), format_figure(e.kv_cache_gb, "GB"),
             format_figure(e.total_gb, "GB"), e.placement, fit_verdict(e, args.min_tps)] for e in shown]
    print(format_table(columns, rows) if rows else "nothing in the catalog fits")
    for place, estimate in largest_fits(estimates, args.min_tps).items():
        info(f"largest usable on {place}: {estimate.model} {estimate.quantization} "
             f"({format_figure(estimate.total_gb, 'GB')} GB): {fit_verdict(estimate, args.min_tps)}")
    for check in checks:
        info(f"check: {check.model} {check.quantization} measured {format_figure(check.measured_tps, 'tokens/s')} "
             f"tokens/s over {check.runs} run(s) here, estimated {format_figure(check.estimated_tps, 'tokens/s')}: "
             f"measured/estimated {format_figure(check.ratio)}")
    info(f"for {format_figure(ram_gb, 'GB')} GB RAM and {format_figure(vram_gb, 'GB')} GB VRAM at {args.context} tokens "
         f"of context; memory bandwidth {format_figure(probe.gbps, 'GB/s')} GB/s measured {probe.measured_at}"
         + (f", GPU {format_figure(gpu_gbps, 'GB/s')} GB/s (table)" if gpu_gbps else "")
         + f"; usable = at least {args.min_tps:g} tokens/s; estimates, not measurements (analysis/speed.py)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = suffix if suffix in ("csv", "parquet", "json") else "csv"
    output = args.output or f"envirollm-export-{datetime.now():%Y%m%d-%H%M%S}.{fmt}"
    if output == "-" and args.json:
        raise UsageError("--json prints a summary on stdout, so it cannot go with --output -")
    count = reading_store(args).export(Path(output), fmt, prompt_hash=args.prompt_hash, model=args.model)
    if args.json:
        emit_json({"path": str(Path(output).resolve()), "format": fmt, "runs": count})
    info(f"exported {count} run(s) as {fmt}" + ("" if output == "-" else f" to {output}"))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from envirollm_core.store import read_runs_file

    if args.dry_run:
        parsed = read_runs_file(args.file)
        if args.json:
            emit_json({"path": str(args.file), "format": parsed.format, "valid_runs": len(parsed.runs)})
        info(f"{args.file}: {len(parsed.runs)} valid run(s) ({parsed.format}); nothing stored (--dry-run)")
        return 0
    report = writable_store(args, "importing runs").import_file(args.file)
    if args.json:
        emit_json(dataclasses.asdict(report))
    info(f"imported {report.added} run(s) from {args.file} ({report.format}); "
         f"{report.skipped_existing} already stored, skipped")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    store = writable_store(args, "deleting a run")
    run_id = store.resolve_run_id(args.run_id)
    store.delete_run(run_id)
    if args.json:
        emit_json({"deleted": run_id})
    info(f"deleted run {run_id}")
    return 0


def run_note(args: argparse.Namespace) -> int:
    store = writable_store(args, "changing a run's note")
    run_id = store.resolve_run_id(args.run_id)
    store.set_note(run_id, args.text)
    if args.json:
        emit_json({"run": run_id, "notes": args.text})
    info(f"note of run {run_id} {'set' if args.text else 'cleared'}")
    return 0


def run_clean(args: argparse.Namespace) -> int:
    store = writable_store(args, "deleting all runs")
    count = store.count()
    if count and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"clean deletes all {count} run(s) in {store.path}; pass --yes to confirm")
        sys.stderr.write(f"Delete all {count} run(s) in {store.path}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            info("nothing deleted")
            return 0
    deleted = store.clean() if count else 0
    if args.json:
        emit_json({"deleted": deleted})
    info(f"deleted {deleted} run(s) from {store.path}")
    return 0
