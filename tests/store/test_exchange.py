"""Export and import: round trips, the original EnviroLLM's CSV, and a corpus of bad files."""

import csv
import dataclasses
import io
import json
import random
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from envirollm_core.records import ComponentEnergy, RunResult, TracePoint, prompt_hash
from envirollm_core.store import EXPORT_COLUMNS, ORIGINAL_COLUMNS, BadFileError, Store, read_runs_file
from envirollm_core.store.exchange import LATER_COLUMNS, MAX_FIELD_CHARS, OUR_COLUMNS, SHARED_FIELDS

from tests.fakes.runs import assert_same_run, original_csv, original_rows

FORMATS = ["csv", "parquet", "json"]


def sparse_run(make_run) -> RunResult:
    """A failed run: most readings missing, nothing nested."""
    return dataclasses.replace(
        make_run(), status="failed", error="HTTP 500: model 'x' not found", preset=None, ttft_s=None, e2e_s=None,
        decode_tps=None, completion_tokens=None, token_count_source=None, energy_wh=None, energy_per_token_wh=None,
        components=[], quality_score=None, quality_method=None, quality_detail={}, environment={}, trace=[],
        response="", notes="", quantization=None, seed=None,
    )


@pytest.fixture
def stored(store, make_run):
    runs = [make_run() for _ in range(5)] + [sparse_run(make_run)]
    store.add_runs(runs)
    return runs


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_into_an_empty_database_gives_the_same_runs(tmp_path, store, stored, fmt):
    path = tmp_path / f"runs.{fmt}"
    assert store.export(path, fmt) == len(stored)
    fresh = Store(tmp_path / "fresh.duckdb")
    report = fresh.import_file(path)
    assert (report.added, report.skipped_existing, report.format) == (len(stored), 0, fmt)
    back = {run.id: run for run in fresh.runs(with_trace=True)}
    for run in stored:
        assert_same_run(back[run.id], run)


@pytest.mark.parametrize("fmt", FORMATS)
def test_importing_again_skips_and_counts(tmp_path, store, stored, fmt):
    path = tmp_path / f"runs.{fmt}"
    store.export(path, fmt)
    report = store.import_file(path)
    assert (report.added, report.skipped_existing) == (0, len(stored))
    assert store.count() == len(stored)


def test_the_original_columns_come_first_then_ours_and_no_key(tmp_path, store, stored):
    path = tmp_path / "runs.csv"
    store.export(path, "csv")
    header = next(csv.reader(path.open(encoding="utf-8")))
    assert tuple(header) == EXPORT_COLUMNS
    assert tuple(header[: len(ORIGINAL_COLUMNS)]) == ORIGINAL_COLUMNS
    assert not any("key" in column.lower() for column in header)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    by_id = {run.id: run for run in stored}
    for row in rows:
        run = by_id[row["ID"]]
        assert row["Status"] == ("completed" if run.status == "ok" else "failed")
        assert row["Source"] == run.backend and row["Prompt"] == run.prompt
        assert (float(row["Energy (Wh)"]) if row["Energy (Wh)"] else None) == run.energy_wh
        assert row["Response Preview"] == run.response[:200]


def test_export_filters_and_writes_whole_files(tmp_path, store, stored):
    one_model = stored[0].model
    path = tmp_path / "some.json"
    count = store.export(path, "json", model=one_model)
    assert count == sum(run.model == one_model for run in stored)
    assert len(json.loads(path.read_text(encoding="utf-8"))) == count
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_an_empty_database_exports_a_header_or_an_empty_list(tmp_path, store):
    assert store.export(tmp_path / "e.csv", "csv") == 0
    assert tuple(next(csv.reader((tmp_path / "e.csv").open()))) == EXPORT_COLUMNS
    assert store.export(tmp_path / "e.json", "json") == 0 and json.loads((tmp_path / "e.json").read_text()) == []
    assert store.export(tmp_path / "e.parquet", "parquet") == 0
    assert pl.read_parquet(tmp_path / "e.parquet").columns == list(EXPORT_COLUMNS)


