"""Export bytes for a page's download button."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from envirollm_core.store import Store
from envirollm_core.store.exchange import ExportFormat


def export_bytes(store: Store, fmt: ExportFormat, prompt_hash: str | None = None) -> bytes:
    """The runs exported as the CLI's `envirollm export` writes them, as bytes for a download."""
    handle, name = tempfile.mkstemp(prefix="envirollm-export-", suffix=f".{fmt}")
    os.close(handle)
    path = Path(name)
    try:
        store.export(path, fmt, prompt_hash=prompt_hash)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
