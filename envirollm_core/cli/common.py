"""Options and output helpers that every command shares.

`--json` output goes to stdout and nothing else does; human text and
progress go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.paths import default_db_path

if TYPE_CHECKING:  # DuckDB and Polars: imported by the commands that open the database
    from envirollm_core.store import Store


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, default=None, metavar="PATH",
        help="database file (default: $ENVIROLLM_HOME/envirollm.duckdb, ENVIROLLM_HOME defaulting to ~/.envirollm)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout, nothing else")


def db_path(args: argparse.Namespace) -> Path:
    return args.db if args.db is not None else default_db_path()


def writable_store(args: argparse.Namespace, action: str) -> Store:
    """The database of a command that writes (`--db`): in read-only mode the command is refused here, once,
    before it asks any server or starts any engine."""
    from envirollm_core.store import Store

    return Store.for_writing(db_path(args), action)


def reading_store(args: argparse.Namespace) -> Store:
    """The database of a command that only reads: never created; a `--db` file that does not exist is an error."""
    from envirollm_core.store import Store

    return Store.for_reading(db_path(args), given=args.db is not None)


def finite_float(text: str) -> float:
    """argparse type: a finite number (`nan` and `inf` parse as floats but measure nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: they are not readings, and JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def emit_json(payload: Any) -> None:
    json.dump(_json_safe(payload), sys.stdout, indent=2, default=str, allow_nan=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


# Terminal controls: C0 (ESC starts colour, clear-screen and title sequences), DEL, C1 (a one-byte CSI in some
# terminals), and the Unicode marks that reorder or hide text (bidi overrides and isolates).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """Text for a person's terminal: every control character shown escaped (`\\x1b`), never obeyed. Stored text
    (a model name, a prompt, an imported file's fields) may hold escape sequences that would clear the screen
    or set the window's title."""
    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if keep_newlines and char == "\n":
            return char
        return repr(char)[1:-1] if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _CONTROL.sub(escaped, str(text))


def info(message: str) -> None:
    print(printable(message, keep_newlines=True), file=sys.stderr, flush=True)


_NUMBER = re.compile(r"-|[-+]?\d[\d.,]*(e[-+]?\d+)?%?( ± \d[\d.]*)?")


def format_table(columns: list[str] | tuple[str, ...], rows: list[list[str]] | list[tuple[str, ...]]) -> str:
    """Aligned columns under a dashed rule, like llama-bench; a column of numbers is aligned to the right."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows)]
    numeric = [bool(rows) and all(_NUMBER.fullmatch(row[index]) for row in rows) for index in range(len(columns))]
    lines = []
    for line in (list(columns), ["-" * width for width in widths], *rows):
        cells = [cell.rjust(width) if right else cell.ljust(width) for cell, width, right in zip(line, widths, numeric)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def add_engine_options(parser: argparse.ArgumentParser, several: bool) -> None:
    """`--model` and `--threads` of the commands that start the embedded engine."""
    from envirollm_core.backends.embedded import DEFAULT_MODEL, EMBEDDED_MODELS

    names = ", ".join(EMBEDDED_MODELS)
    parser.add_argument(
        "--model", default=None,
        help=(f"embedded model(s), comma-separated: {names} (default: both, one after the other)" if several
              else f"embedded model: {names} (default: {DEFAULT_MODEL.model_id})"),
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="threads the engine decodes with (default: every physical core); stored with each run",
    )


def engine_models(text: str | None, several: bool) -> tuple[str, ...]:
    """The embedded models `--model` names, checked; the default when it names none."""
    from envirollm_core.backends.embedded import DEFAULT_MODEL, EMBEDDED_MODELS, embedded_model

    if text is None:
        return tuple(EMBEDDED_MODELS) if several else (DEFAULT_MODEL.model_id,)
    models = tuple(dict.fromkeys(embedded_model(m).model_id for m in text.split(",") if m.strip()))
    if not models:
        raise UsageError(f"--model names no model; choose from {', '.join(EMBEDDED_MODELS)}")
    if len(models) > 1 and not several:
        raise UsageError("--model takes one model here")
    return models


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM (a service manager, `kill`) stops a foreground command as Ctrl-C does: cleanly."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


@contextmanager
def in_foreground(what: str, stop: Callable[[], None]) -> Iterator[None]:
    """Run a server in the foreground: Ctrl-C or SIGTERM ends the block quietly ("stopping WHAT"); `stop` runs
    however it ends."""
    interrupt_on_sigterm()
    try:
        yield
    except KeyboardInterrupt:
        info(f"stopping {what}")
    finally:
        stop()


def wait_while_running(is_running: Callable[[], bool], stopped: EnviroLLMError) -> NoReturn:
    """Block while the server runs; `stopped` is raised if it ends on its own."""
    while is_running():
        time.sleep(0.5)
    raise stopped
