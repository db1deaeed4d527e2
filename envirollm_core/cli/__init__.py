"""The `envirollm` command: a thin argparse front end over the core.

Each command lives in a module of this package that exposes
`register(subcommands)`; it adds its parser and sets `handler`, a function
taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys

from envirollm_core import __version__
from envirollm_core.cli import bench, doctor, proxy, quality, runs, serve, sweep, telemetry
from envirollm_core.cli.common import add_db_option, printable
from envirollm_core.errors import EnviroLLMError, UsageError

COMMAND_MODULES = (serve, bench, sweep, telemetry, runs, quality, doctor, proxy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envirollm",
        description="Measure what local LLMs really cost: energy, speed, memory, carbon, money, and quality.",
    )
    parser.add_argument("--version", action="version", version=f"envirollm {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subcommands)
    for command in subcommands.choices.values():
        # The contract: every command takes --db, so a script can pass it to all of them.
        if not any("--db" in action.option_strings for action in command._actions):
            add_db_option(command)
    return parser


def check_text_arguments(args: argparse.Namespace) -> None:
    """Bytes typed on a command line that are not UTF-8 reach Python as lone surrogates, which no server,
    export or database can take: such text is refused in one line before any work. (File paths, parsed as
    `Path`, may be any bytes the file system allows, and are left alone.)"""
    for dest, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(f"argument {dest}: {value[:60]!r} is not valid text (it holds bytes that are not UTF-8)") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_text_arguments(args)
        return args.handler(args)
    except EnviroLLMError as exc:
        print(f"envirollm: error: {printable(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("envirollm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`envirollm list --json | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
