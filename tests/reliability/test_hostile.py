"""Hostile input and broken disks (issue 18): bounded streams, damaged and full databases, escapes, formulas."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path

import pytest

from envirollm_core.backends.base import CUT_AT_MAX_TOKENS, CUT_AT_RUN_TIMEOUT
from envirollm_core.errors import UsageError
from envirollm_core.settings import Settings, save_settings, settings_path
from envirollm_core.store import Store, read_runs_file
from envirollm_core.store.doctor import examine
from tests.fakes.scripted_server import Reply, openai_chunk, openai_routes, sse
from tests.fakes.cli import assert_one_line_usage_error, run_cli, run_cli_all
from tests.fakes.runs import full_run

MODEL = "forever-model"
QUICK = ["--idle-s", "0", "--judge", "none", "--warmup", "0"]
BLOCK_BYTES = 262144  # DuckDB's block size
FIRST_BLOCK_AT = 3 * 4096  # after its three header pages


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 2. a server that never stops ------------------------------------------------------------------


def _endless_tokens(count: int = 20000, every_s: float = 0.0005) -> Reply:
    """A server that ignores max_tokens: token after token, no finish reason, no [DONE] (within the test)."""
    parts = [(0.0, sse(openai_chunk(MODEL, {"role": "assistant", "content": ""})))]
    parts += [(i * every_s, sse(openai_chunk(MODEL, {"content": f"t{i} "}))) for i in range(count)]
    return Reply(parts=parts, content_type="text/event-stream")


def _endless_keepalives(seconds: float = 60.0, every_s: float = 0.05) -> Reply:
    """A steady trickle that passes any read timeout and never carries a token."""
    parts = [(i * every_s, b": keep-alive\n\n") for i in range(int(seconds / every_s))]
    return Reply(parts=parts, content_type="text/event-stream")


def test_a_server_that_never_stops_is_cut_at_max_tokens_and_at_the_run_timeout(serve):
    replies = iter([_endless_tokens(), _endless_keepalives()])
    server = serve(openai_routes([MODEL], lambda request: next(replies)))
    result = run_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--repeat", "2",
                     "--max-tokens", "20", "--timeout", "5", "--run-timeout", "2", "--json", *QUICK)
    assert result.returncode == 0, result.stderr
    cut, timed_out = json.loads(result.stdout)
    assert cut["status"] == "ok" and cut["finish_reason"] == CUT_AT_MAX_TOKENS
    assert cut["completion_tokens"] == 20 + 16 and cut["token_count_source"] == "chunks"  # the small margin
    assert timed_out["status"] == "ok" and timed_out["finish_reason"] == CUT_AT_RUN_TIMEOUT
    assert 2 <= timed_out["e2e_s"] < 10
    stored = {run.id: run for run in Store().runs()}
    assert stored[cut["id"]].finish_reason == CUT_AT_MAX_TOKENS and stored[cut["id"]].response.startswith("t0 t1 ")
    assert stored[timed_out["id"]].finish_reason == CUT_AT_RUN_TIMEOUT


# -- 4. whatever the store accepts, its exports restore whole ---------------------------------------------


def test_a_huge_answer_is_cut_when_stored_so_every_export_restores_whole(tmp_path):
    from envirollm_core.store.codec import MAX_FIELD_CHARS

    store = Store(tmp_path / "db.duckdb")
    huge = full_run(response="é" * (MAX_FIELD_CHARS + 2**20))
    store.add_runs([huge, *(full_run() for _ in range(15))])
    kept = store.run(huge.id).response
    assert len(kept) <= MAX_FIELD_CHARS and kept.startswith("é" * 1000)
    assert kept.endswith(f"[cut by EnviroLLM when stored: {MAX_FIELD_CHARS + 2**20:,} characters, the first "
                         f"{MAX_FIELD_CHARS - 100:,} kept]")
    for fmt in ("csv", "json", "parquet"):
        store.export(tmp_path / f"backup.{fmt}", fmt)
        restored = Store(tmp_path / f"restored-{fmt}.duckdb")
        report = restored.import_file(tmp_path / f"backup.{fmt}")
        assert report.added == 16, fmt
        assert restored.run(huge.id).response == kept, fmt


# -- 5. failures after the database is open --------------------------------------------------------


def _database(path: Path, runs: int = 12, samples: int = 2000) -> Path:
    from envirollm_core.records import TracePoint

    trace = [TracePoint(t_s=0.1 * k, cpu_percent=float(k % 100)) for k in range(samples)]
    Store(path).add_runs([full_run(trace=trace) for _ in range(runs)])
    return path


def test_a_full_disk_keeps_the_benchmark_run_in_a_recovery_file(serve, tmp_path):
    from tests.fakes.scripted_server import TokenScript, openai_stream

    db = _database(tmp_path / "full.duckdb", runs=2, samples=10)
    (tmp_path / "full.duckdb.wal").symlink_to("/dev/full")  # every write of DuckDB's log: "No space left on device"
    server = serve(openai_routes([MODEL], openai_stream(MODEL, TokenScript(["a ", "b "], 0.01, 100.0))))
    bench, listing = run_cli_all([
        ["benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--repeat", "1", "--max-tokens", "8",
         "--db", str(db), *QUICK],
        ["note", "--db", str(db), "run-", "x"],
    ])
    assert bench.returncode == 1 and "Traceback" not in bench.stderr
    kept = list(tmp_path.glob("full.duckdb.recovered-*.json"))
    assert len(kept) == 1 and str(kept[0]) in bench.stderr
    assert_one_line_usage_error(listing)  # a write of another command: one line naming the file, not a traceback
    (tmp_path / "full.duckdb.wal").unlink()
    restored = run_cli("import", str(kept[0]), "--db", str(tmp_path / "new.duckdb"))
    assert restored.returncode == 0, restored.stderr
    (run,) = Store(tmp_path / "new.duckdb").runs()
    assert run.model == MODEL and run.response == "a b " and run.status == "ok"


def test_a_truncated_database_is_one_line_for_every_command(tmp_path):
    db = _database(tmp_path / "cut.duckdb")
    os.truncate(db, db.stat().st_size // 2)
    before = _digest(db)
    results = run_cli_all([["list", "--db", str(db), "--limit", "0"], ["export", "--db", str(db), "--output", "-"],
                           ["import", str(tmp_path / "none.csv"), "--db", str(db)]])
    for result in results[:2]:
        assert_one_line_usage_error(result, str(db), "envirollm doctor")
    assert "Traceback" not in results[2].stderr and results[2].returncode == 2
    assert _digest(db) == before


# -- 6. a damaged database refuses writes; doctor copies what is readable -------------------------------


def _damaged_in_its_samples(good: Path, tmp_path: Path) -> Path:
    """A copy of `good` with one block damaged where the runs stay readable but some samples do not."""
    size = good.stat().st_size
    for offset in range(FIRST_BLOCK_AT + (size - FIRST_BLOCK_AT) // BLOCK_BYTES * BLOCK_BYTES, FIRST_BLOCK_AT,
                        -BLOCK_BYTES):
        damaged = tmp_path / f"damaged-{offset}.duckdb"
        shutil.copy(good, damaged)
        with open(damaged, "r+b") as file:
            file.seek(offset + 100)
            file.write(b"\xde\xad\xbe\xef" * 16)
        report = examine(damaged)
        if not report.healthy and report.runs_readable == report.runs_listed and report.runs_without_samples:
            return damaged
    pytest.fail("no block of the samples found to damage")


def test_a_damaged_database_refuses_writes_and_doctor_copies_every_readable_run(tmp_path):
    damaged = _damaged_in_its_samples(_database(tmp_path / "good.duckdb"), tmp_path)
    before = _digest(damaged)
    with pytest.raises(UsageError, match="failed its check|is damaged"):
        Store(damaged).set_note("run-", "x")
    note, doctor, copy = run_cli_all([["clean", "--yes", "--db", str(damaged)],
                                      ["doctor", "--db", str(damaged), "--json"],
                                      ["doctor", "--db", str(damaged), "--copy-to", str(tmp_path / "copy.duckdb")]])
    assert_one_line_usage_error(note, str(damaged), "envirollm doctor")
    assert _digest(damaged) == before  # not a byte written
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 1 and report["healthy"] is False and report["runs_readable"] == 12
    assert copy.returncode == 1 and "copied 12 run(s)" in copy.stderr
    copied = Store(tmp_path / "copy.duckdb")
    assert copied.count() == 12
    healthy = run_cli("doctor", "--db", str(tmp_path / "copy.duckdb"))
    assert healthy.returncode == 0 and "is whole" in healthy.stderr
    copied.set_note(copied.runs()[0].id, "writes work again")  # the copy takes writes


# -- 7. settings on a read-only or full disk ---------------------------------------------------------


def test_settings_on_a_full_disk_are_one_line_and_leave_nothing(isolated_home):
    save_settings(Settings(currency="EUR"))
    path = settings_path()
    before = path.read_bytes()
    path.with_suffix(".json.tmp").symlink_to("/dev/full")  # where the new file is written: "No space left on device"
    with pytest.raises(UsageError, match="cannot save settings to .*No space left on device"):
        save_settings(Settings(currency="USD"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]  # no .tmp left behind


def test_settings_on_a_read_only_file_system_are_one_line(monkeypatch):
    home = Path("/sys/envirollm-test-home")  # sysfs: no folder can be made there, even by root
    monkeypatch.setenv("ENVIROLLM_HOME", str(home))
    with pytest.raises(UsageError, match=f"cannot save settings to {home}/settings.json: "):
        save_settings(Settings())
    assert not home.exists()


# -- 8. terminal escapes from stored text --------------------------------------------------------------


def test_control_characters_in_stored_text_are_shown_escaped(tmp_path):
    hostile = "evil\x1b[2J\x1b]0;pwned\x07\u202emodel"
    export = tmp_path / "hostile.json"
    Store(tmp_path / "src.duckdb").add_runs([full_run(model=hostile, notes="n\x1b[31mred", preset="p\x9bx")
                                             for _ in range(2)])
    Store(tmp_path / "src.duckdb").export(export, "json")
    assert run_cli("import", str(export), "--db", str(tmp_path / "db.duckdb")).returncode == 0
    results = run_cli_all([[command, "--db", str(tmp_path / "db.duckdb")] for command in ("list", "compare", "recommend")])
    for result in results:
        assert result.returncode == 0, result.stderr
        shown = result.stdout + result.stderr
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\x9b" not in shown
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\u202emodel" in results[1].stdout  # compare shows the whole name
    assert "evil\\x1b[2J" in results[0].stdout


# -- 9. spreadsheet formula injection ---------------------------------------------------------------


FORMULAS = ['=HYPERLINK("http://attacker.test","x")', "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "'=quoted",
            "''+two", "plain", "'quote", "- a list"]


def test_csv_cells_are_neutralized_and_our_import_gives_them_back(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    store.add_runs([full_run(response=text, notes=text, model=text or "m") for text in FORMULAS])
    for fmt in ("csv", "json", "parquet"):
        store.export(tmp_path / f"out.{fmt}", fmt)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for column in ("response", "notes", "Model", "Response Preview"):
            assert row[column][:1] not in ("=", "+", "-", "@", "\t", "\r"), (column, row[column])
    assert {row["response"] for row in rows} >= {"'=HYPERLINK(\"http://attacker.test\",\"x\")", "'-2", "''=quoted", "plain"}
    for fmt in ("csv", "json", "parquet"):  # JSON and Parquet exact; CSV made exact again by our import
        runs = read_runs_file(tmp_path / f"out.{fmt}").runs
        assert sorted(run.response for run in runs) == sorted(FORMULAS), fmt
        assert sorted(run.notes for run in runs) == sorted(FORMULAS), fmt


# -- 10. reading commands never create a database ---------------------------------------------------------


def test_reading_commands_never_create_a_database(tmp_path):
    typo = tmp_path / "tpyo" / "envirollm.duckdb"
    results = run_cli_all([["list", "--db", str(typo)], ["compare", "--db", str(typo)],
                           ["export", "--db", str(typo), "--output", str(tmp_path / "x.csv")],
                           ["recommend", "--db", str(typo)], ["doctor", "--db", str(typo)]])
    for result in results:
        assert_one_line_usage_error(result, "no database at", str(typo))
    assert not (tmp_path / "tpyo").exists() and not (tmp_path / "x.csv").exists()
    default = run_cli("list")  # the default database, not made yet: empty, and still not made
    assert default.returncode == 0 and "no stored runs" in default.stderr
    assert not Path(os.environ["ENVIROLLM_HOME"], "envirollm.duckdb").exists()


# -- 1. import bounds before decoding -------------------------------------------------------------------


def test_files_that_decode_to_gigabytes_are_refused_before_decoding(tmp_path):
    import resource

    from envirollm_core.store.exchange import UPLOAD_LIMITS, parse_runs
    from envirollm_core.store.errors import BadFileError
    from tests.fakes.hostile_files import big_csv, deep_json, dictionary_parquet, wide_value_parquet

    rows = dictionary_parquet(tmp_path / "rows.parquet")
    assert rows.stat().st_size < 2 * 2**20
    wide = wide_value_parquet(tmp_path / "wide.parquet")
    deep = deep_json(tmp_path / "deep.json")
    big = big_csv(tmp_path / "big.csv")
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    expected = {
        rows: "holds more than 10,000 runs, the most one import takes; a bigger file can be imported with",
        wide: "decodes to more than",
        deep: "is not JSON that can be read",
        big: "over the 32 MiB one import takes",
    }
    for path, message in expected.items():
        with pytest.raises(BadFileError, match=None) as caught:
            parse_runs(path.read_bytes(), path.name, UPLOAD_LIMITS)
        assert message in str(caught.value) and "\n" not in str(caught.value), (path.name, str(caught.value))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb) / 1024
    assert grown_mb < 500, grown_mb  # the 50 million rows were never expanded (they were 7.7 GB)
    # The CLI's own limits: the same one line, exit 2, for the dry run that ended in a MemoryError.
    results = run_cli_all([["import", "--dry-run", str(rows)], ["import", str(wide)], ["import", str(deep)]])
    for result, message in zip(results, ("holds more than 1,000,000 runs", "decodes to more than", "is not JSON")):
        assert_one_line_usage_error(result, message)
