"""An old database file opens and is brought forward without losing anything."""

import duckdb
import pytest

from envirollm_core.errors import UsageError
from envirollm_core.store import Store, schema
from envirollm_core.store.codec import RUN_TABLE_SCHEMA, canonical_json, encode_runs


def _version_1_file(path, runs) -> None:
    """A file as version 1 of the schema made it: the first migration only, environments inline."""
    encoded = encode_runs(runs)
    environments = dict(zip(encoded.environments["id"], encoded.environments["environment"]))
    v1_runs = encoded.runs.with_columns(encoded.runs["environment_id"].replace_strict(environments).alias("environment"))
    with duckdb.connect(str(path)) as conn:
        schema.migrate(conn, target=1)
        v1_columns = {row[0] for row in conn.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'").fetchall()}
        names = (name if name != "environment_id" else "environment" for name in RUN_TABLE_SCHEMA)
        columns = ", ".join(name for name in names if name in v1_columns)  # later migrations added the others
        conn.register("v1_runs", v1_runs)
        conn.execute(f"INSERT INTO runs ({columns}) SELECT {columns} FROM v1_runs")
        conn.execute("INSERT INTO batches SELECT batch_id, min(created_at) FROM v1_runs GROUP BY batch_id")
        seqs = dict(conn.execute("SELECT id, run_seq FROM runs").fetchall())
        for run in runs:
            for point in run.trace:
                conn.execute("INSERT INTO trace (run_seq, t_s, cpu_percent, gpu_power_w) VALUES (?, ?, ?, ?)",
                             [seqs[run.id], point.t_s, point.cpu_percent, point.gpu_power_w])


def test_a_version_1_file_migrates_and_keeps_every_run(tmp_path, make_run):
    path = tmp_path / "old.duckdb"
    other_machine = {"cpu_model": "Other CPU", "ram_total_gb": 8.0}
    v1 = {"source": None, "client": None, "live_detail": {}}  # fields that later migrations added
    runs = [make_run(**v1), make_run(**v1), make_run(environment=other_machine, **v1)]
    for run in runs:  # version 1 is written here with only three trace columns
        run.trace[:] = [type(point)(t_s=point.t_s, cpu_percent=point.cpu_percent, gpu_power_w=point.gpu_power_w)
                        for point in run.trace]
    _version_1_file(path, runs)
    with duckdb.connect(str(path), read_only=True) as conn:
        assert schema.schema_version(conn) == 1

    store = Store(path)

    with duckdb.connect(str(path), read_only=True) as conn:
        assert schema.schema_version(conn) == schema.SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM environments").fetchall() == [(2,)]
        assert [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()] == \
            list(range(1, schema.SCHEMA_VERSION + 1))
        # runs made before the engine's threads were recorded: unknown, not a made-up count
        assert conn.execute("SELECT count(*) FROM runs WHERE engine_threads IS NOT NULL").fetchall() == [(0,)]
    by_id = {run.id: run for run in store.runs(with_trace=True)}
    for run in runs:
        assert by_id[run.id] == run
    batch = store.batches().filter(store.batches()["batch_id"] == runs[0].batch_id).row(0, named=True)
    assert store.environment(batch["environment_id"]) == runs[0].environment
    store.add_run(make_run(environment=other_machine))  # new runs share the migrated fingerprint
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM environments").fetchall() == [(2,)]


def test_the_environment_id_is_the_same_in_sql_and_python(tmp_path):
    text = canonical_json({"cpu": "é", "n": [1, 2.5]})
    with duckdb.connect() as conn:
        (sql_id,) = conn.execute(f"SELECT {schema.ENVIRONMENT_ID_SQL.format(json='?')}", [text]).fetchall()[0]
    from envirollm_core.store.codec import environment_id

    assert sql_id == environment_id(text)


def test_read_only_cannot_migrate(tmp_path, make_run):
    path = tmp_path / "old.duckdb"
    _version_1_file(path, [make_run()])
    with pytest.raises(UsageError, match="needs migrating"):
        Store(path, read_only=True)
    Store(path)
    assert Store(path, read_only=True).count() == 1


def test_a_migration_step_is_all_or_nothing(tmp_path, monkeypatch, make_run):
    path = tmp_path / "old.duckdb"
    _version_1_file(path, [make_run()])

    def broken_step(conn):
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("power cut")

    monkeypatch.setattr(schema, "MIGRATIONS", (schema.MIGRATIONS[0], broken_step))
    with pytest.raises(RuntimeError):
        Store(path)
    with duckdb.connect(str(path), read_only=True) as conn:
        assert schema.schema_version(conn) == 1
        tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "half_done" not in tables and "environments" not in tables


def _run_columns(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'").fetchall()}


def test_every_run_column_a_migration_adds_is_registered_for_import(tmp_path):
    """An export from before a migration lacks its columns; the import can fill only those it knows of
    (schema.RUN_COLUMNS_ADDED_BY), so each migration past the first export's version must list what it adds."""
    with duckdb.connect(str(tmp_path / "steps.duckdb")) as conn:
        schema.migrate(conn, target=schema.FIRST_EXPORT_VERSION)
        before = _run_columns(conn)
        for version in range(schema.FIRST_EXPORT_VERSION, schema.SCHEMA_VERSION):
            schema.migrate(conn, target=version + 1)
            after = _run_columns(conn)
            migration = schema.MIGRATIONS[version]
            assert after - before == set(schema.RUN_COLUMNS_ADDED_BY.get(migration, ())), migration.__name__
            before = after
    assert schema.run_columns_added_after(schema.FIRST_EXPORT_VERSION) == {
        column: schema.MIGRATIONS.index(migration) + 1
        for migration, columns in schema.RUN_COLUMNS_ADDED_BY.items() for column in columns}
