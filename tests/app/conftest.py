"""A real `streamlit run` of the app and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from envirollm_core.backends.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    port = free_port("127.0.0.1")
    env = {**os.environ, "ENVIROLLM_HOME": str(app_home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"streamlit did not start: {server.stderr.read().decode()[-2000:]}")
    yield url
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


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
    from tests.app.runs_factory import realistic_runs

    store = Store()
    store.add_runs(realistic_runs())
    return store
