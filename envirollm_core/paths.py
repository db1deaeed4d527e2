"""Where things live: the database, the shipped data, the sysfs root."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"


def envirollm_home() -> Path:
    """`$ENVIROLLM_HOME`, defaulting to `~/.envirollm`."""
    return Path(os.environ.get("ENVIROLLM_HOME") or Path.home() / ".envirollm").expanduser()


def default_db_path() -> Path:
    return envirollm_home() / "envirollm.duckdb"


def sysfs_root() -> Path:
    """`$ENVIROLLM_SYSFS_ROOT`, defaulting to `/sys`, so tests can point at a fake tree."""
    return Path(os.environ.get("ENVIROLLM_SYSFS_ROOT") or "/sys")
