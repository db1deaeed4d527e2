"""The results store: DuckDB file, schema and migrations, import and export."""

from envirollm_core.store.errors import BadFileError, ReadOnlyError, StoreBusyError, UnknownRunError
from envirollm_core.store.exchange import (
    EXPORT_COLUMNS,
    EXPORT_FORMATS,
    ORIGINAL_COLUMNS,
    ImportReport,
    ParsedFile,
    parse_runs,
    read_runs_file,
)
from envirollm_core.store.store import Store, runs_to_frame

__all__ = [
    "BadFileError",
    "EXPORT_COLUMNS",
    "EXPORT_FORMATS",
    "ImportReport",
    "ORIGINAL_COLUMNS",
    "ParsedFile",
    "ReadOnlyError",
    "Store",
    "StoreBusyError",
    "UnknownRunError",
    "parse_runs",
    "read_runs_file",
    "runs_to_frame",
]
