"""The store's own errors, each a one-line message the CLI and the app show as is."""

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.settings import ReadOnlyError  # one read-only error for the whole core

__all__ = [
    "BadFileError", "DamagedDatabaseError", "DatabaseFileError", "ReadOnlyError", "StoreBusyError", "UnknownRunError",
]


class StoreBusyError(EnviroLLMError):
    """Another process held the database's lock for longer than we wait (exit code 1)."""


class BadFileError(UsageError):
    """An import file that cannot be read as runs; the message names the row and column at fault."""


class UnknownRunError(UsageError):
    """No stored run has this id (or an id prefix matches several runs)."""


class DatabaseFileError(UsageError):
    """The database file, or the disk under it, failed after opening: damaged, full, not writable (exit code 2).
    The message names the file and what to do."""


class DamagedDatabaseError(DatabaseFileError):
    """The database failed its check (a checksum that does not match, a truncated file): writes are refused
    until it is repaired (`envirollm doctor`)."""
