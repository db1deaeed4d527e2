"""A real `streamlit run` of the app and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fakes.served_app import streamlit_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def app_home(tmp_path_factory) -> Path:
    """The ENVIROLLM_HOME of the served app (its database is `app_home / "envirollm.duckdb"`)."""
    return tmp_path_factory.mktemp("app-home")


@pytest.fixture(scope="module")
def app_url(app_home):
    """The app served by `streamlit run` on a free loopback port, with its own ENVIROLLM_HOME."""
    with streamlit_app(app_home, app_home.parent / f"{app_home.name}-streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


from tests.fakes.fixtures import closed_port, http_clients, serve  # noqa: F401  (pytest fixtures: scripted servers)


@pytest.fixture
def populated_store(isolated_home):
    """The default database (in this test's ENVIROLLM_HOME) filled with realistic runs through the core Store."""
    from envirollm_core.store import Store
    from tests.fakes.runs import realistic_runs

    store = Store()
    store.add_runs(realistic_runs())
    return store
