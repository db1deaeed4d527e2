"""Runs to and from files: CSV, Parquet or JSON out; those, and the original EnviroLLM's CSV, back in.

Records and bytes only: nothing here opens the database. `Store.export` and `Store.import_file` are the glue.

An export has the original EnviroLLM's columns first (so tools built for it
keep working), then one column per `RunResult` field the original columns do
not already carry (`SHARED_FIELDS`: each meaning once); in CSV and Parquet the
nested fields (`components`, `environment`, `quality_detail`, `trace`) are
JSON text, in JSON they are JSON. API keys are never stored, so never exported.

Older exports import too: those with both names for a meaning (before
`SHARED_FIELDS`), and those without the run columns later migrations added
(`schema.RUN_COLUMNS_ADDED_BY`), which get the field's default.

An import reads the whole file and validates every row before anything is
written: a bad file is one `BadFileError` naming the row and column at fault,
and the database is not touched. CSV cannot tell an empty text from a missing
one: an empty optional text field reads back as null.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from envirollm_core.errors import UsageError
from envirollm_core.machines import SOURCE_FILE_KEY
from envirollm_core.records import ComponentEnergy, RunResult, TracePoint, prompt_hash
from envirollm_core.store.codec import (
    COMPONENT_SOURCES,
    INT64_MAX,
    INT64_MIN,
    MAX_FIELD_CHARS,
    RUN_FIELDS,
    TRACE_FIELDS,
    FieldSpec,
    canonical_json,
)
from envirollm_core.store.errors import BadFileError
from envirollm_core.store.schema import FIRST_EXPORT_VERSION, run_columns_added_after
from envirollm_core.store.validation import NON_NEGATIVE_ORIGINAL_COLUMNS, negative_cells, negative_values

ExportFormat = Literal["csv", "parquet", "json"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet", "json")

# The original EnviroLLM's `envirollm export` header, in its order.
ORIGINAL_COLUMNS: tuple[str, ...] = (
    "ID", "Model", "Timestamp", "Status", "Source", "Energy (Wh)", "Energy/Token (Wh)", "Duration (s)",
    "Speed (tok/s)", "Quality Score", "CPU %", "Memory %", "Power (W)", "Prompt", "Response Preview",
)
# Our fields that an original column already holds, exactly, under its original name: exported once, there.
SHARED_FIELDS: dict[str, str] = {
    "id": "ID", "model": "Model", "created_at": "Timestamp", "status": "Status", "backend": "Source",
    "energy_wh": "Energy (Wh)", "energy_per_token_wh": "Energy/Token (Wh)", "e2e_s": "Duration (s)",
    "decode_tps": "Speed (tok/s)", "quality_score": "Quality Score", "cpu_percent_avg": "CPU %",
    "avg_power_w": "Power (W)", "prompt": "Prompt",
}
FIELD_NAMES: tuple[str, ...] = tuple(spec.name for spec in RUN_FIELDS)
OUR_COLUMNS: tuple[str, ...] = tuple(name for name in FIELD_NAMES if name not in SHARED_FIELDS)
# Columns an export from before their migration lacks: an import gives them the field's default.
LATER_COLUMNS: dict[str, int] = run_columns_added_after(FIRST_EXPORT_VERSION)
EXPORT_COLUMNS: tuple[str, ...] = ORIGINAL_COLUMNS + OUR_COLUMNS
RESPONSE_PREVIEW_CHARS = 200
EXPORT_CHUNK_RUNS = 2000

# Where an original EnviroLLM run keeps what has no field of its own.
ORIGINAL_FORMAT_TAG = "envirollm-original-csv"
ORIGINAL_STATUS = {"completed": "ok", "failed": "failed"}

_ORIGINAL_TYPES: dict[str, pl.DataType] = {
    name: (pl.String() if name in ("ID", "Model", "Timestamp", "Status", "Source", "Prompt", "Response Preview")
           else pl.Float64())
    for name in ORIGINAL_COLUMNS
}
_OUR_TYPES: dict[str, pl.DataType] = {
    spec.name: {"float": pl.Float64(), "int": pl.Int64(), "datetime": pl.Datetime("us", "UTC")}.get(
        spec.kind, pl.String()
    )
    for spec in RUN_FIELDS if spec.name in OUR_COLUMNS
}
EXPORT_SCHEMA: dict[str, pl.DataType] = {**_ORIGINAL_TYPES, **_OUR_TYPES}


@dataclass(frozen=True)
class ImportReport:
    """What an import did: runs added, runs skipped because their id was already stored, the file's format."""

    path: str
    format: str
    added: int
    skipped_existing: int


