"""`RunResult` <-> the store's columns, in one place.

Each `RunResult` field is described once (`RUN_FIELDS`, derived from the
dataclass's type hints, so a new field shows up here and in a test that checks
the schema) and that description drives the Polars frames the store inserts,
the rows it reads back, and the import validator.

Conventions: `created_at` is stored as naive UTC (an aware datetime is
converted; a naive one is taken as local time, like Python does) and read back
aware in UTC; a float that is NaN or infinite is not a reading and is stored
as null; `environment` and `quality_detail` are canonical JSON text.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any, Literal

import polars as pl

from envirollm_core.errors import UsageError
from envirollm_core.records import ComponentEnergy, RunResult, TracePoint

FieldKind = Literal["str", "float", "int", "datetime", "json_object", "components", "trace"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    optional: bool
    choices: tuple[str, ...] = ()


def _spec(name: str, hint: Any) -> FieldSpec:
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        (hint,) = [arg for arg in args if arg is not type(None)]
    if typing.get_origin(hint) is Literal:
        return FieldSpec(name, "str", optional, tuple(typing.get_args(hint)))
    if hint is datetime:
        return FieldSpec(name, "datetime", optional)
    if typing.get_origin(hint) is dict:
        return FieldSpec(name, "json_object", optional)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return FieldSpec(name, "components" if item is ComponentEnergy else "trace", optional)
    kinds = {str: "str", float: "float", int: "int"}
    if hint not in kinds:
        raise TypeError(f"RunResult.{name}: the store has no column type for {hint!r}")
    return FieldSpec(name, kinds[hint], optional)


RUN_FIELDS: tuple[FieldSpec, ...] = tuple(
    _spec(name, hint) for name, hint in typing.get_type_hints(RunResult).items()
)
FIELD_BY_NAME = {spec.name: spec for spec in RUN_FIELDS}
TRACE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TracePoint))
COMPONENT_SOURCES: tuple[str, ...] = typing.get_args(typing.get_type_hints(ComponentEnergy)["source"])

_POLARS_TYPES: dict[str, pl.DataType] = {
    "str": pl.String(),
    "float": pl.Float64(),
    "int": pl.Int64(),
    "datetime": pl.Datetime("us"),
    "json_object": pl.String(),
    "components": pl.List(
        pl.Struct({"component": pl.String(), "energy_wh": pl.Float64(), "source": pl.String(), "note": pl.String()})
    ),
}



def _column(spec: FieldSpec) -> str:
    """The `runs` column of a field: the environment is stored once, elsewhere, and named by its id."""
    return "environment_id" if spec.name == "environment" else spec.name


# The `runs` table's columns as the store writes them (`run_seq` is given by the database).
RUN_TABLE_SCHEMA: dict[str, pl.DataType] = {
    _column(spec): _POLARS_TYPES[spec.kind] for spec in RUN_FIELDS if spec.kind != "trace"
}
TRACE_TABLE_SCHEMA: dict[str, pl.DataType] = {"run_id": pl.String(), **{name: pl.Float64() for name in TRACE_FIELDS}}
ENVIRONMENT_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "environment": pl.String(),
    "first_seen": pl.Datetime("us"),
}


@dataclass(frozen=True)
class EncodedRuns:
    """Runs as the three frames the store appends: runs, their samples, their environments."""

    runs: pl.DataFrame
    trace: pl.DataFrame
    environments: pl.DataFrame


def to_utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def finite_or_none(value: float | None) -> float | None:
    """A NaN or infinite float is not a reading: null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def environment_id(environment_json: str) -> str:
    """Must equal `schema.ENVIRONMENT_ID_SQL` over the same text."""
    return hashlib.sha256(environment_json.encode("utf-8")).hexdigest()[:16]


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# One limit, applied when a run is stored, so that whatever the store holds its exports restore whole: a text
# field is at most MAX_FIELD_CHARS (the import's own limit on a cell), the samples at most what fits in one.
MAX_FIELD_CHARS = 16 * 2**20  # one run's trace over ten minutes at 10 Hz is about 1 MiB of JSON
MAX_SAMPLE_JSON_CHARS = 400  # one sample as an export writes it, every reading at full precision, at most
MAX_TRACE_POINTS = MAX_FIELD_CHARS // MAX_SAMPLE_JSON_CHARS  # about 70 minutes at 10 Hz
_CUT_NOTE = "\n[cut by EnviroLLM when stored: {total:,} characters, the first {kept:,} kept]"


