"""Runs the database could not take, kept in a file so no measurement is lost.

A benchmark stores each run as it is measured; when the database refuses it
(damaged, disk full, a log that cannot be written), the run goes to
`<database>.recovered-<batch>.json` beside it instead: a JSON export that
`envirollm import FILE` reads back once the database is repaired. Where that
folder cannot be written either, the file goes to the system's temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from envirollm_core.errors import UsageError
from envirollm_core.records import RunResult


def recovery_path(db_path: Path, batch_id: str, folder: Path | None = None) -> Path:
    return (folder or db_path.parent) / f"{db_path.name}.recovered-{batch_id}.json"


def keep_run(db_path: Path, run: RunResult, reason: str) -> Path:
    """Add `run` to its batch's recovery file; returns the file. Raises a one-line `UsageError` naming the
    database's failure and the recovery file's when neither can be written."""
    failures = []
    for folder in (db_path.parent, Path(tempfile.gettempdir())):
        path = recovery_path(db_path, run.batch_id, folder)
        try:
            _append(path, run)
            return path
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror or exc}")
    raise UsageError(f"{reason}; the run could not be kept in a recovery file either ({'; '.join(failures)})")


def _append(path: Path, run: RunResult) -> None:
    from envirollm_core.store.exchange import read_runs_file, write_json_runs

    kept = read_runs_file(path).runs if path.exists() else []
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(temporary, "wb") as out:
            write_json_runs([[*kept, run]], out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
