"""`envirollm serve-embedded`: the embedded engine in the foreground."""

from __future__ import annotations

import argparse
import signal
import time

from envirollm_core.backends.embedded import EmbeddedEngine
from envirollm_core.cli.common import add_json_option, emit_json, info
from envirollm_core.errors import EngineError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "serve-embedded",
        help="run the embedded llama.cpp engine (Gemma 3 270M) in the foreground",
        description=(
            "Start llama-cpp-python's OpenAI-compatible server with the embedded Gemma 3 270M Q4_K_M model "
            "and keep it running until interrupted (Ctrl-C or SIGTERM), so other tools can point at it."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: a free port)")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 < args.port < 65536:
        raise EngineError(f"--port must be between 1 and 65535, not {args.port}")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    engine = EmbeddedEngine(host=args.host, port=args.port)
    info(f"starting the embedded engine ({engine.model_id}) on {args.host} ...")
    try:
        engine.start()
        if args.json:
            emit_json({"base_url": engine.base_url, "model": engine.model_id, "pid": engine.pid})
        info(f"serving {engine.model_id} at {engine.base_url} (OpenAI-compatible); Ctrl-C to stop")
        while engine.is_running():
            time.sleep(0.5)
        raise EngineError("the embedded engine stopped unexpectedly")
    except KeyboardInterrupt:
        info("stopping the embedded engine")
        return 0
    finally:
        engine.stop()
