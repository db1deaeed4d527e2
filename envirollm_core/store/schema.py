"""The database schema, versioned, and the forward migrations between versions.

`MIGRATIONS[i]` takes a database from version `i` to version `i + 1`; a file
of any older version is brought up to `SCHEMA_VERSION` on opening, each step
in its own transaction. Migrations are append-only: never edit one that has
shipped, add the next.

Layout (version 2):
- `runs`: one row per `RunResult`; `run_seq` is an increasing integer given
  on insert, so a run's samples in `trace` sit together on disk and DuckDB's
  min/max zone maps find them without an index; `components` is a list of
  structs; `quality_detail` is JSON text; `created_at` is UTC.
- `trace`: the samples of every run, keyed by `run_seq`.
- `batches`: one row per batch (first seen, its environment).
- `environments`: machine fingerprints (JSON), stored once, named by a hash.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from envirollm_core.errors import UsageError
from envirollm_core.store.connection import one, transaction

SCHEMA_VERSION = 6

COMPONENT_TYPE = "STRUCT(component VARCHAR, energy_wh DOUBLE, source VARCHAR, note VARCHAR)[]"

_RUN_COLUMNS_SQL = f"""
    run_seq BIGINT NOT NULL DEFAULT nextval('run_seq'),
    id VARCHAR PRIMARY KEY,
    batch_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    backend VARCHAR NOT NULL,
    base_url VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,
    prompt_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    preset VARCHAR,
    repeat_index INTEGER NOT NULL,
    error VARCHAR,
    ttft_s DOUBLE,
    e2e_s DOUBLE,
    decode_tps DOUBLE,
    server_decode_tps DOUBLE,
    server_prompt_tps DOUBLE,
    itl_p50_s DOUBLE,
    itl_p95_s DOUBLE,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    reasoning_tokens BIGINT,
    token_count_source VARCHAR,
    finish_reason VARCHAR,
    energy_wh DOUBLE,
    energy_net_wh DOUBLE,
    energy_per_token_wh DOUBLE,
    components {COMPONENT_TYPE} NOT NULL,
    avg_power_w DOUBLE,
    peak_power_w DOUBLE,
    cpu_percent_avg DOUBLE,
    ram_used_mb_peak DOUBLE,
    server_peak_rss_mb DOUBLE,
    server_gpu_mem_mb DOUBLE,
    quantization VARCHAR,
    quantization_source VARCHAR,
    temperature DOUBLE,
    max_tokens BIGINT,
    seed BIGINT,
    response VARCHAR NOT NULL,
    {{environment_column}},
    quality_score DOUBLE,
    quality_method VARCHAR,
    quality_detail VARCHAR NOT NULL,
    notes VARCHAR NOT NULL
"""

_TRACE_SQL = """
CREATE TABLE trace (
    run_seq BIGINT NOT NULL,
    t_s DOUBLE NOT NULL,
    cpu_percent DOUBLE,
    ram_used_mb DOUBLE,
    cpu_power_w DOUBLE,
    gpu_power_w DOUBLE,
    gpu_util_percent DOUBLE,
    gpu_mem_used_mb DOUBLE,
    gpu_temp_c DOUBLE
)
"""


def _to_v1(conn: duckdb.DuckDBPyConnection) -> None:
    """The first schema: runs (environment inline as JSON text), their traces, batches."""
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, migrated_at TIMESTAMP NOT NULL)")
    conn.execute("CREATE SEQUENCE run_seq START 1")
    columns = _RUN_COLUMNS_SQL.format(environment_column="environment VARCHAR NOT NULL")
    conn.execute(f"CREATE TABLE runs ({columns})")
    conn.execute(_TRACE_SQL)
    conn.execute("CREATE TABLE batches (id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL)")


def _to_v2(conn: duckdb.DuckDBPyConnection) -> None:
    """Environment fingerprints stored once in their own table, named by a hash of their JSON."""
    conn.execute(
        "CREATE TABLE environments (id VARCHAR PRIMARY KEY, environment VARCHAR NOT NULL,"
        " first_seen TIMESTAMP NOT NULL)"
    )
    conn.execute(
        f"""INSERT INTO environments
            SELECT {ENVIRONMENT_ID_SQL.format(json='environment')} AS id, environment, min(created_at)
            FROM runs GROUP BY environment"""
    )
    conn.execute("ALTER TABLE runs ADD COLUMN environment_id VARCHAR")
    conn.execute(f"UPDATE runs SET environment_id = {ENVIRONMENT_ID_SQL.format(json='environment')}")
    conn.execute("ALTER TABLE runs DROP COLUMN environment")
    conn.execute("ALTER TABLE batches ADD COLUMN environment_id VARCHAR")
    conn.execute(
        """UPDATE batches SET environment_id = (
               SELECT any_value(environment_id) FROM runs WHERE runs.batch_id = batches.id)"""
    )


def _add_live_use_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Runs of real use through the metering proxy: where a run came from, which client sent it, and the
    request's details (text lengths, HTTP status, routing decision) as JSON text."""
    conn.execute("ALTER TABLE runs ADD COLUMN source VARCHAR")
    conn.execute("ALTER TABLE runs ADD COLUMN client VARCHAR")
    conn.execute("ALTER TABLE runs ADD COLUMN live_detail VARCHAR NOT NULL DEFAULT '{}'")


