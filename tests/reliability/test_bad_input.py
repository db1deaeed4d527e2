"""Bad input: fuzzed import files, odd prompts, URLs and model names, settings out of range.

Every outcome must be a success or a one-line `UsageError` (exit 2 on the CLI, one line on stderr, no
traceback), and nothing stored may change on an error. Import files are fuzzed with hypothesis in
the core (fast, so many examples fit in CI); the other inputs go through the CLI as a user types them.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from envirollm_core.errors import UsageError
from envirollm_core.store import Store
from envirollm_core.store.exchange import MAX_FIELD_CHARS, SHARED_FIELDS
from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream
from tests.fakes.cli import (
    assert_one_line_usage_error,
    cli_in_process,
    run_cli_all,
)
from tests.fakes.runs import full_run

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# -- import files ---------------------------------------------------------------------------------


@functools.cache
def seed_exports() -> dict[str, bytes]:
    """A valid export of three full runs in each format: the seed every fuzzed file grows from."""
    folder = Path(tempfile.mkdtemp(prefix="envirollm-seeds-"))
    source = Store(folder / "source.duckdb")
    source.add_runs([full_run() for _ in range(3)])
    for fmt in ("csv", "parquet", "json"):
        source.export(folder / f"runs.{fmt}", fmt)
    return {fmt: (folder / f"runs.{fmt}").read_bytes() for fmt in ("csv", "parquet", "json")}


class Target:
    """A database that already holds runs, and the check that an import either works or changes nothing."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="envirollm-fuzz-"))
        self.store = Store(self.folder / "target.duckdb")
        self.store.add_runs([full_run() for _ in range(2)])
        self.stored = self.snapshot()

    def snapshot(self) -> pl.DataFrame:
        return self.store.runs_frame(columns=["id", "notes", "energy_wh", "prompt_hash"], extra=["response"])

    def import_bytes(self, data: bytes, suffix: str) -> None:
        path = self.folder / f"upload.{suffix}"
        path.write_bytes(data)
        try:
            report = self.store.import_file(path)
        except UsageError as exc:
            message = str(exc)
            assert message and "\n" not in message and len(message) < 500, message
            assert self.snapshot().equals(self.stored), "a refused import changed the database"
            return
        after = self.snapshot()
        assert after.height == self.stored.height + report.added
        assert set(self.stored["id"]) <= set(after["id"])  # nothing stored before is lost
        self.stored = after


@pytest.fixture(scope="module")
def target() -> Target:
    return Target()


@pytest.fixture(scope="module")
def exports() -> dict[str, bytes]:
    return seed_exports()


# hypothesis leaves lone surrogates out of text by default; files and servers do not (JSON's "\ud800").
_odd_text = st.text(max_size=12) | st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e", "é" * 3])
_anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | _odd_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
_cell_text = st.one_of(
    st.text(max_size=20),
    _odd_text,
    st.sampled_from(["", " ", "NaN", "inf", "-1", "1e400", "99999999999999999999999", "0x10", "2025-13-45T25:61:00",
                     "null", "[]", "{}", '[{"component": 1}]', "\ufeff", "\u202etxt", "\x00"]),
    _anything.map(lambda value: json.dumps(value, allow_nan=True)),
)


