"""A real `streamlit run` of the app and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.browser import browser, page  # noqa: F401  (pytest fixtures: headless Chromium)
from tests.fakes.served_app import streamlit_app


@pytest.fixture(scope="module")
def app_home(tmp_path_factory) -> Path:
    """The ENVIROLLM_HOME of the served app (its database is `app_home / "envirollm.duckdb"`)."""
    return tmp_path_factory.mktemp("app-home")


@pytest.fixture(scope="module")
def app_url(app_home):
    """The app served by `streamlit run` on a free loopback port, with its own ENVIROLLM_HOME."""
    with streamlit_app(app_home, app_home.parent / f"{app_home.name}-streamlit.log") as url:
        yield url


from tests.fakes.fixtures import closed_port, http_clients, serve  # noqa: F401  (pytest fixtures: scripted servers)


@pytest.fixture
def populated_store(isolated_home):
    """The default database (in this test's ENVIROLLM_HOME) filled with realistic runs through the core Store."""
    from envirollm_core.store import Store
    from tests.fakes.runs import realistic_runs

    store = Store()
    store.add_runs(realistic_runs())
    return store
