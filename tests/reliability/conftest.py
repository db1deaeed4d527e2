"""Fixtures of the reliability tests: the app served as on a LAN, with its log kept.

Their helpers (the CLI as a user runs it, leak checks, a server that restarts) live in tests/fakes, as do the
scripted servers and the browser fixtures imported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.browser import browser, page  # noqa: F401  (pytest fixtures: headless Chromium)
from tests.fakes.fixtures import closed_port, serve  # noqa: F401  (pytest fixtures)
from tests.fakes.served_app import streamlit_app


# -- the app served as on a LAN, with its log kept ------------------------------------------------


@dataclass
class ServedApp:
    url: str
    home: Path
    log: Path

    @property
    def db(self) -> Path:
        return self.home / "envirollm.duckdb"


@pytest.fixture(scope="module")
def served_app(tmp_path_factory) -> Iterator[ServedApp]:
    """`streamlit run` of the app on a free loopback port, its own ENVIROLLM_HOME, stdout and stderr kept in a file."""
    home = tmp_path_factory.mktemp("served-home")
    log = home.parent / f"{home.name}-streamlit.log"
    with streamlit_app(home, log, "--logger.level", "info") as url:
        yield ServedApp(url, home, log)
