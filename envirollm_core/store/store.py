"""The results store: every run, its samples, batches and machine fingerprints in one DuckDB file.

Several processes share the file (the app, a CLI batch, an export): every
method opens its own short connection (see `connection`), reads read-only,
and writes in one transaction, so a run is stored whole or not at all.
Read-only mode (`ENVIROLLM_READ_ONLY=1`, `read_only` in the settings, or
`read_only=True`) turns every write into a `ReadOnlyError`; `read_only=False`
cannot turn the instance's mode off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.machines import UNKNOWN_MACHINE, machine_key
from envirollm_core.paths import default_db_path
from envirollm_core.records import RunResult, TracePoint
from envirollm_core.settings import ensure_writable, read_only_mode
from envirollm_core.store import schema
from envirollm_core.store.codec import (
    RUN_TABLE_SCHEMA,
    TRACE_FIELDS,
    EncodedRuns,
    canonical_json,
    decode_run,
    decode_trace,
    encode_runs,
    finite_or_none,
    to_utc_naive,
)
from envirollm_core.store.connection import connect, damage_note, one, transaction
from envirollm_core.store.errors import DamagedDatabaseError, ReadOnlyError, UnknownRunError
from envirollm_core.store.exchange import EXPORT_CHUNK_RUNS, ExportFormat, ImportReport, read_runs_file, write_runs_file

# What `runs_frame` returns by default: every scalar field but the long texts, plus a short prompt.
PREVIEW_CHARS = 80
FRAME_COLUMNS: tuple[str, ...] = tuple(
    name for name in RUN_TABLE_SCHEMA
    if name not in ("prompt", "response", "components", "quality_detail")
)
FRAME_EXTRAS: tuple[str, ...] = ("prompt", "response", "components", "quality_detail", "environment")
# Derived from the run's stored environment (`machines.machine_key`): part of every configuration.
MACHINE_COLUMN = "machine"


def _frame(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """A query's result as a Polars frame (through Arrow, without copying row by row)."""
    return conn.sql(sql, params=params or None).pl()


def runs_to_frame(runs: Sequence[RunResult]) -> pl.DataFrame:
    """Runs that are not stored (an uploaded file) as the frame `Store.runs_frame()` gives, newest first."""
    encoded = encode_runs(runs)
    return _with_machine(
        encoded.runs.select(*FRAME_COLUMNS, pl.col("prompt").str.slice(0, PREVIEW_CHARS).alias("prompt_preview")),
        encoded.environments.select("id", "environment"),
    ).sort("created_at", descending=True, maintain_order=True)


# Files this process has read whole (checked) before writing to them.
_checked_files: set[str] = set()

# Tables read whole by the check: every column of every row, so every block's checksum is verified.
CHECKED_TABLES: tuple[str, ...] = ("schema_version", "environments", "batches", "runs", "trace")


def check_database(path: Path) -> None:
    """Read every block of `path`; a damaged one is a `DamagedDatabaseError` (and the file is marked: `connect`
    turns DuckDB's error into it)."""
    with connect(path, read_only=True) as conn:
        present = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for table in CHECKED_TABLES:
            if table in present:
                conn.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {table}").fetchall()


SHORT_ID_MIN_CHARS = 8


def shortest_unique_prefixes(ids: Sequence[str], among: Sequence[str], minimum: int = SHORT_ID_MIN_CHARS) -> list[str]:
    """Each of `ids` cut to its shortest prefix (at least `minimum` characters) that no other id of `among`
    starts with, as git shortens hashes: imported runs whose UUIDs differ only at the end stay nameable."""
    ordered = sorted(set(among) | set(ids))
    position = {run_id: index for index, run_id in enumerate(ordered)}

    def common(a: str, b: str) -> int:
        length = 0
        for x, y in zip(a, b):
            if x != y:
                break
            length += 1
        return length

    shortened = []
    for run_id in ids:
        index = position[run_id]
        neighbours = ordered[max(0, index - 1):index] + ordered[index + 1:index + 2]
        needed = max((common(run_id, other) + 1 for other in neighbours), default=0)
        shortened.append(run_id[:max(minimum, needed)])
    return shortened


def with_short_ids(frame: pl.DataFrame, among: Sequence[str] | None = None) -> pl.DataFrame:
    """The frame with `short_id` beside its `id` (unique among `among`, by default the frame's own ids)."""
    ids = frame["id"].to_list()
    return frame.with_columns(
        pl.Series("short_id", shortest_unique_prefixes(ids, ids if among is None else among), dtype=pl.String)
    )