# -- the original EnviroLLM's CSV -----------------------------------------------------------------


def test_the_original_envirollm_csv_imports(tmp_path, store):
    rows = original_rows()
    report = store.import_file(original_csv(tmp_path / "envirollm_benchmarks_20251002_140700.csv", rows))
    assert (report.added, report.format) == (3, "original-csv")
    runs = {run.id: run for run in store.runs()}
    first = runs[rows[0]["ID"]]
    assert first.model == "gemma3:1b" and first.backend == "ollama" and first.status == "ok"
    assert first.created_at == datetime(2025, 10, 2, 14, 3, 7, 123456).astimezone(timezone.utc)
    assert (first.energy_wh, first.energy_per_token_wh, first.e2e_s) == (0.457, 0.000583, 6.43)
    # its speed counted the whole request, TTFT included: kept apart, never compared with true decode rates
    assert first.decode_tps is None and first.environment["original_speed_tps"] == 121.9
    assert (first.quality_score, first.cpu_percent_avg, first.avg_power_w) == (75.0, 12.5, 255.9)
    assert first.prompt_hash == prompt_hash(rows[0]["Prompt"])
    assert first.components == [ComponentEnergy("system", 0.457, "estimate", first.components[0].note)]
    assert first.response == rows[0]["Response Preview"]
    failed = runs[rows[2]["ID"]]
    assert failed.status == "failed" and failed.energy_wh is None and failed.components == []
    assert len({run.batch_id for run in runs.values()}) == 1
    assert store.import_file(tmp_path / "envirollm_benchmarks_20251002_140700.csv").skipped_existing == 3


def test_an_original_csv_survives_import_and_export(tmp_path, store):
    rows = original_rows()
    store.import_file(original_csv(tmp_path / "orig.csv", rows))
    store.export(tmp_path / "again.csv", "csv")
    again = {row["ID"]: row for row in csv.DictReader((tmp_path / "again.csv").open(encoding="utf-8"))}
    for row in rows:
        out = again[row["ID"]]
        for column in ORIGINAL_COLUMNS:
            if column == "Timestamp":
                assert datetime.fromisoformat(out[column]) == datetime.fromisoformat(row[column]).astimezone(timezone.utc)
            elif column in ("ID", "Model", "Status", "Source", "Prompt", "Response Preview"):
                assert out[column] == str(row.get(column) or ""), column
            else:
                want = row.get(column)
                assert (float(out[column]) if out[column] else None) == (None if want is None else float(want)), column


# -- bad files ----------------------------------------------------------------------------------


def _good_csv(tmp_path, store_path, make_run) -> str:
    source = Store(store_path)
    source.add_runs([make_run() for _ in range(3)])
    source.export(tmp_path / "good.csv", "csv")
    return (tmp_path / "good.csv").read_text(encoding="utf-8")


