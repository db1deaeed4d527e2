"""`envirollm serve-embedded`: the embedded engine in the foreground."""

from __future__ import annotations

import argparse

from envirollm_core.backends.embedded import EmbeddedEngine
from envirollm_core.cli.common import (
    add_engine_options, add_json_option, emit_json, engine_models, in_foreground, info, wait_while_running,
)
from envirollm_core.errors import EngineError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "serve-embedded",
        help="run the embedded llama.cpp engine (SmolLM2-135M-Instruct) in the foreground",
        description=(
            "Start llama-cpp-python's OpenAI-compatible server with an embedded model (default: SmolLM2-135M-Instruct "
            "Q4_1, a chat model; or Gemma 3 270M Q4_K_M, a base model) and keep it running until interrupted "
            "(Ctrl-C or SIGTERM), so other tools can point at it."
        ),
    )
    add_engine_options(parser, several=False)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: a free port)")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 < args.port < 65536:
        raise EngineError(f"--port must be between 1 and 65535, not {args.port}")
    (model_id,) = engine_models(args.model, several=False)
    engine = EmbeddedEngine(host=args.host, port=args.port, model_id=model_id, threads=args.threads)
    info(f"starting the embedded engine ({engine.model.label}, {engine.threads} thread(s)) on {args.host} ...")
    with in_foreground("the embedded engine", engine.stop):
        engine.start()
        if args.json:
            emit_json({"base_url": engine.base_url, "model": engine.model_id, "pid": engine.pid,
                       "engine_threads": engine.threads})
        info(f"serving {engine.model_id} at {engine.base_url} (OpenAI-compatible); Ctrl-C to stop")
        wait_while_running(engine.is_running, EngineError("the embedded engine stopped unexpectedly"))
    return 0