@dataclass(frozen=True)
class ParsedFile:
    """A validated import file: its format and its runs, not yet stored anywhere."""

    format: str
    runs: list[RunResult]


# -- export ----------------------------------------------------------------------------------


def original_row(run: RunResult) -> dict[str, Any]:
    """The original EnviroLLM's columns for a run."""
    return {
        "ID": run.id,
        "Model": run.model,
        "Timestamp": run.created_at.isoformat(),
        "Status": "completed" if run.status == "ok" else run.status,
        "Source": run.backend,
        "Energy (Wh)": run.energy_wh,
        "Energy/Token (Wh)": run.energy_per_token_wh,
        "Duration (s)": run.e2e_s,
        # The original's speed was tokens over the whole request, TTFT included: an imported original run keeps
        # it apart from decode_tps (a true decode rate) and gives it back here.
        "Speed (tok/s)": _environment_value(run, "original_speed_tps", run.decode_tps),
        "Quality Score": run.quality_score,
        "CPU %": run.cpu_percent_avg,
        # We record memory in MB, not as a share of the machine; only imported original runs carry it.
        "Memory %": _environment_value(run, "memory_percent", None),
        "Power (W)": run.avg_power_w,
        "Prompt": run.prompt,
        "Response Preview": run.response[:RESPONSE_PREVIEW_CHARS],
    }


def _environment_value(run: RunResult, key: str, default: Any) -> Any:
    environment = run.environment if isinstance(run.environment, dict) else {}
    return environment.get(key, default)


def export_row(run: RunResult, *, nested_as_text: bool) -> dict[str, Any]:
    """A run as one export row: the original columns, then every field they do not hold (nested ones as JSON
    text or as JSON)."""
    row = original_row(run)
    for spec in RUN_FIELDS:
        if spec.name in SHARED_FIELDS:
            continue
        value = getattr(run, spec.name)
        if spec.kind == "components":
            value = [{"component": c.component, "energy_wh": c.energy_wh, "source": c.source, "note": c.note}
                     for c in value]
        elif spec.kind == "trace":
            value = [{name: getattr(point, name) for name in TRACE_FIELDS} for point in value]
        elif spec.kind == "datetime":
            value = value.astimezone(timezone.utc)
        if nested_as_text and spec.kind in ("components", "trace", "json_object"):
            value = canonical_json(value)
        row[spec.name] = value
    return row


