"""Options and output helpers that every command shares.

`--json` output goes to stdout and nothing else does; human text and
progress go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from envirollm_core.paths import default_db_path


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="database file (default: $ENVIROLLM_HOME/envirollm.duckdb, ENVIROLLM_HOME defaulting to ~/.envirollm)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout, nothing else")


def db_path(args: argparse.Namespace) -> Path:
    return args.db if args.db is not None else default_db_path()


def emit_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
