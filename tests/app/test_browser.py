"""The app in a real browser (headless Debian Chromium): every page opens, an upload is analysed, and
README's screenshot (the Results page with data) is taken."""

from pathlib import Path

import pytest

from envirollm_core.store import Store
from envirollm_core.views import export_bytes
from tests.app.runs_factory import realistic_runs

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
RENDER_TIMEOUT_MS = 60_000
# url path -> a heading the page always shows, and a text that proves its body rendered
PAGES = {
    "": ("Monitor", "LLM servers running now"),
    "benchmark": ("Benchmark", "Start the benchmark"),
    "results": ("Results", "No runs stored yet"),
    "recommendations": ("Recommendations", "What fits this machine"),
    "usage": ("Usage", "Metering proxy"),
    "import": ("Import", "Export file"),
    "settings": ("Settings", "Save the settings"),
    "system": ("System", "Embedded engine"),
}


def wait_rendered(page, heading: str, text: str) -> None:
    page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=RENDER_TIMEOUT_MS)
    page.get_by_text(text).first.wait_for(timeout=RENDER_TIMEOUT_MS)


def bubbles(page):
    """The drawn points of the visible scatter charts (Vega draws them as svg symbols)."""
    return page.locator("[data-testid='stVegaLiteChart'] .mark-symbol.role-mark path")


def test_every_page_opens_without_errors(app_url, page):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for path, (heading, text) in PAGES.items():
        page.goto(f"{app_url}/{path}")
        wait_rendered(page, heading, text)
        assert page.locator("[data-testid='stException']").count() == 0, path
    assert not errors


def test_import_draws_an_uploaded_csv_and_results_make_the_readme_screenshot(app_url, app_home, page, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    source = Store(tmp_path / "exported.duckdb")
    source.add_runs(realistic_runs())
    upload = tmp_path / "envirollm-runs.csv"
    upload.write_bytes(export_bytes(source, "csv"))

    page.goto(f"{app_url}/import")
    wait_rendered(page, "Import", "Export file")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
    page.get_by_text("48 runs read from envirollm-runs.csv").wait_for(timeout=RENDER_TIMEOUT_MS)
    bubbles(page).nth(3).wait_for(timeout=RENDER_TIMEOUT_MS)  # four configurations, four bubbles
    assert bubbles(page).count() == 4
    database = app_home / "envirollm.duckdb"
    assert not database.exists() or Store(database, read_only=True).count() == 0  # analysed in the session only

    Store(app_home / "envirollm.duckdb").add_runs(realistic_runs())
    page.goto(f"{app_url}/results")
    wait_rendered(page, "Results", "Runs (24)")
    bubbles(page).nth(3).wait_for(timeout=RENDER_TIMEOUT_MS)
    page.get_by_text("Answer of", exact=False).first.wait_for(timeout=RENDER_TIMEOUT_MS)
    assert page.locator("[data-testid='stException']").count() == 0
    assert not errors
    page.set_viewport_size({"width": 1400, "height": 1800})  # the app scrolls inside itself: show more of it
    page.get_by_text("Energy by component").first.wait_for(timeout=RENDER_TIMEOUT_MS)
    bubbles(page).nth(3).wait_for(timeout=RENDER_TIMEOUT_MS)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 50_000