def _with_machine(frame: pl.DataFrame, environments: pl.DataFrame, *, keep_environment_id: bool = True) -> pl.DataFrame:
    """The frame with a `machine` column, the fingerprint of each run's environment (through `environment_id`):
    environments are few, so each is read once, not once per run."""
    keys = {row["id"]: machine_key(row["environment"]) for row in environments.iter_rows(named=True)}
    machine = pl.col("environment_id").replace_strict(keys, default=UNKNOWN_MACHINE, return_dtype=pl.String)
    frame = frame.with_columns(machine.alias(MACHINE_COLUMN))
    return frame if keep_environment_id else frame.drop("environment_id")



class Store:
    """One DuckDB results file. Cheap to make; holds no connection between calls."""

    def __init__(self, path: Path | None = None, *, read_only: bool | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.read_only = read_only_mode() if read_only is None else read_only
        if self.path.is_dir():
            raise UsageError(f"{self.path} is a directory, not a database file")
        if self.path.exists():
            with self._read() as conn:
                if schema.check_version(conn, read_only=self.read_only) == schema.SCHEMA_VERSION:
                    return  # the usual case: no write lock needed just to open the store
        if self.read_only:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        with connect(self.path, read_only=False) as conn:
            schema.migrate(conn)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, read_only={self.read_only})"

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.exists():
            # Nothing stored yet: an empty in-memory database with the same tables answers every query.
            conn = duckdb.connect(":memory:")
            try:
                schema.migrate(conn)
                yield conn
            finally:
                conn.close()
            return
        with connect(self.path, read_only=True) as conn:
            yield conn

    @classmethod
    def for_reading(cls, path: Path | None, *, given: bool) -> Store:
        """A store that reading (list, export, compare...) never creates: a file named by the user (`given`) that
        does not exist is a one-line error; the default one, not made yet, reads as empty."""
        store_path = Path(path).expanduser() if path is not None else default_db_path()
        if not store_path.exists():
            if given:
                raise UsageError(f"no database at {store_path}: check --db (reading commands never create one)")
            return cls(store_path, read_only=True)
        return cls(store_path)

    @classmethod
    def for_writing(cls, path: Path | None, action: str) -> Store:
        """The store of a command or page action that will write: in read-only mode it is refused here, once,
        with a one-line `ReadOnlyError`, before any server is asked or engine started (every write refuses
        again all the same)."""
        ensure_writable(action)
        return cls(path)

    def require_writable(self, action: str) -> None:
        """Raise `ReadOnlyError` now, before work whose result could not be stored.

        The instance's read-only mode is asked at each write, whatever this store was opened with: no caller
        can opt out of it (`read_only=False`), and a mode switched on after the store was made holds."""
        ensure_writable(action)
        if self.read_only:
            raise ReadOnlyError(action, "the database was opened read-only")

    @contextmanager
    def _write(self, action: str) -> Iterator[duckdb.DuckDBPyConnection]:
        self.require_writable(action)
        self.require_healthy()
        with connect(self.path, read_only=False) as conn, transaction(conn):
            yield conn

    def require_healthy(self) -> None:
        """Refuse to write to a database that failed its check: a write could only spread the damage.

        Each process reads the whole file once, before its first write to it (every block's checksum is
        verified on reading); a damage found by any read later is remembered beside the file."""
        key = str(self.path.resolve())
        if self.path.exists() and key not in _checked_files:
            check_database(self.path)
            _checked_files.add(key)
        note = damage_note(self.path)
        if note is not None:
            raise DamagedDatabaseError(
                f"the database {self.path} failed its check ({note[:160]}); writes are refused until it is repaired:"
                f" run `envirollm doctor --db {self.path} --copy-to NEW.duckdb`, then use the copy"
            )

    # -- writing -----------------------------------------------------------------------------

    def add_run(self, run: RunResult) -> None:
        """Store one run with its components and samples, atomically; its id must be new."""
        added, _ = self.add_runs([run], skip_existing=False)
        assert added == 1

    def add_run_or_keep(self, run: RunResult) -> Path | None:
        """Store one run; when the database cannot take it (damaged, full disk...), keep it in a recovery file
        beside the database instead and return that file's path, so a measurement is never lost. Read-only
        mode is not a failure to work around: it is raised."""
        try:
            self.add_run(run)
            return None
        except ReadOnlyError:
            raise
        except EnviroLLMError as exc:  # damaged, full, unwritable, or locked past the wait
            from envirollm_core.store.recovery import keep_run

            return keep_run(self.path, run, str(exc))

    def add_runs(self, runs: Sequence[RunResult], *, skip_existing: bool = False) -> tuple[int, int]:
        """Store many runs in one transaction; returns (added, skipped because their id was stored)."""
        return self.add_encoded(encode_runs(runs), skip_existing=skip_existing)

    def add_encoded(self, encoded: EncodedRuns, *, skip_existing: bool = False) -> tuple[int, int]:
        """The bulk path under `add_runs`: frames in the layout `codec.encode_runs` makes."""
        ids = encoded.runs["id"]
        if ids.n_unique() != len(ids):
            raise UsageError(f"run id {ids.filter(ids.is_duplicated())[0]!r} appears twice")
        with self._write("storing runs") as conn:
            present = self._present_ids(conn, ids)
            if present and not skip_existing:
                raise UsageError(f"run {sorted(present)[0]!r} is already stored")
            runs = encoded.runs.filter(~pl.col("id").is_in(list(present))) if present else encoded.runs
            if runs.height:
                self._append(conn, runs, encoded.trace, encoded.environments)
            return runs.height, len(present)

    @staticmethod
    def _present_ids(conn: duckdb.DuckDBPyConnection, ids: pl.Series) -> set[str]:
        conn.register("incoming_ids", pl.DataFrame({"id": ids}))
        try:
            rows = conn.execute("SELECT id FROM runs WHERE id IN (SELECT id FROM incoming_ids)").fetchall()
        finally:
            conn.unregister("incoming_ids")
        return {row[0] for row in rows}

    @staticmethod
    def _append(
        conn: duckdb.DuckDBPyConnection, runs: pl.DataFrame, trace: pl.DataFrame, environments: pl.DataFrame
    ) -> None:
        columns = ", ".join(RUN_TABLE_SCHEMA)
        conn.register("new_runs", runs)
        conn.register("new_environments", environments)
        try:
            conn.execute(
                "INSERT INTO environments SELECT id, environment, first_seen FROM new_environments"
                " ON CONFLICT DO NOTHING"
            )
            conn.execute(
                """INSERT INTO batches
                   SELECT batch_id, min(created_at), arg_min(environment_id, created_at)
                   FROM new_runs GROUP BY batch_id ON CONFLICT DO NOTHING"""
            )
            # Runs go in oldest first, so run_seq (and with it the samples' place on disk) follows time.
            returned = conn.execute(
                f"INSERT INTO runs ({columns}) SELECT {columns} FROM new_runs ORDER BY created_at"
                " RETURNING id, run_seq"
            ).fetchall()
        finally:
            conn.unregister("new_runs")
            conn.unregister("new_environments")
        if trace.height == 0:
            return
        seqs = pl.DataFrame(returned, schema={"run_id": pl.String, "run_seq": pl.Int64}, orient="row")
        samples = (
            trace.join(seqs, on="run_id", how="inner")
            .select("run_seq", *TRACE_FIELDS)
            .sort("run_seq", "t_s", maintain_order=True)
        )
        conn.register("new_samples", samples)
        try:
            conn.execute("INSERT INTO trace SELECT * FROM new_samples")
        finally:
            conn.unregister("new_samples")

    def add_sweep_level(self, sweep: Any, level: Any) -> None:
        """Store one finished level of a load sweep (`bench.sweep.SweepResult`, `LevelResult`)."""
        from envirollm_core.benchmark.sweep import level_rows

        (row,) = [r for r in level_rows(sweep) if r["concurrency"] == level.concurrency]
        row["created_at"] = to_utc_naive(row["created_at"])
        row["components"] = [{**c, "energy_wh": finite_or_none(c["energy_wh"])} for c in row["components"]]
        row = {k: finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()}
        columns = ", ".join(row)
        with self._write("storing a load sweep level") as conn:
            conn.execute(f"INSERT INTO sweep_levels ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def sweep_levels(self, sweep_id: str | None = None) -> pl.DataFrame:
        """Every stored load sweep level (one row per sweep and level), newest sweep first, levels rising;
        `created_at` is naive UTC."""
        where, params = (" WHERE sweep_id = ?", [sweep_id]) if sweep_id else ("", [])
        with self._read() as conn:
            return _frame(conn, f"SELECT * FROM sweep_levels{where} ORDER BY created_at DESC, sweep_id, concurrency",
                          params)

    def set_quality(self, runs: Sequence[RunResult]) -> None:
        """Write the quality fields (score, method, detail) of stored runs: a batch's runs are stored one by
        one as they finish, and graded after the last."""
        rows = [
            (finite_or_none(run.quality_score), run.quality_method, canonical_json(run.quality_detail), run.id)
            for run in runs
        ]
        if not rows:
            return
        with self._write("storing quality scores") as conn:
            conn.executemany(
                "UPDATE runs SET quality_score = ?, quality_method = ?, quality_detail = ? WHERE id = ?", rows
            )

    def set_energy(self, runs: Sequence[RunResult]) -> None:
        """Write the energy fields of stored runs: runs too short to measure alone (remote energy) are stored
        as they finish, and given their share of their batch's energy after the last."""
        columns = ("energy_wh", "energy_net_wh", "energy_per_token_wh", "energy_uncertainty_wh", "components", "avg_power_w")
        if not runs:
            return
        frame = encode_runs(runs).runs.select("id", *columns)
        with self._write("storing energy") as conn:
            conn.register("new_energy", frame)
            try:
                assignments = ", ".join(f"{name} = new_energy.{name}" for name in columns)
                conn.execute(f"UPDATE runs SET {assignments} FROM new_energy WHERE runs.id = new_energy.id")
            finally:
                conn.unregister("new_energy")

    def delete_run(self, run_id: str) -> None:
        """Delete one run and its samples."""
        with self._write("deleting a run") as conn:
            row = one(conn, "SELECT run_seq FROM runs WHERE id = ?", [run_id])
            if row is None:
                raise UnknownRunError(f"no stored run has id {run_id!r}")
            conn.execute("DELETE FROM trace WHERE run_seq = ?", [row[0]])
            conn.execute("DELETE FROM runs WHERE run_seq = ?", [row[0]])
            conn.execute("DELETE FROM batches WHERE id NOT IN (SELECT batch_id FROM runs)")

    def clean(self) -> int:
        """Delete every run, sample and batch; returns how many runs there were."""
        with self._write("deleting all runs") as conn:
            (count,) = one(conn, "SELECT count(*) FROM runs")
            for table in ("trace", "runs", "batches", "environments"):
                conn.execute(f"DELETE FROM {table}")
            return count

    def set_note(self, run_id: str, text: str) -> None:
        """Replace a run's note (an empty text clears it)."""
        with self._write("changing a note") as conn:
            if one(conn, "SELECT 1 FROM runs WHERE id = ?", [run_id]) is None:
                raise UnknownRunError(f"no stored run has id {run_id!r}")
            conn.execute("UPDATE runs SET notes = ? WHERE id = ?", [text, run_id])

    # -- reading -----------------------------------------------------------------------------

    @staticmethod
    def _filters(
        prompt_hash: str | None = None, model: str | None = None, batch_id: str | None = None
    ) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column, value in (("prompt_hash", prompt_hash), ("model", model), ("batch_id", batch_id)):
            if value is not None:
                clauses.append(f"r.{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    @staticmethod
    def _limit(limit: int | None) -> str:
        if limit is None:
            return ""
        if limit < 0:
            raise UsageError(f"a limit must be 0 or more, not {limit}")
        return f" LIMIT {int(limit)}"

    def count(self) -> int:
        with self._read() as conn:
            return one(conn, "SELECT count(*) FROM runs")[0]

    def energy_sources(self) -> set[str]:
        """Where the completed runs' energy came from (`counter`, `estimate`...), over every component."""
        with self._read() as conn:
            rows = conn.sql(
                "SELECT DISTINCT c.source FROM (SELECT unnest(components) AS c FROM runs WHERE status = 'ok')"
            ).fetchall()
        return {source for (source,) in rows}

    def runs(
        self,
        prompt_hash: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        *,
        batch_id: str | None = None,
        with_trace: bool = False,
    ) -> list[RunResult]:
        """Stored runs, newest first; samples only when `with_trace` (they can be many)."""
        where, params = self._filters(prompt_hash, model, batch_id)
        with self._read() as conn:
            return self._fetch_runs(
                conn, f"{where} ORDER BY r.created_at DESC, r.run_seq DESC{self._limit(limit)}", params, with_trace
            )

    def run(self, run_id: str) -> RunResult:
        """One run with its samples."""
        with self._read() as conn:
            found = self._fetch_runs(conn, " WHERE r.id = ?", [run_id], with_trace=True)
        if not found:
            raise UnknownRunError(f"no stored run has id {run_id!r}")
        return found[0]

    def iter_runs(self, chunk_size: int = 2000, **filters: str | None) -> Iterator[list[RunResult]]:
        """Every matching run with its samples, oldest first, in chunks; each chunk is its own short read,
        so a long export never holds the file's lock for long."""
        where, params = self._filters(**filters)
        joiner = " AND " if where else " WHERE "
        last_seq = 0
        while True:
            with self._read() as conn:
                rows = self._fetch_runs(
                    conn,
                    f"{where}{joiner}r.run_seq > ? ORDER BY r.run_seq LIMIT {int(chunk_size)}",
                    [*params, last_seq],
                    with_trace=True,
                    keep_seq=True,
                )
            if not rows:
                return
            last_seq = rows[-1][0]
            yield [run for _, run in rows]

    @staticmethod
    def _fetch_runs(
        conn: duckdb.DuckDBPyConnection,
        tail_sql: str,
        params: list[Any],
        with_trace: bool,
        keep_seq: bool = False,
    ) -> list[Any]:
        rows = _frame(
            conn,
            f"SELECT r.*, e.environment AS environment_json FROM runs r"
            f" LEFT JOIN environments e ON e.id = r.environment_id{tail_sql}",
            params,
        ).to_dicts()
        traces: dict[int, list[dict[str, Any]]] = {}
        if with_trace and rows:
            seqs = pl.DataFrame({"run_seq": [row["run_seq"] for row in rows]}, schema={"run_seq": pl.Int64})
            conn.register("wanted_seqs", seqs)
            try:
                samples = _frame(
                    conn, "SELECT * FROM trace WHERE run_seq IN (SELECT run_seq FROM wanted_seqs) ORDER BY run_seq, t_s"
                ).to_dicts()
            finally:
                conn.unregister("wanted_seqs")
            for sample in samples:
                traces.setdefault(sample["run_seq"], []).append(sample)
        decoded = [
            (row["run_seq"], decode_run(row, row["environment_json"], decode_trace(traces.get(row["run_seq"], []))))
            for row in rows
        ]
        return decoded if keep_seq else [run for _, run in decoded]

    def runs_frame(
        self,
        prompt_hash: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        *,
        batch_id: str | None = None,
        columns: Sequence[str] | None = None,
        extra: Sequence[str] = (),
    ) -> pl.DataFrame:
        """One row per run, newest first, for analysis and pages: by default every scalar field and
        `prompt_preview` (the prompt's first characters); `columns` narrows that (fewer columns read is
        faster on a big database), `extra` adds any of `FRAME_EXTRAS`. `created_at` is naive UTC."""
        chosen = [*(FRAME_COLUMNS + ("prompt_preview", MACHINE_COLUMN) if columns is None else columns), *extra]
        allowed = {*FRAME_COLUMNS, "prompt_preview", MACHINE_COLUMN, *FRAME_EXTRAS}
        unknown = sorted(set(chosen) - allowed)
        if unknown:
            raise UsageError(f"unknown column(s) {', '.join(unknown)} for a runs frame")
        expressions = {
            "prompt_preview": f"substr(r.prompt, 1, {PREVIEW_CHARS}) AS prompt_preview",
            "environment": "e.environment",
        }
        wants_machine = MACHINE_COLUMN in chosen
        queried = [name for name in dict.fromkeys(chosen) if name != MACHINE_COLUMN]
        extra_id = wants_machine and "environment_id" not in queried
        if extra_id:
            queried.append("environment_id")
        selected = ", ".join(expressions.get(name, f"r.{name}") for name in queried)
        join = " LEFT JOIN environments e ON e.id = r.environment_id" if "environment" in chosen else ""
        where, params = self._filters(prompt_hash, model, batch_id)
        with self._read() as conn:
            frame = _frame(
                conn,
                f"SELECT {selected} FROM runs r{join}{where}"
                f" ORDER BY r.created_at DESC, r.run_seq DESC{self._limit(limit)}",
                params,
            )
            if wants_machine:
                environments = _frame(conn, "SELECT id, environment FROM environments")
                frame = _with_machine(frame, environments, keep_environment_id=not extra_id)
        return frame.select(list(dict.fromkeys(chosen))) if wants_machine else frame

    def trace(self, run_id: str) -> list[TracePoint]:
        """A run's samples in time order."""
        return decode_trace(self.trace_frame(run_id).to_dicts())

    def trace_frame(self, run_id: str) -> pl.DataFrame:
        """A run's samples as a frame (columns of `TracePoint`), in time order."""
        with self._read() as conn:
            row = one(conn, "SELECT run_seq FROM runs WHERE id = ?", [run_id])
            if row is None:
                raise UnknownRunError(f"no stored run has id {run_id!r}")
            # A constant run_seq lets DuckDB skip every row group whose min/max cannot hold it.
            return _frame(
                conn, f"SELECT {', '.join(TRACE_FIELDS)} FROM trace WHERE run_seq = ? ORDER BY t_s", [row[0]]
            )

    def batches(self, limit: int | None = None) -> pl.DataFrame:
        """One row per batch, newest first: when it ran, how many runs, which models and presets."""
        with self._read() as conn:
            return _frame(
                conn,
                # The newest batches are chosen from the small batches table first, so only their runs are read.
                f"""WITH chosen AS (SELECT id, environment_id FROM batches ORDER BY created_at DESC{self._limit(limit)})
                    SELECT r.batch_id, min(r.created_at) AS started_at, max(r.created_at) AS last_run_at,
                           count(*) AS n_runs, count(*) FILTER (r.status = 'ok') AS n_ok,
                           count(*) FILTER (r.status <> 'ok') AS n_failed,
                           list(DISTINCT r.model ORDER BY r.model) AS models,
                           list(DISTINCT r.preset ORDER BY r.preset) FILTER (r.preset IS NOT NULL) AS presets,
                           count(DISTINCT r.prompt_hash) AS n_prompts, any_value(b.environment_id) AS environment_id
                    FROM runs r JOIN chosen b ON b.id = r.batch_id
                    GROUP BY r.batch_id ORDER BY started_at DESC""",
            )

    def prompt_groups(self) -> pl.DataFrame:
        """One row per prompt (by `prompt_hash`), most recently used first."""
        with self._read() as conn:
            return _frame(
                conn,
                f"""SELECT prompt_hash, arg_max(prompt, created_at) AS prompt,
                           substr(arg_max(prompt, created_at), 1, {PREVIEW_CHARS}) AS prompt_preview,
                           arg_max(preset, created_at) AS preset, count(*) AS n_runs,
                           count(DISTINCT model) AS n_models, max(created_at) AS last_run_at
                    FROM runs GROUP BY prompt_hash ORDER BY last_run_at DESC""",
            )

    def with_short_ids(self, frame: pl.DataFrame) -> pl.DataFrame:
        """A runs frame with `short_id`: each id's shortest prefix unique in the whole database (>= 8 chars)."""
        with self._read() as conn:
            stored = [row[0] for row in conn.execute("SELECT id FROM runs").fetchall()]
        return with_short_ids(frame, stored)

    def environment(self, environment_id: str) -> dict[str, Any]:
        with self._read() as conn:
            row = one(conn, "SELECT environment FROM environments WHERE id = ?", [environment_id])
        if row is None:
            raise UsageError(f"no stored environment has id {environment_id!r}")
        return json.loads(row[0])

    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The full id of the one run whose id is, or starts with, `id_or_prefix` (as `list` shows them)."""
        if not id_or_prefix:
            raise UsageError("a run id must not be empty")
        with self._read() as conn:
            if one(conn, "SELECT 1 FROM runs WHERE id = ?", [id_or_prefix]):
                return id_or_prefix
            matches = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM runs WHERE starts_with(id, ?) ORDER BY id LIMIT 3", [id_or_prefix]
                ).fetchall()
            ]
        if not matches:
            raise UnknownRunError(f"no stored run has an id starting with {id_or_prefix!r}")
        if len(matches) > 1:
            raise UnknownRunError(f"{id_or_prefix!r} matches several runs ({', '.join(matches[:2])}, ...); give more of the id")
        return matches[0]

    # -- exchange ----------------------------------------------------------------------------

    def export(
        self, path: Path, fmt: ExportFormat = "csv", *, prompt_hash: str | None = None, model: str | None = None
    ) -> int:
        """Write the runs (the original EnviroLLM columns first, then ours) to `path`; returns how many."""
        chunks = self.iter_runs(EXPORT_CHUNK_RUNS, prompt_hash=prompt_hash, model=model)
        return write_runs_file(chunks, Path(path), fmt)

    def import_file(self, path: Path) -> ImportReport:
        """Validate a whole export file, then add its runs in one transaction; ids already stored are skipped."""
        self.require_writable("importing runs")
        parsed = read_runs_file(Path(path))
        added, skipped = self.add_runs(parsed.runs, skip_existing=True)
        return ImportReport(path=str(path), format=parsed.format, added=added, skipped_existing=skipped)