def _replace_cell(text: str, row: int, column: str, value: str) -> str:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows[row][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _bad_files(tmp_path, make_run) -> dict[str, tuple[bytes, str]]:
    good = _good_csv(tmp_path, tmp_path / "source.duckdb", make_run)
    original = original_csv(tmp_path / "orig.csv", original_rows()).read_text(encoding="utf-8")
    frame = pl.read_csv(io.StringIO(good), infer_schema=False)
    semicolons = io.BytesIO()
    frame.write_csv(semicolons, separator=";")
    lines = original.splitlines(keepends=True)
    ragged = lines[0] + lines[1] + ",".join(lines[2].split(",")[:-2]) + "\n"
    junk = random.Random(7).randbytes(5000)
    huge = _replace_cell(original, 1, "Prompt", "x" * (MAX_FIELD_CHARS + 10))
    return {
        "wrong delimiter": (semicolons.getvalue(), "semicolons"),
        "tab delimiter": (original.replace(",", "\t").encode(), "tabs"),
        "missing columns (original)": (
            pl.read_csv(io.StringIO(original), infer_schema=False).drop("Energy (Wh)").write_csv().encode(),
            "missing column(s) 'Energy (Wh)'"),
        "missing columns (ours)": (
            frame.drop("batch_id", "trace").write_csv().encode(), "missing column(s) 'batch_id', 'trace'"),
        "text in a numeric column": (_replace_cell(good, 2, "Energy (Wh)", "lots").encode(),
                                     "row 2 (line 6), column 'Energy (Wh)': 'lots' is not a number"),
        "text in one of our numeric columns": (_replace_cell(good, 2, "ttft_s", "soon").encode(),
                                               "row 2 (line 6), column 'ttft_s': 'soon' is not a number"),
        "an unknown column": (frame.with_columns(pl.lit("1").alias("mystery")).write_csv().encode(),
                              "column 'mystery' is not one EnviroLLM knows"),
        "text in an original numeric column": (_replace_cell(original, 1, "Speed (tok/s)", "fast").encode(),
                                               "row 1 (line 2), column 'Speed (tok/s)': 'fast' is not a number"),
        "ragged rows": (ragged.encode(), "row 2 (line 3) has 13 fields but the header has 15"),
        "empty file": (b"", "is empty"),
        "only blank lines": (b"\n\n  \n", "is empty"),
        "header only": (lines[0].encode(), "has a header but no runs"),
        "binary junk": (junk, ""),
        "a huge field": (huge.encode(), f"row 1 (line 2), column 'Prompt': is longer than {MAX_FIELD_CHARS:,} characters"),
        "wrong encoding (latin-1)": (original.replace("simple", "simplé").encode("latin-1"), "not UTF-8 text"),
        "wrong encoding (UTF-16)": (original.encode("utf-16"), "UTF-16"),
        "bad JSON": (b'[{"id": "x",]', "not valid JSON"),
        "JSON that is not a list": (b'{"id": 1}', "list of runs"),
        "truncated Parquet": (b"PAR1" + junk[:300], "not a readable Parquet file"),
        "bad status": (_replace_cell(original, 1, "Status", "exploded").encode(), "column 'Status': 'exploded'"),
        "bad time": (_replace_cell(good, 1, "Timestamp", "yesterday").encode(),
                     "column 'Timestamp': 'yesterday' is not an ISO 8601"),
        "bad nested JSON": (_replace_cell(good, 1, "components", '[{"component": "cpu"').encode(),
                            "column 'components': is not valid JSON"),
        "unknown energy source": (
            _replace_cell(good, 1, "components", '[{"component": "cpu", "energy_wh": 1, "source": "guess"}]').encode(),
            "has source 'guess'"),
        "a fraction of a token": (_replace_cell(good, 3, "completion_tokens", "12.5").encode(),
                                  "row 3 (line 10), column 'completion_tokens': '12.5' is not a whole number"),
        "a repeated id": (_replace_cell(good, 3, "ID", next(csv.DictReader(io.StringIO(good)))["ID"]).encode(),
                          "repeats row 1"),
        "a bad prompt hash": (_replace_cell(good, 1, "prompt_hash", "XYZ").encode(), "16 lowercase hex"),
    }


def test_every_bad_file_is_one_line_and_changes_nothing(tmp_path, store, make_run):
    kept = [make_run(), make_run()]
    store.add_runs(kept)
    before = store.runs(with_trace=True)
    for label, (data, expected) in _bad_files(tmp_path, make_run).items():
        path = tmp_path / f"bad-{label.replace(' ', '_')}.csv"
        path.write_bytes(data)
        with pytest.raises(BadFileError) as caught:
            store.import_file(path)
        message = str(caught.value)
        assert "\n" not in message and len(message) < 400, label
        assert expected in message, f"{label}: {message}"
        assert path.name in message, label
    assert store.runs(with_trace=True) == before


def test_a_bad_row_late_in_a_file_stores_nothing_of_it(tmp_path, store, make_run):
    text = _good_csv(tmp_path, tmp_path / "src.duckdb", make_run)
    bad = tmp_path / "late.csv"
    bad.write_text(_replace_cell(text, 3, "Speed (tok/s)", "n/a"), encoding="utf-8")
    with pytest.raises(BadFileError, match="row 3"):
        store.import_file(bad)
    assert store.count() == 0


def test_a_file_that_cannot_be_read(tmp_path, store):
    with pytest.raises(BadFileError, match="cannot read"):
        store.import_file(tmp_path / "missing.csv")


def test_read_runs_file_validates_without_a_database(tmp_path, make_run):
    text = _good_csv(tmp_path, tmp_path / "src.duckdb", make_run)
    (tmp_path / "upload.csv").write_text(text, encoding="utf-8")
    parsed = read_runs_file(tmp_path / "upload.csv")
    assert parsed.format == "csv" and len(parsed.runs) == 3


# -- any run survives a CSV round trip ------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
_some_text = _text.filter(lambda value: value != "")
_float = st.floats(allow_nan=False, allow_infinity=False)
_maybe_float = st.none() | _float
_maybe_int = st.none() | st.integers(-(2**62), 2**62)
# Measurements (energy, tokens, durations, speeds...) are never negative: an import refuses them (validation.py).
_measure = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
_maybe_measure = st.none() | _measure
_maybe_count = st.none() | st.integers(0, 2**62)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**52), 2**52) | _float | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)


