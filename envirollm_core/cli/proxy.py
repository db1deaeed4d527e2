"""`envirollm proxy` (the metering pass-through, in the foreground) and `envirollm usage` (what real use cost)."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys

from envirollm_core.cli.common import (
    add_json_option, db_path, emit_json, finite_float, format_table, in_foreground, info, reading_store,
    wait_while_running,
)
from envirollm_core.cli.runs import _add_tariff, _tariff
from envirollm_core.errors import EnviroLLMError
from envirollm_core.figures import format_figure
from envirollm_core.proxy import DEFAULT_LISTEN


def register(subcommands: argparse._SubParsersAction) -> None:
    proxy = subcommands.add_parser(
        "proxy",
        help="meter real use: a pass-through to your LLM server that records each request's energy and tokens",
        description=(
            "Listen on --listen and pass every request to --upstream unchanged, streaming and not; record each "
            "generating request (/v1/chat/completions, /v1/completions, /api/chat, /api/generate) as a run "
            "(backend proxy, source 'live use'). Prompts and answers are stored only as a hash and a length "
            "unless --store-text. Requests for the model envirollm/auto (every request with --route) go to the "
            "configuration with the least energy per token above --quality-floor on the same task, from your "
            "stored benchmarks. Point your tools at http://LISTEN/v1 (OpenAI) or http://LISTEN (Ollama)."
        ),
    )
    proxy.add_argument("--upstream", required=True, metavar="URL",
                       help="the LLM server to pass requests to, e.g. http://localhost:11434 or http://localhost:1234/v1")
    proxy.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                       help=f"where to listen (default: {DEFAULT_LISTEN}, loopback only; port 0 picks a free one)")
    proxy.add_argument("--kind", choices=("openai", "ollama"), default="openai",
                       help="the upstream's API, used to list its models for the router (default: openai)")
    proxy.add_argument("--store-text", action="store_true", help="also store prompts and answers (default: hash and length only)")
    proxy.add_argument("--route", action="store_true", help="route every request, not only those for envirollm/auto")
    proxy.add_argument("--quality-floor", type=finite_float, default=70.0, metavar="Q",
                       help="the router's quality floor, 0-100 (default: 70)")
    proxy.add_argument("--default-model", default=None, metavar="M",
                       help="where envirollm/auto goes when no stored result qualifies (default: refuse with HTTP 400)")
    proxy.add_argument("--read-timeout", type=finite_float, default=600.0, metavar="S",
                       help="seconds to wait for the upstream's next bytes (default: 600)")
    add_json_option(proxy)
    proxy.set_defaults(handler=run_proxy)

    usage = subcommands.add_parser(
        "usage",
        help="energy, CO2e and cost of real use through the proxy, per model, client or day",
        description=(
            "What the requests recorded by `envirollm proxy` cost, grouped by model, client or day, beside what the "
            "recommended configuration for the same tasks would have cost (the request's routed task or prompt "
            "group, priced at the least energy per token above the quality floor among your benchmarks)."
        ),
    )
    usage.add_argument("--since", default="7d", metavar="DURATION", help="how far back: 7d, 12h, 30m, 2w (default: 7d)")
    usage.add_argument("--by", choices=("model", "client", "day"), default="model", help="grouping (default: model)")
    usage.add_argument("--quality-floor", type=finite_float, default=70.0, metavar="Q",
                       help="quality floor of the recommended configuration (default: 70)")
    _add_tariff(usage)
    add_json_option(usage)
    usage.set_defaults(handler=run_usage)


def run_proxy(args: argparse.Namespace) -> int:
    from envirollm_core.proxy.server import MeteringProxy, ProxyConfig, parse_listen
    from envirollm_core.store import Store

    host, port = parse_listen(args.listen)
    config = ProxyConfig(
        upstream=args.upstream, host=host, port=port, kind=args.kind, store_text=args.store_text,
        route_all=args.route, quality_floor=args.quality_floor, default_model=args.default_model,
        read_timeout_s=args.read_timeout,
    )
    # This process is the proxy: when the recorder parses an answer, the forwarding thread waits for the
    # GIL at most 1 ms, not Python's default 5 ms (a chunk at 5,000 tokens/s is due every 0.2 ms).
    sys.setswitchinterval(0.001)
    proxy = MeteringProxy(config, store=Store(db_path(args)))
    # The imports (Polars, DuckDB, pyarrow, openai) leave a few hundred thousand objects that a full garbage
    # collection walks: 60 ms measured here, stopping the forwarding loop whenever one falls due. Frozen, they
    # are never walked again; what the proxy allocates later is collected as usual.
    gc.freeze()
    with in_foreground("the metering proxy", proxy.stop):
        proxy.start()
        if not proxy.is_loopback:
            info(f"warning: listening on {proxy.url}, reachable from other machines; anyone there can use your LLM server")
        if args.json:
            emit_json({"url": proxy.url, "upstream": config.upstream, "kind": config.kind, "store_text": config.store_text,
                       "batch_id": proxy.recorder.batch_id})
        text = "prompts and answers stored" if config.store_text else "prompts and answers kept as hash and length only"
        info(f"metering {config.upstream} at {proxy.url} ({text}); Ctrl-C to stop")
        wait_while_running(proxy.is_running, EnviroLLMError("the metering proxy stopped unexpectedly"))
    return 0


def run_usage(args: argparse.Namespace) -> int:
    from envirollm_core.proxy.usage import parse_since, usage

    since = parse_since(args.since)
    tariff = _tariff(args)
    rows = usage(reading_store(args), tariff, since=since, by=args.by, quality_floor=args.quality_floor)
    if args.json:
        emit_json({"since": args.since, "by": args.by, "grid_g_co2_per_kwh": tariff.grid.g_co2_per_kwh,
                   "currency": tariff.currency, "rows": [dataclasses.asdict(row) for row in rows]})
        return 0
    if not rows:
        info(f"no request through the proxy in the last {args.since} (start one with `envirollm proxy --upstream URL`)")
        return 0
    money = f" ({tariff.currency})" if tariff.currency else ""
    columns = [args.by, "requests", "failed", "tokens", "Wh", "g CO2e", f"cost{money}", "recommended Wh",
               f"recommended cost{money}", "comparable", "routed"]
    table = [
        [row.key, str(row.requests), str(row.failed), format_figure(row.completion_tokens, "tokens"),
         format_figure(row.energy_wh, "Wh"), format_figure(row.co2e_g, "g"), format_figure(row.cost, "money"),
         format_figure(row.recommended_energy_wh, "Wh"), format_figure(row.recommended_cost, "money"),
         str(row.comparable_requests), str(row.routed_requests)]
        for row in rows
    ]
    print(format_table(columns, table))
    info(f"grid {format_figure(tariff.grid.g_co2_per_kwh, 'g/kWh')} g CO2e/kWh ({tariff.grid.country}); 'recommended' prices each comparable "
         "request at the recommended configuration of its task, the others at their own energy")
    return 0