def _add_remote_energy_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """A bound on each run's energy error (remote energy from Prometheus: the scrape interval at each edge)."""
    conn.execute("ALTER TABLE runs ADD COLUMN energy_uncertainty_wh DOUBLE")


def _add_sweep_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Load sweeps: each run's concurrency level, each level's steady-state figures in `sweep_levels`;
    and the per-phase (prefill/decode) energy of single-stream runs."""
    conn.execute("ALTER TABLE runs ADD COLUMN sweep_concurrency BIGINT")
    for column in ("prefill_energy_wh", "decode_energy_wh", "phase_split_uncertainty_wh"):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column} DOUBLE")
    conn.execute(SWEEP_LEVELS_SQL)


SWEEP_LEVELS_SQL = f"""
CREATE TABLE sweep_levels (
    sweep_id VARCHAR NOT NULL,
    concurrency BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    backend VARCHAR NOT NULL,
    base_url VARCHAR NOT NULL,
    slo_ttft_s DOUBLE,
    slo_itl_s DOUBLE,
    requests BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    window_s DOUBLE,
    window_requests BIGINT NOT NULL,
    window_tokens DOUBLE NOT NULL,
    output_tps DOUBLE,
    requests_per_s DOUBLE,
    ttft_p50_s DOUBLE, ttft_p95_s DOUBLE, ttft_p99_s DOUBLE,
    itl_p50_s DOUBLE, itl_p95_s DOUBLE, itl_p99_s DOUBLE,
    e2e_p50_s DOUBLE, e2e_p95_s DOUBLE, e2e_p99_s DOUBLE,
    goodput_rps DOUBLE,
    goodput_fraction DOUBLE,
    energy_wh DOUBLE,
    energy_net_wh DOUBLE,
    energy_per_token_wh DOUBLE,
    energy_per_request_wh DOUBLE,
    components {COMPONENT_TYPE} NOT NULL,
    PRIMARY KEY (sweep_id, concurrency)
)
"""


def _add_engine_threads_column(conn: duckdb.DuckDBPyConnection) -> None:
    """The thread count of an engine EnviroLLM started (null for older runs and other servers: unknown)."""
    conn.execute("ALTER TABLE runs ADD COLUMN engine_threads INTEGER")


# The id of an environment: the first 16 hex characters of SHA-256 of its canonical JSON text.
ENVIRONMENT_ID_SQL = "left(sha256({json}), 16)"

MIGRATIONS: tuple[Callable[[duckdb.DuckDBPyConnection], None], ...] = (
    _to_v1, _to_v2, _add_live_use_columns, _add_remote_energy_columns,
    _add_sweep_columns, _add_engine_threads_column,
)
assert len(MIGRATIONS) == SCHEMA_VERSION

# The run columns each migration added after version 2, the schema of the first exports: an export written before
# a migration lacks its columns, and an import fills them with the field's default (`RunResult`'s: null, {}, "").
# A migration that adds run columns adds its line here (tests/store/test_migrations.py checks none is missed).
RUN_COLUMNS_ADDED_BY: dict[Callable[[duckdb.DuckDBPyConnection], None], tuple[str, ...]] = {
    _add_live_use_columns: ("source", "client", "live_detail"),
    _add_remote_energy_columns: ("energy_uncertainty_wh",),
    _add_sweep_columns: ("sweep_concurrency", "prefill_energy_wh", "decode_energy_wh", "phase_split_uncertainty_wh"),
    _add_engine_threads_column: ("engine_threads",),
}
FIRST_EXPORT_VERSION = 2


def run_columns_added_after(version: int) -> dict[str, int]:
    """Each run column added by a migration past `version`, with the schema version it arrived in."""
    return {column: MIGRATIONS.index(migration) + 1 for migration, columns in RUN_COLUMNS_ADDED_BY.items()
            for column in columns if MIGRATIONS.index(migration) >= version}


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version; 0 for an empty file."""
    tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "schema_version" not in tables:
        if tables:
            raise UsageError("the database holds tables but no schema_version: it was not made by EnviroLLM")
        return 0
    return one(conn, "SELECT coalesce(max(version), 0) FROM schema_version")[0]


def check_version(conn: duckdb.DuckDBPyConnection, *, read_only: bool) -> int:
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"the database has schema version {version}, newer than this EnviroLLM knows ({SCHEMA_VERSION});"
            " upgrade EnviroLLM"
        )
    if read_only and version < SCHEMA_VERSION:
        raise UsageError(
            f"the database has schema version {version} and needs migrating to {SCHEMA_VERSION};"
            " open it once without read-only mode"
        )
    return version


def migrate(conn: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database forward to `target`, one transaction per step; returns the old version."""
    old = check_version(conn, read_only=False)
    for version in range(old, target):
        with transaction(conn):
            MIGRATIONS[version](conn)
            conn.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [version + 1])
    return old