@st.composite
def any_run(draw) -> RunResult:
    prompt = draw(_text)
    return RunResult(
        id=draw(st.uuids()).hex, batch_id=draw(st.text("abc-123", min_size=1, max_size=8)),
        created_at=draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                                     timezones=st.just(timezone.utc))),
        model=draw(_text.filter(str.strip)), backend=draw(_text.filter(str.strip)), base_url=draw(_text),
        prompt=prompt, prompt_hash=prompt_hash(prompt), status=draw(st.sampled_from(["ok", "failed", "cancelled"])),
        preset=draw(st.none() | _some_text), repeat_index=draw(st.integers(0, 1000)), error=draw(st.none() | _some_text),
        ttft_s=draw(_maybe_measure), e2e_s=draw(_maybe_measure), decode_tps=draw(_maybe_measure),
        prompt_tokens=draw(_maybe_count), completion_tokens=draw(_maybe_count),
        token_count_source=draw(st.none() | st.sampled_from(["usage", "server-native", "chunks"])),
        energy_wh=draw(_maybe_measure), energy_net_wh=draw(_maybe_float), energy_per_token_wh=draw(_maybe_measure),
        components=draw(st.lists(st.builds(
            ComponentEnergy, _text, _maybe_measure,
            st.sampled_from(["counter", "power-integral", "average-power", "estimate", "unmeasured"]), _text),
            max_size=3)),
        seed=draw(_maybe_int), response=draw(_text),
        environment=draw(st.dictionaries(_text, _json, max_size=4)),
        quality_score=draw(_maybe_float), quality_detail=draw(st.dictionaries(_text, _json, max_size=3)),
        notes=draw(_text),
        trace=draw(st.lists(st.builds(TracePoint, _measure, _maybe_measure, _maybe_measure), max_size=4)),
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=st.lists(any_run(), min_size=1, max_size=4, unique_by=lambda run: run.id),
       fmt=st.sampled_from(FORMATS))
def test_any_run_survives_an_export_and_import(runs, fmt):
    with tempfile.TemporaryDirectory() as folder:
        source = Store(Path(folder) / "a.duckdb")
        source.add_runs(runs)
        source.export(Path(folder) / f"runs.{fmt}", fmt)
        target = Store(Path(folder) / "b.duckdb")
        assert target.import_file(Path(folder) / f"runs.{fmt}").added == len(runs)
        back = {run.id: run for run in target.runs(with_trace=True)}
        for run in runs:
            assert_same_run(back[run.id], dict_sorted_trace(run))


def dict_sorted_trace(run: RunResult) -> RunResult:
    """The store keeps samples in time order (ties in their given order)."""
    return dataclasses.replace(run, trace=sorted(run.trace, key=lambda point: point.t_s))


