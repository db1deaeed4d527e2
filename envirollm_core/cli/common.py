"""Options and output helpers that every command shares.

`--json` output goes to stdout and nothing else does; human text and
progress go to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
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


_NUMBER = re.compile(r"-|n/a|[-+]?\d[\d.,]*(e[-+]?\d+)?%?( ± \d[\d.]*)?")


def format_table(columns: list[str] | tuple[str, ...], rows: list[list[str]] | list[tuple[str, ...]]) -> str:
    """Aligned columns under a dashed rule, like llama-bench; a column of numbers is aligned to the right."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows)]
    numeric = [bool(rows) and all(_NUMBER.fullmatch(row[index]) for row in rows) for index in range(len(columns))]
    lines = []
    for line in (list(columns), ["-" * width for width in widths], *rows):
        cells = [cell.rjust(width) if right else cell.ljust(width) for cell, width, right in zip(line, widths, numeric)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
