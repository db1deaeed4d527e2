"""Where things live: the database, the shipped data, the sysfs root."""

import os
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_PACKAGE = "envirollm_core.data"  # the top-level data/ folder, as the wheel installs it (pyproject.toml)


def data_file(name: str) -> Path:
    """A shipped data file or folder, `name` relative to data/ (`"suites"`, `"presets.json"`).

    Installed, it is read through `importlib.resources` from the package `envirollm_core.data`. In a source tree
    the tree's own data/ folder is read: the package name could resolve to another checkout's (an editable
    install made elsewhere), and one tree's code must read that tree's data. pip unpacks a wheel into files,
    so the result is a path on disk either way."""
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "data").is_dir():
        return REPO_ROOT / "data" / name
    return Path(str(resources.files(DATA_PACKAGE).joinpath(name)))


def envirollm_home() -> Path:
    """`$ENVIROLLM_HOME`, defaulting to `~/.envirollm`."""
    return Path(os.environ.get("ENVIROLLM_HOME") or Path.home() / ".envirollm").expanduser()


def default_db_path() -> Path:
    return envirollm_home() / "envirollm.duckdb"


def sysfs_root() -> Path:
    """`$ENVIROLLM_SYSFS_ROOT`, defaulting to `/sys`, so tests can point at a fake tree."""
    return Path(os.environ.get("ENVIROLLM_SYSFS_ROOT") or "/sys")
