"""Short DuckDB connections that wait their turn.

DuckDB lets one process at a time open a database file for writing, and while
a writer holds it no other process can open it at all, not even read-only.
So every store operation opens a connection, does its work and closes it at
once; a conflict is retried with exponential backoff and jitter for up to
`LOCK_WAIT_S` before it becomes a one-line `StoreBusyError`.

Two locks guard a connection, from its opening to the end of its closing:
- beside the database, `<file>.lock` taken with `flock` (shared to read,
  exclusive to write), in turn through `<file>.queue`. With DuckDB's lock
  alone, a reader between two hammering writers once failed with "Could not
  read enough bytes from file" (tests/store/test_concurrency.py); `flock`
  belongs to the open file, so nothing else in the process can drop it early;
- within a process, one lock per file: DuckDB refuses a read-only connection
  while a read-write one is open on the same file in the same process (the
  app reads from several threads while a job writes). `flock` alone would
  serialize those threads too; this lock also covers systems without it.
DuckDB's own lock still answers for processes that are not EnviroLLM.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from envirollm_core.errors import UsageError
from envirollm_core.store.errors import DamagedDatabaseError, DatabaseFileError, StoreBusyError

try:
    import fcntl
except ImportError:  # Windows: DuckDB's own lock (LockFileEx) is held per handle and suffices there
    fcntl = None  # type: ignore[assignment]

LOCK_WAIT_S = 30.0
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.02  # short: a turn between two writers lasts only milliseconds

_process_locks: dict[str, threading.RLock] = {}
_process_locks_guard = threading.Lock()

T = TypeVar("T")


def _process_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _process_locks_guard:
        return _process_locks.setdefault(key, threading.RLock())


@contextmanager
def connect(path: Path, *, read_only: bool, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to `path` for the length of one `with` block."""
    deadline = time.monotonic() + wait_s
    in_process = _process_lock(path)
    if not in_process.acquire(timeout=wait_s):
        raise StoreBusyError(f"the database {path} stayed busy in this process for {wait_s:g} s; try again")
    try:
        with _file_lock(path, shared=read_only, deadline=deadline, wait_s=wait_s):
            conn = _wait(lambda: _try_open(path, read_only), path, deadline, wait_s)
            try:
                yield conn
            except duckdb.Error as exc:
                # A damaged block, a full disk, a log that cannot be written: one line naming the file.
                raise database_error(path, exc) from None
            finally:
                conn.close()
    finally:
        in_process.release()


# What DuckDB says when a file's bytes are not what it wrote (a checksum that does not match, a cut file).
_DAMAGE_SIGNS = ("corrupt", "checksum", "could not read enough bytes", "failed to read block", "truncated")


def database_error(path: Path, exc: BaseException) -> DatabaseFileError:
    """A DuckDB failure on `path` as one line saying what is wrong with which file and what to do."""
    detail = (str(exc).splitlines() or [type(exc).__name__])[0].removeprefix("IO Error: ").removeprefix("Error: ")
    lowered = detail.lower()
    if any(sign in lowered for sign in _DAMAGE_SIGNS):
        mark_damaged(path, detail)
        return DamagedDatabaseError(
            f"the database {path} is damaged ({detail[:160]}); nothing more will be written to it:"
            f" run `envirollm doctor --db {path}` to see what is readable and copy it to a new database"
        )
    if "no space left" in lowered or "disk full" in lowered or "quota" in lowered:
        return DatabaseFileError(f"the disk holding {path} is full ({detail[:160]}); free some space and try again")
    if "permission denied" in lowered or "read-only file system" in lowered:
        return DatabaseFileError(
            f"cannot write the database {path} or its log beside it ({detail[:160]});"
            " check the folder's permissions, or pass another --db"
        )
    return DatabaseFileError(f"the database {path} failed: {detail[:200]}")


# -- the damage mark: `<db>.damaged`, beside the file, refuses writes until the file is repaired or replaced ----


def damage_mark_path(path: Path) -> Path:
    return path.with_name(path.name + ".damaged")


def mark_damaged(path: Path, detail: str) -> None:
    """Remember that `path` failed its check. The mark names the file's inode, so a file put in its place (the
    repaired copy) is not refused; a mark that cannot be written (a read-only folder) leaves only the error."""
    try:
        damage_mark_path(path).write_text(f"{os.stat(path).st_ino}\n{detail}\n", encoding="utf-8")
    except OSError:
        pass


def damage_note(path: Path) -> str | None:
    """Why `path` is known to be damaged (the first error seen), or None."""
    try:
        inode, _, detail = damage_mark_path(path).read_text(encoding="utf-8").partition("\n")
        if int(inode) == os.stat(path).st_ino:
            return detail.strip() or "it failed its check"
    except (OSError, ValueError):
        pass
    return None


def clear_damage_mark(path: Path) -> None:
    damage_mark_path(path).unlink(missing_ok=True)


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All of the block's writes, or none of them."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def one(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, or None. (DuckDB 2 wants every result read to its end before the next.)"""
    rows = conn.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def _wait(attempt: Callable[[], T | None], path: Path, deadline: float, wait_s: float) -> T:
    """Call `attempt` until it gives something (None means: someone else holds the lock)."""
    delay_s = _FIRST_DELAY_S
    while True:
        result = attempt()
        if result is not None:
            return result
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            raise StoreBusyError(
                f"the database {path} stayed locked by another process for {wait_s:g} s;"
                " try again when it has finished"
            )
        # Jitter keeps two waiting processes from retrying in lockstep.
        time.sleep(min(delay_s * random.uniform(0.5, 1.5), remaining_s))
        delay_s = min(delay_s * 2, _MAX_DELAY_S)


@contextmanager
def _file_lock(path: Path, *, shared: bool, deadline: float, wait_s: float) -> Iterator[None]:
    """`<db>.lock`, shared or exclusive, taken in turn through `<db>.queue`.

    A process holds the queue only while it waits for the lock, so at most one
    process waits on the lock at a time and the one that just finished must
    queue again behind it: no reader or writer can be starved by another that
    comes back at once (measured: without the queue a reader got one turn in
    20 s between two writers)."""
    if fcntl is None:
        yield
        return
    queue = _lock_descriptor(path.with_name(path.name + ".queue"))
    lock = _lock_descriptor(path.with_name(path.name + ".lock"))
    try:
        if queue is not None and lock is not None:
            _wait(lambda: _try_flock(queue, fcntl.LOCK_EX), path, deadline, wait_s)
            try:
                _wait(lambda: _try_flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX), path, deadline, wait_s)
            finally:
                os.close(queue)
                queue = None
        yield
    finally:
        for descriptor in (queue, lock):
            if descriptor is not None:
                os.close(descriptor)  # closing drops the lock


def _try_flock(descriptor: int, mode: int) -> bool | None:
    try:
        fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return None


def _lock_descriptor(lock_path: Path) -> int | None:
    """A lock file's descriptor; None where it cannot be made (a read-only folder: then only readers come)."""
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(lock_path, flags, 0o644)
        except OSError:
            continue
    return None


def _try_open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection | None:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            return None  # held by a process that is not EnviroLLM
        raise _open_error(path, exc) from None
    except duckdb.Error as exc:
        raise _open_error(path, exc) from None


def _open_error(path: Path, exc: duckdb.Error) -> UsageError:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not a valid DuckDB database file" in message:
        return UsageError(f"{path} is not an EnviroLLM database (not a DuckDB file); pass another --db")
    if "read-only mode: database does not exist" in message:
        return UsageError(f"no database at {path}")
    return database_error(path, exc)
