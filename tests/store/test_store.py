import dataclasses
import math
from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl
import pytest

from envirollm_core.errors import UsageError
from envirollm_core.store import ReadOnlyError, Store, UnknownRunError, runs_to_frame
from envirollm_core.store.codec import RUN_TABLE_SCHEMA
from envirollm_core.store.schema import SCHEMA_VERSION
from tests.fakes.runs import assert_same_run


def test_a_run_comes_back_field_by_field(store, make_run):
    run = make_run()
    store.add_run(run)
    (back,) = store.runs(with_trace=True)
    assert_same_run(back, run)
    assert back.created_at.tzinfo is not None
    assert store.run(run.id) == run
    assert store.trace(run.id) == run.trace


def test_runs_without_trace_leave_it_empty(store, make_run):
    run = make_run()
    store.add_run(run)
    (back,) = store.runs()
    assert back.trace == [] and back.components == run.components


def test_the_database_has_a_column_for_every_field(store):
    """A field added to RunResult without a migration fails here, not in a user's database."""
    with duckdb.connect(str(store.path), read_only=True) as conn:
        columns = {row[0] for row in conn.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'").fetchall()}
    assert columns == set(RUN_TABLE_SCHEMA) | {"run_seq"}


def test_the_store_makes_its_directory_and_default_path(isolated_home, make_run):
    store = Store()
    assert store.path == isolated_home / "envirollm.duckdb" and store.path.exists()
    store.add_run(make_run())
    assert Store().count() == 1


def test_filters_order_and_limit(store, make_run):
    runs = [make_run() for _ in range(8)]
    store.add_runs(list(reversed(runs)))  # insertion order does not decide the listing order
    newest_first = [run.id for run in sorted(runs, key=lambda run: run.created_at, reverse=True)]
    assert [run.id for run in store.runs()] == newest_first
    assert [run.id for run in store.runs(limit=3)] == newest_first[:3]
    assert {run.id for run in store.runs(model="gemma3:1b")} == {run.id for run in runs if run.model == "gemma3:1b"}
    wanted = runs[0].prompt_hash
    assert {run.id for run in store.runs(prompt_hash=wanted)} == {run.id for run in runs if run.prompt_hash == wanted}
    assert {run.id for run in store.runs(batch_id="never")} == set()
    with pytest.raises(UsageError):
        store.runs(limit=-1)


def test_runs_frame_has_one_row_per_run_and_the_extras_asked_for(store, make_run):
    runs = [make_run() for _ in range(5)]
    store.add_runs(runs)
    frame = store.runs_frame()
    assert frame.height == 5
    assert "response" not in frame.columns and "prompt_preview" in frame.columns
    assert frame["prompt_preview"][0] == runs[-1].prompt[:80]
    assert frame["created_at"].dtype == pl.Datetime("us")
    assert frame["id"].to_list() == [run.id for run in reversed(runs)]
    extra = store.runs_frame(limit=1, extra=("response", "components", "environment"))
    assert extra["response"][0] == runs[-1].response
    assert extra["components"][0][0]["component"] == "cpu"
    narrow = store.runs_frame(columns=("id", "model", "prompt_preview"))
    assert narrow.columns == ["id", "model", "prompt_preview"] and narrow.height == 5
    with pytest.raises(UsageError, match="unknown column"):
        store.runs_frame(extra=("api_key",))


def test_runs_to_frame_matches_the_stored_frame(store, make_run):
    runs = [make_run() for _ in range(4)]
    store.add_runs(runs)
    assert runs_to_frame(runs).equals(store.runs_frame())


def test_a_run_id_is_stored_once(store, make_run):
    run = make_run()
    store.add_run(run)
    with pytest.raises(UsageError, match="already stored"):
        store.add_run(run)
    assert store.add_runs([run, make_run()], skip_existing=True) == (1, 1)
    with pytest.raises(UsageError, match="appears twice"):
        other = make_run()
        store.add_runs([other, other])


def test_bad_values_are_refused_before_writing(store, make_run):
    with pytest.raises(UsageError, match="status"):
        store.add_run(make_run(status="done"))
    with pytest.raises(UsageError, match="source"):
        store.add_run(make_run(components=[dataclasses.replace(make_run().components[0], source="guess")]))
    with pytest.raises(UsageError, match="model"):
        store.add_run(make_run(model=""))
    assert store.count() == 0


def test_not_a_number_is_stored_as_null(store, make_run):
    run = make_run(energy_wh=math.nan, avg_power_w=math.inf)
    store.add_run(run)
    back = store.run(run.id)
    assert back.energy_wh is None and back.avg_power_w is None


def test_a_naive_time_is_local_time(store, make_run):
    local = datetime(2025, 6, 1, 8, 30)
    run = make_run(created_at=local)
    store.add_run(run)
    assert store.run(run.id).created_at == local.astimezone(timezone.utc)


def test_delete_note_and_clean(store, make_run):
    runs = [make_run() for _ in range(3)]
    store.add_runs(runs)
    store.delete_run(runs[0].id)
    assert {run.id for run in store.runs()} == {runs[1].id, runs[2].id}
    with pytest.raises(UnknownRunError):
        store.trace(runs[0].id)
    with pytest.raises(UnknownRunError):
        store.delete_run(runs[0].id)
    store.set_note(runs[1].id, "slow: laptop on battery")
    assert store.run(runs[1].id).notes == "slow: laptop on battery"
    with pytest.raises(UnknownRunError):
        store.set_note("nope", "x")
    assert store.clean() == 2
    assert store.count() == 0 and store.batches().height == 0


def test_a_unique_prefix_names_a_run(store, make_run):
    first, second = make_run(id="abc-1"), make_run(id="abd-2")
    store.add_runs([first, second])
    assert store.resolve_run_id("abc") == "abc-1"
    assert store.resolve_run_id("abd-2") == "abd-2"
    with pytest.raises(UnknownRunError, match="several"):
        store.resolve_run_id("ab")
    with pytest.raises(UnknownRunError, match="no stored run"):
        store.resolve_run_id("zzz")


def test_batches_and_prompt_groups(store, make_run):
    runs = [make_run(batch_id="b1"), make_run(batch_id="b1", status="failed", error="HTTP 500"), make_run(batch_id="b2")]
    store.add_runs(runs)
    batches = store.batches()
    assert batches["batch_id"].to_list() == ["b2", "b1"]
    b1 = batches.filter(pl.col("batch_id") == "b1").row(0, named=True)
    assert (b1["n_runs"], b1["n_ok"], b1["n_failed"]) == (2, 1, 1)
    assert b1["environment_id"] is not None
    assert store.environment(b1["environment_id"]) == runs[0].environment
    groups = store.prompt_groups()
    assert set(groups["prompt_hash"]) == {run.prompt_hash for run in runs}
    assert groups["n_runs"].sum() == 3


def test_environments_are_stored_once(store, make_run):
    store.add_runs([make_run() for _ in range(5)])
    with duckdb.connect(str(store.path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM environments").fetchall() == [(1,)]


def test_the_samples_of_a_run_stay_in_time_order(store, make_run):
    run = make_run()
    run.trace.reverse()
    store.add_run(run)
    assert [point.t_s for point in store.trace(run.id)] == sorted(point.t_s for point in run.trace)


@pytest.mark.parametrize("how", ["env", "argument"])
def test_read_only_mode_refuses_every_write(tmp_path, monkeypatch, make_run, how):
    path = tmp_path / "shared.duckdb"
    run = make_run()
    Store(path).add_run(run)
    export = tmp_path / "runs.csv"
    Store(path).export(export, "csv")
    if how == "env":
        monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
        store = Store(path)
    else:
        store = Store(path, read_only=True)
    assert store.read_only
    writes = {
        "add_run": lambda: store.add_run(make_run()),
        "delete_run": lambda: store.delete_run(run.id),
        "clean": store.clean,
        "set_note": lambda: store.set_note(run.id, "x"),
        "import_file": lambda: store.import_file(export),
    }
    for write in writes.values():
        with pytest.raises(ReadOnlyError, match="read-only"):
            write()
    assert store.runs(with_trace=True) == [run]  # reads still work, nothing changed
    assert issubclass(ReadOnlyError, UsageError)


def test_read_only_with_no_database_yet_reads_empty(tmp_path):
    store = Store(tmp_path / "none.duckdb", read_only=True)
    assert store.runs() == [] and store.runs_frame().height == 0 and store.count() == 0
    assert not (tmp_path / "none.duckdb").exists()


def test_a_store_for_writing_is_refused_at_once_in_read_only_mode_and_creates_nothing(tmp_path, monkeypatch, make_run):
    path = tmp_path / "new.duckdb"
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="^read-only mode: storing a test run"):
        Store.for_writing(path, "storing a test run")
    assert not path.exists()
    monkeypatch.delenv("ENVIROLLM_READ_ONLY")
    store = Store.for_writing(path, "storing a test run")
    store.add_run(make_run())
    assert store.count() == 1


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 400)
    with pytest.raises(UsageError, match="not an EnviroLLM database") as caught:
        Store(junk)
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="directory"):
        Store(tmp_path)


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.duckdb"
    Store(path)
    with duckdb.connect(str(path)) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    with pytest.raises(UsageError, match="newer"):
        Store(path)


def test_a_database_made_by_something_else_is_refused(tmp_path):
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE users (name VARCHAR)")
    with pytest.raises(UsageError, match="not made by EnviroLLM"):
        Store(path)


def test_runs_are_listed_by_time_not_by_insertion(store, make_run):
    old = make_run(created_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    new = make_run(created_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    store.add_run(new)
    store.add_run(old)
    assert [run.id for run in store.runs()] == [new.id, old.id]
    assert store.runs_frame()["created_at"][0] - store.runs_frame()["created_at"][1] > timedelta(days=3000)


def test_threads_of_one_process_take_turns(store, make_run):
    """The app reads from several threads while a job writes: DuckDB would refuse the mix in one process."""
    import threading

    errors: list[BaseException] = []

    def work(writer: bool) -> None:
        try:
            for _ in range(10):
                store.add_run(make_run()) if writer else store.runs_frame(limit=5)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(writer,)) for writer in (True, False, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and store.count() == 10