def fit_to_limits(run: RunResult) -> RunResult:
    """The run as the store keeps it: a text past MAX_FIELD_CHARS keeps its first part and ends with a note
    saying it was cut; samples past MAX_TRACE_POINTS keep the first ones, and the run's notes say so."""
    changes: dict[str, Any] = {}
    for spec in RUN_FIELDS:
        value = getattr(run, spec.name)
        if spec.kind == "str" and isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            note = _CUT_NOTE.format(total=len(value), kept=MAX_FIELD_CHARS - 100)
            changes[spec.name] = value[: MAX_FIELD_CHARS - 100] + note
    if len(run.trace) > MAX_TRACE_POINTS:
        changes["trace"] = run.trace[:MAX_TRACE_POINTS]
        note = f"[samples cut by EnviroLLM when stored: the first {MAX_TRACE_POINTS:,} of {len(run.trace):,} kept]"
        changes["notes"] = f"{changes.get('notes', run.notes)} {note}".strip()[:MAX_FIELD_CHARS]
    return replace(run, **changes) if changes else run
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_run(run: RunResult) -> None:
    """Refuse a run the store could not give back as it was given (a one-line `UsageError`, nothing written)."""
    for spec in RUN_FIELDS:
        value = getattr(run, spec.name)
        if value is None:
            if not spec.optional:
                raise UsageError(f"run {run.id!r}: {spec.name} is required")
            continue
        if spec.choices and value not in spec.choices:
            raise UsageError(f"run {run.id!r}: {spec.name} must be one of {', '.join(spec.choices)}, not {value!r}")
        problem = _storable(spec, value)
        if problem:
            raise UsageError(f"run {run.id!r}: {spec.name} {problem}")
    for name in ("id", "batch_id", "model", "backend"):
        if not getattr(run, name):
            raise UsageError(f"run {run.id!r}: {name} must not be empty")
    for component in run.components:
        if component.source not in COMPONENT_SOURCES:
            raise UsageError(f"run {run.id!r}: component {component.component!r} has unknown source {component.source!r}")


def _storable(spec: FieldSpec, value: Any) -> str | None:
    """What keeps a value out of its column (a wrong type, an integer past 64 bits, text that is not
    valid Unicode such as a lone surrogate, a time past year 9999), or None. Values come from files and
    servers: they must be refused in one line, never fail halfway through a write."""
    if spec.kind == "str":
        return _text_problem(value) if isinstance(value, str) else f"must be text, not {type(value).__name__}"
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, not {type(value).__name__}"
        return None if INT64_MIN <= value <= INT64_MAX else "is out of range (more than 64 bits)"
    if spec.kind == "float":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if spec.kind == "datetime":
        if not isinstance(value, datetime):
            return "must be a date and time"
        try:
            to_utc_naive(value)
        except (OverflowError, ValueError):
            return f"{value.isoformat()} is out of range"
        return None
    if spec.kind == "json_object":
        return _text_problem(canonical_json(value)) if isinstance(value, dict) else "must be an object"
    if spec.kind == "components":
        return next((_text_problem(c.component + c.note) for c in value if _text_problem(c.component + c.note)), None)
    return None


def _text_problem(text: str) -> str | None:
    if not text.isascii() and _LONE_SURROGATE.search(text):
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def encode_runs(runs: typing.Sequence[RunResult]) -> EncodedRuns:
    columns: dict[str, list[Any]] = {name: [] for name in RUN_TABLE_SCHEMA}
    trace: dict[str, list[Any]] = {name: [] for name in TRACE_TABLE_SCHEMA}
    environments: dict[str, tuple[str, datetime]] = {}
    for run in runs:
        run = fit_to_limits(run)
        check_run(run)
        created_at = to_utc_naive(run.created_at)
        for spec in RUN_FIELDS:
            value = getattr(run, spec.name)
            if spec.kind == "trace":
                for point in value:
                    trace["run_id"].append(run.id)
                    for name in TRACE_FIELDS:
                        trace[name].append(finite_or_none(getattr(point, name)))
            elif spec.name == "environment":
                text = canonical_json(value)
                env_id = environment_id(text)
                if env_id not in environments or created_at < environments[env_id][1]:
                    environments[env_id] = (text, created_at)
                columns["environment_id"].append(env_id)
            else:
                columns[spec.name].append(_encode_value(spec, value))
    return EncodedRuns(
        runs=pl.DataFrame(columns, schema=RUN_TABLE_SCHEMA),
        trace=pl.DataFrame(trace, schema=TRACE_TABLE_SCHEMA),
        environments=pl.DataFrame(
            {
                "id": list(environments),
                "environment": [text for text, _ in environments.values()],
                "first_seen": [seen for _, seen in environments.values()],
            },
            schema=ENVIRONMENT_TABLE_SCHEMA,
        ),
    )


def _encode_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.kind == "datetime":
        return to_utc_naive(value)
    if spec.kind == "float":
        return finite_or_none(value)
    if spec.kind == "int":
        return int(value)
    if spec.kind == "json_object":
        return canonical_json(value)
    if spec.kind == "components":
        return [{**asdict(c), "energy_wh": finite_or_none(c.energy_wh)} for c in value]
    return value


def decode_run(row: dict[str, Any], environment_json: str | None, trace: list[TracePoint] | None = None) -> RunResult:
    """A `RunResult` from a `runs` row (as `to_pylist` gives it), its environment's JSON and its samples."""
    values: dict[str, Any] = {}
    for spec in RUN_FIELDS:
        if spec.kind == "trace":
            values[spec.name] = trace or []
        elif spec.name == "environment":
            values[spec.name] = json.loads(environment_json) if environment_json else {}
        else:
            values[spec.name] = _decode_value(spec, row[spec.name])
    return RunResult(**values)


def _decode_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.kind == "datetime":
        return value.replace(tzinfo=timezone.utc)
    if spec.kind == "json_object":
        return json.loads(value)
    if spec.kind == "components":
        return [ComponentEnergy(**item) for item in value]
    return value


def decode_trace(rows: typing.Iterable[dict[str, Any]]) -> list[TracePoint]:
    return [TracePoint(**{name: row[name] for name in TRACE_FIELDS}) for row in rows]
