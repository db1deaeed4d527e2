"""`envirollm doctor`: check a database, say what is readable, copy every readable run into a new one.

The check reads every block (DuckDB verifies each block's checksum as it reads
it). A damaged file is then read run by run: a run whose row can be read is
kept, with its samples when they can be read too; the copy is a new database
file, never the damaged one, which is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envirollm_core.errors import UsageError
from envirollm_core.records import RunResult
from envirollm_core.store.connection import clear_damage_mark, connect, damage_note
from envirollm_core.store.errors import DatabaseFileError
from envirollm_core.store.store import Store, check_database

COPY_CHUNK_RUNS = 500


@dataclass(frozen=True)
class DoctorReport:
    path: str
    healthy: bool
    problem: str | None  # the first damage found, None when healthy
    runs_listed: int | None  # how many runs the file's index says it holds (None: not even that is readable)
    runs_readable: int
    runs_without_samples: int  # readable runs whose samples are not
    copied_to: str | None = None


def examine(path: Path, copy_to: Path | None = None) -> DoctorReport:
    """Check `path`; with `copy_to`, copy every readable run into that new database file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no database at {path}: check --db")
    if copy_to is not None and Path(copy_to).exists():
        raise UsageError(f"{copy_to} exists already: give a new file to copy the readable runs into")
    try:
        check_database(path)
        problem = None
    except DatabaseFileError as exc:
        problem = damage_note(path) or str(exc)
    if problem is None:
        clear_damage_mark(path)  # a file that reads whole again (restored from a backup) takes writes again
    listed, readable = _readable_runs(path)
    target = Store(copy_to, read_only=False) if copy_to is not None else None
    without_samples = 0
    batch: list[RunResult] = []
    count = 0
    for run, samples_read in readable:
        count += 1
        without_samples += not samples_read
        if target is not None:
            batch.append(run)
            if len(batch) >= COPY_CHUNK_RUNS:
                target.add_runs(batch)
                batch = []
    if target is not None and batch:
        target.add_runs(batch)
    return DoctorReport(
        path=str(path), healthy=problem is None, problem=problem, runs_listed=listed, runs_readable=count,
        runs_without_samples=without_samples, copied_to=None if copy_to is None else str(copy_to),
    )


def _readable_runs(path: Path) -> tuple[int | None, Iterator[tuple[RunResult, bool]]]:
    try:
        with connect(path, read_only=True) as conn:
            seqs = [row[0] for row in conn.execute("SELECT run_seq FROM runs ORDER BY run_seq").fetchall()]
    except DatabaseFileError:
        return None, iter(())
    return len(seqs), _each_run(path, seqs)


def _each_run(path: Path, seqs: list[int]) -> Iterator[tuple[RunResult, bool]]:
    """Each run that can be read, with whether its samples could be; chunks first, run by run where one fails."""
    for start in range(0, len(seqs), COPY_CHUNK_RUNS):
        chunk = seqs[start:start + COPY_CHUNK_RUNS]
        runs = _fetch(path, chunk, with_trace=True)
        if runs is not None:
            yield from ((run, True) for run in runs)
            continue
        for seq in chunk:
            runs = _fetch(path, [seq], with_trace=True)
            if runs:
                yield runs[0], True
                continue
            runs = _fetch(path, [seq], with_trace=False)
            if runs:
                yield runs[0], False


def _fetch(path: Path, seqs: list[int], *, with_trace: bool) -> list[RunResult] | None:
    marks = ", ".join(str(int(seq)) for seq in seqs)
    try:
        with connect(path, read_only=True) as conn:
            return Store._fetch_runs(conn, f" WHERE r.run_seq IN ({marks}) ORDER BY r.run_seq", [], with_trace)
    except DatabaseFileError:
        return None