@st.composite
def mutated_bytes(draw, data: bytes) -> bytes:
    """The file with a few byte-level wounds: flips, cuts, insertions, a truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(out) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if kind == "flip" and out:
            out[position] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del out[position:position + draw(st.integers(1, 64))]
        elif kind == "insert":
            out[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            del out[position:]
    return bytes(out)


def _csv_with_cells(data: bytes, changes: list[tuple[int, int, str]]) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    for row, column, value in changes:
        rows[1 + row % (len(rows) - 1)][column % len(rows[0])] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


def _json_with_values(data: bytes, changes: list[tuple[int, int, object]], drop_key: bool) -> bytes:
    document = json.loads(data)
    for row, column, value in changes:
        record = document[row % len(document)]
        key = sorted(record)[column % len(record)]
        if drop_key:
            del record[key]
        else:
            record[key] = value
    return json.dumps(document, allow_nan=True).encode()  # lone surrogates travel as \ud800 escapes


def _parquet_with_cells(data: bytes, changes: list[tuple[int, int, str | None]]) -> bytes:
    table = pq.read_table(pa.BufferReader(data))
    columns = {name: [None if value is None else str(value) for value in table.column(name).to_pylist()]
               for name in table.column_names}  # every column as text, as a spreadsheet might save it
    names = list(columns)
    for row, column, value in changes:
        cells = columns[names[column % len(names)]]
        cells[row % len(cells)] = value
    out = io.BytesIO()
    pq.write_table(pa.table({name: pa.array(cells, pa.string()) for name, cells in columns.items()}), out)
    return out.getvalue()


_changes = st.lists(st.tuples(st.integers(0, 99), st.integers(0, 999), _cell_text), min_size=1, max_size=3)


@FUZZ
@given(fmt=st.sampled_from(["csv", "parquet", "json"]), data=st.data())
def test_a_wounded_file_imports_or_is_one_line_and_changes_nothing(target, fmt, data):
    target.import_bytes(data.draw(mutated_bytes(seed_exports()[fmt])), fmt)


@FUZZ
@given(changes=_changes)
def test_csv_cells_of_any_text(target, changes):
    target.import_bytes(_csv_with_cells(seed_exports()["csv"], changes), "csv")


@FUZZ
@given(changes=st.lists(st.tuples(st.integers(0, 99), st.integers(0, 999), _anything), min_size=1, max_size=3),
       drop_key=st.booleans())
def test_json_values_of_any_type(target, changes, drop_key):
    target.import_bytes(_json_with_values(seed_exports()["json"], changes, drop_key), "json")


_utf8_cell = _cell_text.filter(lambda text: not any("\ud800" <= c <= "\udfff" for c in text))  # Parquet holds UTF-8


@settings(FUZZ, max_examples=25)
@given(changes=st.lists(st.tuples(st.integers(0, 99), st.integers(0, 999), st.none() | _utf8_cell), min_size=1,
                        max_size=3))
def test_parquet_cells_of_any_text(target, changes):
    target.import_bytes(_parquet_with_cells(seed_exports()["parquet"], changes), "parquet")


@settings(FUZZ, max_examples=25)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_any_bytes_at_all(target, data):
    target.import_bytes(data, "csv")


# One column of each kind, and values that have broken importers before (or could): as text (CSV and
# JSON), and as JSON values of the wrong type.
KINDS = ["completion_tokens", "energy_wh", "prompt", "created_at", "environment", "components", "trace", "status"]
NASTY_TEXT = ["NaN", "1e400", "9" * 30, "9" * 5000, "12.5", "0001-01-01T00:00:00+05:00", "\ud800",
              "[" * 100_000 + "]" * 100_000, '[{"component": "cpu\\udc00", "energy_wh": 1, "source": "counter"}]']
NASTY_JSON = [10**30, float("nan"), True, {}]


@pytest.mark.parametrize("column", KINDS)
def test_known_nasty_values_in_every_kind_of_column(exports, target, column):
    column = SHARED_FIELDS.get(column, column)  # a field an original column holds is exported there only
    for value in NASTY_TEXT:
        if "\ud800" not in value:  # a CSV file is UTF-8 text: it cannot hold a lone surrogate
            target.import_bytes(_csv_with_cells(exports["csv"], [(0, _csv_columns(exports)[column], value)]), "csv")
        target.import_bytes(_json_with_key(exports["json"], column, value), "json")
    for value in NASTY_JSON:
        target.import_bytes(_json_with_key(exports["json"], column, value), "json")


def _csv_columns(exports: dict[str, bytes]) -> dict[str, int]:
    header = next(csv.reader(io.StringIO(exports["csv"].decode("utf-8"))))
    return {name: index for index, name in enumerate(header)}


def _json_with_key(data: bytes, key: str, value: object) -> bytes:
    document = json.loads(data)
    document[0][key] = value
    return json.dumps(document, allow_nan=True).encode()


def test_the_fuzzed_imports_also_succeed_sometimes(exports, target):
    """A fuzzer whose every file is refused proves little: the untouched seeds import (as new runs)."""
    for fmt in ("csv", "parquet", "json"):
        fresh = Target()
        fresh.import_bytes(exports[fmt], fmt)
        assert fresh.store.count() == 2 + 3


# -- the CLI as a user meets it ---------------------------------------------------------------------

MODEL = "mistral-7b-instruct"
SCRIPT = TokenScript(tokens=["ok ", "fine"], ttft_s=0.01, tokens_per_s=500.0)
QUICK = ["--repeat", "1", "--warmup", "0", "--idle-s", "0", "--judge", "none", "--max-tokens", "4", "--json"]
ODD_PROMPT = "שלום 👩‍👩‍👧 e\u0301 \u200b\u202eevil\u202c <b>x</b> ' OR 1=1; -- \\ \t tab"
ODD_MODELS = ["../../etc/passwd", "名前🙂:7b", "a' OR '1'='1", "m" * 3000, "line\nbreak", "<script>x</script>"]


def test_bad_prompts_urls_and_models_are_one_line_usage_errors(serve, tmp_path, isolated_home):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    url = f"{server.url}/v1"
    huge = tmp_path / "huge.txt"
    huge.write_text("word " * (MAX_FIELD_CHARS // 5 + 10), encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café crème".encode("latin-1"))
    base = ["benchmark-openai", "--url", url, "--model", MODEL, *QUICK]
    Store().add_runs([full_run(), full_run()])
    run_id = Store().runs()[0].id
    cases = {
        "empty prompt": (["benchmark-openai", "--url", url, "--model", MODEL, "--prompt", "", *QUICK], "--prompt is empty"),
        "blank prompt": ([*base, "--prompt", " \t\n "], "--prompt is empty"),
        "prompt of invalid UTF-8": ([*base, "--prompt", b"caf\xe9 \xff"], "not valid"),
        "huge prompt file": ([*base, "--prompt-file", str(huge)], "is longer than 16,777,216 bytes"),
        "endless prompt file": ([*base, "--prompt-file", "/dev/zero"], "is longer than 16,777,216 bytes"),
        "prompt file not UTF-8": ([*base, "--prompt-file", str(latin1)], "not UTF-8"),
        "no scheme": (["benchmark-openai", "--url", "localhost:1234/v1", "--model", MODEL, *QUICK], "not an http(s) URL"),
        "ftp scheme": (["benchmark-openai", "--url", "ftp://127.0.0.1/v1", "--model", MODEL, *QUICK], "not an http(s) URL"),
        "javascript scheme": (["benchmark-openai", "--url", "javascript:alert(1)", "--model", MODEL, *QUICK],
                              "not an http(s) URL"),
        "no host": (["benchmark-openai", "--url", "http:///v1", "--model", MODEL, *QUICK], "not an http(s) URL"),
        "bad OLLAMA_HOST": (["benchmark", "--models", "llama3", *QUICK], "not an http(s) URL"),
        "blank model": (["benchmark-openai", "--url", url, "--model", " , ", *QUICK], "no model named"),
        "model of invalid UTF-8": (["benchmark-openai", "--url", url, "--model", b"\xffmodel", *QUICK], "not valid"),
        "note of invalid UTF-8": ([*base, "--notes", b"\xfe note"], "not valid"),
        "stored note of invalid UTF-8": (["note", run_id, b"caf\xe9"], "not valid"),
        "filter of invalid UTF-8": (["list", "--model", b"\xff"], "not valid"),
        "temperature out of range": ([*base, "--temperature", "9"], "--temperature"),
        "negative idle": ([*base, "--idle-s", "-1"], "--idle-s"),
        "nan timeout": ([*base, "--timeout", "nan"], "--timeout"),
    }
    before = Store().runs(with_trace=True)
    results = run_cli_all([args for args, _ in cases.values()], env={"OLLAMA_HOST": "ftp://127.0.0.1"})
    for (label, (_, expected)), result in zip(cases.items(), results, strict=True):
        try:
            assert_one_line_usage_error(result, expected)
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
    assert Store().runs(with_trace=True) == before, "a refused command changed what was stored"
    assert not [r for r in server.requests if r.path.endswith("/chat/completions")], "refused before any request"


def test_odd_but_valid_prompts_and_model_names_are_runs_kept_exactly(serve, closed_port, isolated_home):
    """Odd Unicode is a prompt like any other; an odd model name or an unreachable host is a failed run, stored."""
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    url = f"{server.url}/v1"
    results = run_cli_all([
        ["benchmark-openai", "--url", url, "--model", MODEL, "--prompt", ODD_PROMPT, *QUICK],
        ["benchmark-openai", "--url", url, "--model", ",".join(name.replace(",", ";") for name in ODD_MODELS), *QUICK],
        ["benchmark-openai", "--url", "http://no-such-host.invalid:8000/v1", "--model", MODEL, *QUICK],
        ["benchmark-openai", "--url", f"http://127.0.0.1:{closed_port}/v1", "--model", MODEL, *QUICK],
    ])
    odd_prompt, odd_models, unknown_host, refused = results
    assert odd_prompt.returncode == 0, odd_prompt.stderr[-2000:]
    (run,) = json.loads(odd_prompt.stdout)
    assert run["status"] == "ok" and Store().run(run["id"]).prompt == ODD_PROMPT
    sent = [r.body["messages"][0]["content"] for r in server.requests if r.path == "/v1/chat/completions"]
    assert ODD_PROMPT in sent  # the server got it exactly too

    for result, reason in ((odd_models, "is not on"), (unknown_host, "cannot connect"), (refused, "cannot connect")):
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        runs = json.loads(result.stdout)
        assert runs and all(r["status"] == "failed" and reason in r["error"] and "\n" not in r["error"] for r in runs)
    stored_models = {run.model for run in Store().runs()}
    assert set(ODD_MODELS) <= stored_models  # kept exactly as typed
    assert len(Store().runs()) == 1 + len(ODD_MODELS) + 1 + 1


def test_settings_out_of_range_are_one_line_and_the_file_is_kept(isolated_home, capsys, monkeypatch):
    """A hand-edited settings file with a value out of range: one line naming it, nothing rewritten."""
    cases = {
        "sampling": ({"sampling_interval_s": 99}, "sampling interval"),
        "price": ({"electricity_price_per_kwh": -3}, "electricity price"),
        "intensity": ({"carbon_intensity_g_per_kwh": "lots"}, "carbon intensity"),
        "country": ({"country_code": "France"}, "country code"),
        "not an object": ([1, 2], "expected a JSON object"),
        "not JSON": ("{nope", "cannot read settings"),
    }
    for label, (content, expected) in cases.items():
        home = isolated_home / label.replace(" ", "-")
        home.mkdir(parents=True)
        text = content if isinstance(content, str) else json.dumps(content)
        (home / "settings.json").write_text(text, encoding="utf-8")
        monkeypatch.setenv("ENVIROLLM_HOME", str(home))
        try:
            assert_one_line_usage_error(cli_in_process(capsys, "recommend", "--json"), expected)
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
        assert (home / "settings.json").read_text(encoding="utf-8") == text