def test_each_field_is_exported_once_under_one_name():
    fields = [field.name for field in dataclasses.fields(RunResult)]
    assert OUR_COLUMNS == tuple(name for name in fields if name not in SHARED_FIELDS)
    assert set(SHARED_FIELDS) <= set(fields) and set(SHARED_FIELDS.values()) <= set(ORIGINAL_COLUMNS)
    assert EXPORT_COLUMNS == ORIGINAL_COLUMNS + OUR_COLUMNS and len(set(EXPORT_COLUMNS)) == len(EXPORT_COLUMNS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_import_export_gives_the_same_file(tmp_path, store, stored, fmt):
    store.import_file(original_csv(tmp_path / "orig.csv", original_rows()))  # runs whose speed is the original's
    store.export(tmp_path / f"first.{fmt}", fmt)
    again = Store(tmp_path / "again.duckdb")
    again.import_file(tmp_path / f"first.{fmt}")
    again.export(tmp_path / f"second.{fmt}", fmt)
    assert (tmp_path / f"second.{fmt}").read_bytes() == (tmp_path / f"first.{fmt}").read_bytes()
    back = {run.id: run for run in again.runs(with_trace=True)}
    for run in store.runs(with_trace=True):
        assert_same_run(back[run.id], run)


# -- exports of an older EnviroLLM (tests/store/old_exports/make_old_exports.py ran bb4f35b's code) -------------

OLD_EXPORTS = Path(__file__).parent / "old_exports"


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_of_an_older_envirollm_imports(tmp_path, store, fmt):
    path = OLD_EXPORTS / f"v2.{fmt}"
    assert "energy_uncertainty_wh" not in path.read_bytes().decode("latin-1")  # made before the later columns
    report = store.import_file(path)
    assert (report.added, report.format) == (3, fmt)
    runs = {run.id[-1]: run for run in store.runs(with_trace=True)}
    measured, failed, original = runs["1"], runs["2"], runs["3"]
    assert measured.created_at == datetime(2026, 11, 20, 9, 30, 1, 250000, tzinfo=timezone.utc)
    assert (measured.model, measured.backend, measured.status, measured.decode_tps) == ("gemma-3-270m", "embedded", "ok", 51.25)
    assert (measured.energy_wh, measured.energy_per_token_wh, measured.avg_power_w) == (0.0375, 0.0003125, 54.0)
    assert measured.components == [ComponentEnergy("cpu", 0.0375, "counter", "RAPL package")]
    assert [point.t_s for point in measured.trace] == [0.0, 0.5] and measured.trace[1].cpu_power_w == 58.0
    assert measured.response == "=SUM(A1) qubits are " + "x" * 300 and measured.seed == 42
    assert measured.environment == {"cpu": "Test CPU", "ram_gb": 8} and measured.quality_detail == {"judge": "rubric"}
    assert (failed.status, failed.error, failed.energy_wh) == ("cancelled", "HTTP 500: model 'llama3:8b' not found", None)
    assert original.decode_tps is None and original.environment["original_speed_tps"] == 121.9
    for run in runs.values():  # the columns added after it, at their defaults
        assert (run.source, run.client, run.live_detail, run.energy_uncertainty_wh) == (None, None, {}, None)
        assert set(LATER_COLUMNS) >= {"source", "client", "live_detail", "energy_uncertainty_wh"}


@pytest.mark.parametrize("column", ["Energy (Wh)", "batch_id"])
def test_an_older_export_missing_a_column_every_version_had_is_refused(tmp_path, store, column):
    frame = pl.read_csv(OLD_EXPORTS / "v2.csv", infer_schema=False).drop(column)
    path = tmp_path / "cut.csv"
    frame.write_csv(path)
    with pytest.raises(BadFileError) as caught:
        store.import_file(path)
    assert str(caught.value) == f"cut.csv is not an EnviroLLM export: missing column(s) {column!r}"
    assert store.count() == 0