def write_runs_file(chunks: Iterable[list[RunResult]], path: Path, fmt: ExportFormat) -> int:
    """Write the runs, given in chunks, to `path` (`-` is stdout for csv and json); returns how many.

    The file appears whole or not at all: it is written beside its place and moved there at the end."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose csv, parquet or json")
    if str(path) == "-":
        if fmt == "parquet":
            raise UsageError("Parquet is binary: give --output FILE")
        return _WRITERS[fmt](chunks, sys.stdout.buffer)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(temporary, "wb") as out:
            count = _WRITERS[fmt](chunks, out)
        os.replace(temporary, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return count


def _frame(runs: list[RunResult]) -> pl.DataFrame:
    rows = [export_row(run, nested_as_text=True) for run in runs]
    return pl.DataFrame(rows, schema=EXPORT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=EXPORT_SCHEMA)


# OWASP's rule against formula injection: a text cell that a spreadsheet would run as a formula (it begins with
# =, +, -, @, a tab or a carriage return) is written after a single quote. A cell that already begins with
# quotes before such a character gets one more, so that taking one quote off on import gives back every text.
_FORMULA_START = r"^'*[=+\-@\t\r]"


def _neutralize_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(_FORMULA_START)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items() if dtype == pl.String()
    )


def _restore_formula(value: str) -> str:
    """Undo `_neutralize_formulas` on a cell of our own CSV export."""
    return value[1:] if value.startswith("'") and re.match(_FORMULA_START, value[1:]) else value


def _write_csv(chunks: Iterable[list[RunResult]], out: BinaryIO) -> int:
    count = 0
    header_written = False
    for runs in chunks:
        _neutralize_formulas(_frame(runs)).write_csv(out, include_header=not header_written)
        header_written = True
        count += len(runs)
    if not header_written:
        _frame([]).write_csv(out)
    out.flush()
    return count


def _write_parquet(chunks: Iterable[list[RunResult]], out: BinaryIO) -> int:
    count = 0
    with pq.ParquetWriter(out, _frame([]).to_arrow().schema) as writer:
        for runs in chunks:
            writer.write_table(_frame(runs).to_arrow())
            count += len(runs)
    return count


def write_json_runs(chunks: Iterable[list[RunResult]], out: BinaryIO) -> int:
    count = 0
    out.write(b"[")
    for runs in chunks:
        for run in runs:
            out.write(b",\n" if count else b"\n")
            row = export_row(run, nested_as_text=False)
            out.write(json.dumps(row, ensure_ascii=False, default=str).encode("utf-8"))
            count += 1
    out.write(b"\n]\n")
    out.flush()
    return count


_WRITERS: dict[str, Callable[[Iterable[list[RunResult]], BinaryIO], int]] = {
    "csv": _write_csv,
    "parquet": _write_parquet,
    "json": write_json_runs,
}


# -- import ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """One data row of a file, numbered from 1, with where it sits (for messages)."""

    number: int
    where: str
    values: dict[str, Any]


def read_runs_file(path: Path, limits: ImportLimits | None = None) -> ParsedFile:
    """Read and validate an export (ours in CSV, Parquet or JSON, or the original EnviroLLM's CSV)
    without storing it. Raises `BadFileError` naming the row and column at fault."""
    path = Path(path)
    limits = limits or FILE_LIMITS
    try:
        _check_bytes(path.stat().st_size, limits, path.name)  # before a byte is read
        data = path.read_bytes()
    except OSError as exc:
        raise BadFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_runs(data, path.name, limits)


def parse_runs(data: bytes, name: str, limits: ImportLimits | None = None) -> ParsedFile:
    """`read_runs_file` over bytes already in memory (an upload); `name` is used in messages."""
    limits = limits or FILE_LIMITS
    if not data.strip():
        raise BadFileError(f"{name} is empty")
    _check_bytes(len(data), limits, name)
    if data[:4] == b"PAR1":
        container, header, records = "parquet", *_parquet_records(data, name, limits)
    else:
        text = _decode_text(data, name)
        if text.lstrip()[:1] in ("[", "{"):
            container, header, records = "json", *_json_records(text, name, limits)
        else:
            container, header, records = "csv", *_csv_records(text, name, limits)
    _check_columns(len(header), limits, name)
    records = _bounded_rows(records, limits, name)
    # Any of our own columns makes it our export, which must then have all that every version had (never
    # half-read as the original), and nothing this version does not know.
    if set(FIELD_NAMES) & set(header):
        _require_columns(header, REQUIRED_COLUMNS, "an EnviroLLM", name)
        unknown = [column for column in header if column not in KNOWN_COLUMNS]
        if unknown:
            raise BadFileError(f"{name}: column {unknown[0]!r} is not one EnviroLLM knows (from a newer EnviroLLM?"
                               " upgrade EnviroLLM)")
        if container == "csv":
            records = (_Record(r.number, r.where, {k: _restore_formula(v) for k, v in r.values.items()}) for r in records)
        runs = _unique_runs(((_our_run(record, name), record) for record in records), name)
        fmt = container
    else:
        _require_columns(header, ORIGINAL_COLUMNS, "an EnviroLLM (or original EnviroLLM)", name)
        batch_id = f"import-{_digest(data)}"
        runs = _unique_runs(((_original_run(record, name, batch_id), record) for record in records), name)
        fmt = f"original-{container}"
    if not runs and container == "csv":
        raise BadFileError(f"{name} has a header but no runs")
    return ParsedFile(format=fmt, runs=runs)


# -- limits, checked before decoding ----------------------------------------------------------------
# A file is measured before it is decoded (its size; a Parquet file's row count, column count and uncompressed
# size from its metadata) and its rows are checked as they are read, so a small file that would decode to
# gigabytes (50 million dictionary-encoded rows in 126 KB) is refused in one line, with memory still low.


@dataclass(frozen=True)
class ImportLimits:
    max_bytes: int  # the file, and what its cells decode to
    max_rows: int
    max_columns: int
    max_cell_chars: int = MAX_FIELD_CHARS
    advice: str = ""  # said after a refusal


# `envirollm import` and `--dry-run`: a backup of a large history, in the user's own process.
FILE_LIMITS = ImportLimits(max_bytes=2**30, max_rows=1_000_000, max_columns=256,
                           advice="; split the export (envirollm export --model M) and import the parts")
# An upload to the app, analysed in the server shared by every visitor: 10,000 runs parse in about 7 s to about
# 100 MB on a loaded 2-core machine (90,000 took 66 s and 940 MB; bench/hostile_memory.py).
UPLOAD_LIMITS = ImportLimits(max_bytes=32 * 2**20, max_rows=10_000, max_columns=256,
                             advice="; a bigger file can be imported with `envirollm import FILE`")


def _check_bytes(size: int, limits: ImportLimits, name: str, what: str = "is") -> None:
    if size > limits.max_bytes:
        raise BadFileError(f"{name} {what} {size / 2**20:,.1f} MiB, over the {limits.max_bytes / 2**20:,.0f} MiB"
                           f" one import takes{limits.advice}")


def _check_columns(count: int, limits: ImportLimits, name: str) -> None:
    if count > limits.max_columns:
        raise BadFileError(f"{name} has {count:,} columns; an export has {len(EXPORT_COLUMNS)} and an import takes"
                           f" at most {limits.max_columns}")


def _check_rows(count: int, limits: ImportLimits, name: str) -> None:
    if count > limits.max_rows:
        raise BadFileError(f"{name} holds more than {limits.max_rows:,} runs, the most one import takes{limits.advice}")


def _bounded_rows(records: Iterable[_Record], limits: ImportLimits, name: str) -> Iterator[_Record]:
    for count, record in enumerate(records, start=1):
        _check_rows(count, limits, name)
        yield record


def _unique_runs(pairs: Iterable[tuple[RunResult, _Record]], name: str) -> list[RunResult]:
    """The runs, converted one row at a time (no row is kept as text once it is a run); an id seen twice is refused."""
    runs: list[RunResult] = []
    first_seen: dict[str, str] = {}
    for run, record in pairs:
        if run.id in first_seen:
            raise BadFileError(f"{name}: {record.where}, column 'id': {run.id!r} repeats {first_seen[run.id]}")
        first_seen[run.id] = record.where
        runs.append(run)
    return runs


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _decode_text(data: bytes, name: str) -> str:
    if b"\x00" in data:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise BadFileError(f"{name} is UTF-16 text; save it as UTF-8")
        raise BadFileError(f"{name} is binary, not CSV, JSON or Parquet")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadFileError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02X} on line {line}); save it as UTF-8"
        ) from None


PARQUET_BATCH_ROWS = 256


def _parquet_records(data: bytes, name: str, limits: ImportLimits) -> tuple[list[str], Iterator[_Record]]:
    """The metadata is checked first; rows are then read a batch at a time, text columns kept dictionary-encoded
    until their cells' decoded sizes are counted, so one value repeated in 50 million rows is never expanded."""
    try:
        metadata = pq.ParquetFile(pa.BufferReader(data)).metadata
        _check_columns(metadata.num_columns, limits, name)
        _check_rows(metadata.num_rows, limits, name)
        uncompressed = sum(metadata.row_group(g).column(c).total_uncompressed_size
                           for g in range(metadata.num_row_groups) for c in range(metadata.num_columns))
        _check_bytes(uncompressed, limits, name, "decompresses to")
        schema = metadata.schema.to_arrow_schema()
        texts = [field.name for field in schema if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)]
        file = pq.ParquetFile(pa.BufferReader(data), read_dictionary=texts)
    except (pa.ArrowException, OSError, ValueError, IndexError) as exc:
        raise BadFileError(f"{name} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    return schema.names, _parquet_rows(file, name, limits)


def _parquet_rows(file: pq.ParquetFile, name: str, limits: ImportLimits) -> Iterator[_Record]:
    number = 0
    decoded = 0
    try:
        for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for column_name, column in zip(batch.schema.names, batch.columns):
                sizes = _decoded_sizes(column)
                if sizes is None:
                    continue
                largest = pc.max(sizes).as_py() or 0
                if largest > 4 * limits.max_cell_chars:  # bytes: at most 4 per character
                    raise BadFileError(f"{name}: a cell of column {column_name!r} near row {number + 1} is longer than"
                                       f" {limits.max_cell_chars:,} characters")
                decoded += pc.sum(sizes).as_py() or 0
            _check_bytes(decoded, limits, name, "decodes to more than")
            for values in batch.to_pylist():
                number += 1
                yield _Record(number, f"row {number}", values)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadFileError(f"{name} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None


def _decoded_sizes(column: pa.Array) -> pa.Array | None:
    """Each cell's size in bytes once decoded (text and binary columns; None for the others, whose size is fixed)."""
    if pa.types.is_dictionary(column.type):
        if not (pa.types.is_string(column.type.value_type) or pa.types.is_large_string(column.type.value_type)):
            return None
        return pc.take(pc.binary_length(column.dictionary), column.indices)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_binary(column.type):
        return pc.binary_length(column)
    return None


def _json_records(text: str, name: str, limits: ImportLimits) -> tuple[list[str], list[_Record]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFileError(f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # a number thousands of digits long, or lists nested thousands deep
        raise BadFileError(f"{name} is not JSON that can be read: {type(exc).__name__}") from None
    if isinstance(document, dict) and isinstance(document.get("runs"), list):
        document = document["runs"]
    if not isinstance(document, list):
        raise BadFileError(f"{name}: a JSON export is a list of runs (objects)")
    if not document:
        raise BadFileError(f"{name} holds no runs")
    _check_rows(len(document), limits, name)
    if isinstance(document[0], dict):
        _check_columns(len(document[0]), limits, name)
    records = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise BadFileError(f"{name}: row {number} is a JSON {type(item).__name__}, not an object")
        records.append(_Record(number, f"row {number}", item))
    header = list(document[0])
    for record in records[1:]:
        missing = [column for column in header if column not in record.values]
        if missing:
            raise BadFileError(f"{name}: row {record.number}, column {missing[0]!r}: missing")
    return header, records


def _csv_records(text: str, name: str, limits: ImportLimits) -> tuple[list[str], Iterator[_Record]]:
    # A cell somewhat past the limit still reaches the cell's own check, which names its column; the reader
    # itself refuses (and stops buffering) at twice the limit.
    csv.field_size_limit(2 * limits.max_cell_chars)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise BadFileError(f"{name}: the header is not valid CSV: {exc}") from None
    except StopIteration:
        raise BadFileError(f"{name} is empty") from None
    _check_columns(len(header), limits, name)
    _check_header(header, name)
    return header, _csv_rows(reader, header, name)


def _csv_rows(reader: Any, header: list[str], name: str) -> Iterator[_Record]:
    number = 0
    start_line = reader.line_num + 1
    try:
        for fields in reader:
            # A quoted field may span lines: name the line a row starts on.
            where, start_line = f"row {number + 1} (line {start_line})", reader.line_num + 1
            if not fields:
                continue  # a blank line
            number += 1
            if len(fields) != len(header):
                raise BadFileError(
                    f"{name}: {where} has {len(fields)} fields but the header has {len(header)}"
                )
            yield _Record(number, where, dict(zip(header, fields)))
    except csv.Error as exc:
        where = f"row {number + 1} (line {start_line})"
        raise BadFileError(f"{name}: {where} is not valid CSV: {exc}") from None


def _check_header(header: list[str], name: str) -> None:
    if len(header) == 1:
        for delimiter, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if header[0].count(delimiter) >= 2:
                raise BadFileError(f"{name} separates fields with {label}; EnviroLLM reads comma-separated files")
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise BadFileError(f"{name}: the header names column {column!r} twice")
        seen.add(column)


def _require_columns(header: list[str], wanted: tuple[str, ...], kind: str, name: str) -> None:
    missing = [column for column in wanted if column not in header]
    if missing:
        shown = ", ".join(repr(column) for column in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise BadFileError(f"{name} is not {kind} export: missing column(s) {shown}{more}")


# -- cells ------------------------------------------------------------------------------------


class _CellError(Exception):
    """A problem with one cell; the caller adds the file, row and column."""


def _cell(name: str, record: _Record, column: str, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(record.values.get(column))  # only a LATER_COLUMNS column can be absent here
    except _CellError as exc:
        raise BadFileError(f"{name}: {record.where}, column {column!r}: {exc}") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "...'"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, *, optional: bool) -> str | None:
    if value is None:
        if optional:
            return None
        raise _CellError("is required")
    if not isinstance(value, str):
        raise _CellError(f"{_shown(value)} is not text")
    if optional and value == "":
        return None
    if len(value) > MAX_FIELD_CHARS:
        raise _CellError(f"is longer than {MAX_FIELD_CHARS:,} characters")
    return value


def _number(value: Any, *, optional: bool) -> float | None:
    if _blank(value):
        if optional:
            return None
        raise _CellError("is required")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _CellError(f"{_shown(value)} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise _CellError(f"{_shown(value)} is not a number") from None
    if not math.isfinite(number):
        raise _CellError(f"{_shown(value)} is not a finite number")
    return number


def _whole(value: Any, *, optional: bool) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        # Exactly, even past 2**53; a 5,000-digit text is refused before int() (Python refuses it with a ValueError).
        whole = int(value) if len(value) <= 40 else INT64_MAX + 1
    elif isinstance(value, int) and not isinstance(value, bool):
        whole = value
    else:
        number = _number(value, optional=optional)
        if number is None:
            return None
        if not number.is_integer():
            raise _CellError(f"{_shown(value)} is not a whole number")
        whole = int(number)
    if not INT64_MIN <= whole <= INT64_MAX:
        raise _CellError(f"{_shown(value)} is out of range (more than 64 bits)")
    return whole


def _moment(value: Any, *, optional: bool) -> datetime | None:
    if _blank(value):
        if optional:
            return None
        raise _CellError("is required")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _CellError(f"{_shown(value)} is not an ISO 8601 date and time") from None
    else:
        raise _CellError(f"{_shown(value)} is not a date and time")
    # A time without an offset is local time, as the original EnviroLLM wrote it.
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # year 1 or 9999 pushed past the calendar by its offset
        raise _CellError(f"{_shown(value)} is out of range") from None


def _json_value(value: Any, expected: type) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise _CellError(f"is longer than {MAX_FIELD_CHARS:,} characters")
        try:
            value = json.loads(value) if value.strip() else expected()
        except json.JSONDecodeError as exc:
            raise _CellError(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
        except (ValueError, RecursionError) as exc:  # a number thousands of digits long, or nesting thousands deep
            raise _CellError(f"is not JSON that can be read ({type(exc).__name__})") from None
    if value is None:
        value = expected()
    if not isinstance(value, expected):
        raise _CellError(f"is JSON {type(value).__name__}, not a{'n object' if expected is dict else ' list'}")
    return value


def _object(value: Any) -> dict[str, Any]:
    return _json_value(value, dict)


def _components(value: Any) -> list[ComponentEnergy]:
    components = []
    for index, item in enumerate(_json_value(value, list), start=1):
        if not isinstance(item, dict) or not isinstance(item.get("component"), str):
            raise _CellError(f"component {index} is not an object with a 'component' name")
        source = item.get("source")
        if source not in COMPONENT_SOURCES:
            raise _CellError(f"component {index} has source {_shown(source)}, not one of {', '.join(COMPONENT_SOURCES)}")
        note = item.get("note", "")
        if not isinstance(note, str):
            raise _CellError(f"component {index} has a note that is not text")
        try:
            energy_wh = _number(item.get("energy_wh"), optional=True)
        except _CellError as exc:
            raise _CellError(f"component {index} energy_wh: {exc}") from None
        components.append(ComponentEnergy(item["component"], energy_wh, source, note))
    return components


def _trace(value: Any) -> list[TracePoint]:
    points = []
    for index, item in enumerate(_json_value(value, list), start=1):
        if not isinstance(item, dict):
            raise _CellError(f"sample {index} is not an object")
        unknown = set(item) - set(TRACE_FIELDS)
        if unknown:
            raise _CellError(f"sample {index} has unknown key {sorted(unknown)[0]!r}")
        try:
            values = {
                name: _number(item.get(name), optional=name != "t_s") for name in TRACE_FIELDS
            }
        except _CellError as exc:
            raise _CellError(f"sample {index}: {exc}") from None
        points.append(TracePoint(**values))
    return points


# Checked here as `codec.check_run` checks a run before storing it: whatever the store holds, it can read back.
_NON_EMPTY = {"id", "batch_id", "model", "backend"}
_HEX16 = re.compile(r"[0-9a-f]{16}")


def _field_parser(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.kind == "str":
        def parse_text(value: Any) -> str | None:
            text = _text(value, optional=spec.optional)
            if spec.name in _NON_EMPTY and not (text or "").strip():
                raise _CellError("must not be empty")
            if spec.choices and text is not None and text not in spec.choices:
                raise _CellError(f"{_shown(text)} is not one of {', '.join(spec.choices)}")
            if spec.name == "prompt_hash" and not _HEX16.fullmatch(text or ""):
                raise _CellError(f"{_shown(text)} is not 16 lowercase hex characters")
            return text
        return parse_text
    if spec.kind == "float":
        return lambda value: _number(value, optional=spec.optional)
    if spec.kind == "int":
        return lambda value: _whole(value, optional=spec.optional)
    if spec.kind == "datetime":
        return lambda value: _moment(value, optional=spec.optional)
    return {"json_object": _object, "components": _components, "trace": _trace}[spec.kind]


_PARSERS: dict[str, Callable[[Any], Any]] = {spec.name: _field_parser(spec) for spec in RUN_FIELDS}


# Every export since the first has the original columns and the fields neither shared with them nor added later.
REQUIRED_COLUMNS: tuple[str, ...] = ORIGINAL_COLUMNS + tuple(c for c in OUR_COLUMNS if c not in LATER_COLUMNS)
KNOWN_COLUMNS: frozenset[str] = frozenset(ORIGINAL_COLUMNS + FIELD_NAMES)
_DEFAULTS: dict[str, Callable[[], Any]] = {
    field.name: (field.default_factory if field.default is dataclasses.MISSING else lambda value=field.default: value)
    for field in dataclasses.fields(RunResult) if field.name in LATER_COLUMNS
}


def _from_original(spec: FieldSpec) -> Callable[[Any], Any]:
    """A shared field's parser over its original column (which says "completed" for ok)."""
    if spec.name == "status":
        return lambda value: _PARSERS["status"]("ok" if value == "completed" else value)
    return _PARSERS[spec.name]


_ORIGINAL_PARSERS = {spec.name: _from_original(spec) for spec in RUN_FIELDS if spec.name in SHARED_FIELDS}


def _our_run(record: _Record, name: str) -> RunResult:
    values: dict[str, Any] = {}
    for spec in RUN_FIELDS:
        if spec.name in record.values:  # every field of ours; and the shared ones in exports before SHARED_FIELDS
            values[spec.name] = _cell(name, record, spec.name, _PARSERS[spec.name])
        elif spec.name in SHARED_FIELDS:
            values[spec.name] = _cell(name, record, SHARED_FIELDS[spec.name], _ORIGINAL_PARSERS[spec.name])
        else:
            values[spec.name] = _DEFAULTS[spec.name]()
    if "decode_tps" not in record.values and "original_speed_tps" in values["environment"]:
        values["decode_tps"] = None  # "Speed (tok/s)" held an original run's own speed, not a decode rate
    run = RunResult(**values)
    _refuse_impossible_values(negative_values(run), record, name)
    return run


def _refuse_impossible_values(problems: Iterator[tuple[str, str]], record: _Record, name: str) -> None:
    """The first value no measurement can take (validation.py), as the one-line error of its row and column."""
    for column, problem in problems:
        raise BadFileError(f"{name}: {record.where}, column {column!r}: {problem}")


def _original_run(record: _Record, name: str, batch_id: str) -> RunResult:
    """An original EnviroLLM row as a run: its energy was its own estimate (a fixed 50 W base plus CPU
    and GPU power), its speed is tokens over the whole request (TTFT included, so it is kept in
    `environment["original_speed_tps"]`, never as a decode rate), and it stored only a preview of the answer."""

    def number(column: str) -> float | None:
        return _cell(name, record, column, lambda value: _number(value, optional=True))

    run_id = _cell(name, record, "ID", _PARSERS["id"])
    model = _cell(name, record, "Model", _PARSERS["model"])
    created_at = _cell(name, record, "Timestamp", _PARSERS["created_at"])
    status_text = _cell(name, record, "Status", lambda value: _text(value, optional=False).strip().lower())
    if status_text not in ORIGINAL_STATUS:
        raise BadFileError(
            f"{name}: {record.where}, column 'Status': {status_text!r} is not one of {', '.join(ORIGINAL_STATUS)}"
        )
    source = _cell(name, record, "Source", lambda value: _text(value, optional=True)) or "imported"
    prompt = _cell(name, record, "Prompt", lambda value: _text(value, optional=False))
    response = _cell(name, record, "Response Preview", lambda value: _text(value, optional=True)) or ""
    energy_wh = number("Energy (Wh)")
    quality_score = number("Quality Score")
    memory_percent = number("Memory %")
    speed_tps = number("Speed (tok/s)")
    _refuse_impossible_values(negative_cells(record.values, NON_NEGATIVE_ORIGINAL_COLUMNS), record, name)
    # No machine description: the file names the "unknown machine" its runs were measured on (machines.py).
    environment: dict[str, Any] = {"source_format": ORIGINAL_FORMAT_TAG, SOURCE_FILE_KEY: name}
    if memory_percent is not None:
        environment["memory_percent"] = memory_percent
    if speed_tps is not None:  # tokens over the whole request, TTFT included: not a decode rate
        environment["original_speed_tps"] = speed_tps
    return RunResult(
        id=run_id,
        batch_id=batch_id,
        created_at=created_at,
        model=model,
        backend=source,
        base_url="",
        prompt=prompt,
        prompt_hash=prompt_hash(prompt),
        status=ORIGINAL_STATUS[status_text],
        e2e_s=number("Duration (s)"),
        decode_tps=None,
        energy_wh=energy_wh,
        energy_per_token_wh=number("Energy/Token (Wh)"),
        components=[] if energy_wh is None else [
            ComponentEnergy("system", energy_wh, "estimate", "original EnviroLLM: 50 W base + CPU % x 2 W + GPU power")
        ],
        avg_power_w=number("Power (W)"),
        cpu_percent_avg=number("CPU %"),
        response=response,
        environment=environment,
        quality_score=quality_score,
        quality_method=None if quality_score is None else "original EnviroLLM",
    )
