"""The app in a real browser (headless Debian Chromium), looked at as a person would, not only loaded.

Every page is opened with an empty database and again with runs stored, and the Import page with an original
EnviroLLM CSV and with one of our exports. On each: every chart (in every tab) has a plot area of a real height
(the Vega-Lite view's, >= 100 px), tick labels on both axes and at least one mark; no exception, no text `None`,
no request to any host but the app's (an offline machine must not miss anything). A screenshot of each page in
each state is written to docs/screenshots/ (README shows two of them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from envirollm_core.store import Store
from envirollm_core.views import export_bytes
from tests.fakes.runs import original_envirollm_csv, realistic_runs

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
RENDER_TIMEOUT_MS = 60_000
MIN_PLOT_HEIGHT_PX = 100
SHOT_VIEWPORT = {"width": 1440, "height": 1500}  # the app scrolls inside itself: a tall window shows more of it
# url path -> screenshot name, heading, and a text each page shows once its body has rendered (empty database)
PAGES = {
    "": ("monitor", "Monitor", "LLM servers running now"),
    "benchmark": ("benchmark", "Benchmark", "Start the benchmark"),
    "results": ("results", "Results", "No runs stored yet"),
    "recommendations": ("recommendations", "Recommendations", "No runs stored yet"),
    "usage": ("usage", "Usage", "Metering proxy"),
    "import": ("import", "Import", "Export file"),
    "settings": ("settings", "Settings", "Save the settings"),
    "system": ("system", "System", "Embedded engine"),
}
WITH_DATA = {"results": "Energy by component", "recommendations": "A month of your use"}

# Each visible Vega chart as the browser drew it: the plot area's height (the root frame's background), the tick
# labels of its x and y axes, and its marks (lines, symbols, bars, texts: not legends, axes or grid lines).
CHARTS_JS = """() => Array.from(document.querySelectorAll("[data-testid='stVegaLiteChart']"))
  .filter(chart => chart.offsetParent !== null)
  .map(chart => {
    const svg = chart.querySelector("svg.marks");
    if (!svg) return {title: "(not drawn)", height: 0, x_labels: 0, y_labels: 0, marks: 0};
    const frame = svg.querySelector("g.role-frame.root > g > path.background");
    const labels = axis => svg.querySelectorAll(`g[aria-label^='${axis}-axis'] .role-axis-label text`).length;
    return {
      title: Array.from(svg.querySelectorAll(".role-title-text text")).map(t => t.textContent).join(" ") ||
             (chart.closest("[data-testid='stColumn']") || chart).innerText.split("\\n")[0],
      height: frame ? frame.getBBox().height : 0,
      x_labels: labels("X"), y_labels: labels("Y"),
      marks: svg.querySelectorAll(".role-mark > *").length,
    };
  })"""


VISIBLE_CHARTS_JS = """() => Array.from(document.querySelectorAll("[data-testid='stVegaLiteChart']"))
  .filter(chart => chart.offsetParent !== null).length"""
# What an opened tab holds once its rerun has sent it: a chart, a table, or a line saying why nothing is drawn.
TAB_CONTENT = ("[data-testid='stVegaLiteChart'], [data-testid='stDataFrame'], [data-testid='stTable'], "
               "[data-testid='stAlert'], [data-testid='stCaptionContainer']")


def chart_problems(charts: list[dict]) -> list[str]:
    problems = []
    for chart in charts:
        if chart["height"] < MIN_PLOT_HEIGHT_PX:
            problems.append(f"{chart['title']!r}: plot area {chart['height']:.0f} px high")
        if not chart["x_labels"] or not chart["y_labels"]:
            problems.append(f"{chart['title']!r}: tick labels x {chart['x_labels']}, y {chart['y_labels']}")
        if not chart["marks"]:
            problems.append(f"{chart['title']!r}: no mark")
    return problems


def drawn_charts(page, at_least: int = 0) -> list[dict]:
    """The visible charts once each has drawn (Vega draws after the page's script, or a tab's rerun, has
    finished); what is there at the deadline otherwise, for the assertion to name."""
    deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
    page.wait_for_timeout(500)
    while True:
        charts = page.evaluate(CHARTS_JS)
        if (len(charts) >= at_least and not chart_problems(charts)) or time.monotonic() > deadline:
            return charts
        page.wait_for_timeout(250)


def looks_right(page, at_least: int = 0) -> int:
    """Asserts how the page looks; returns how many charts it drew (those in every tab included), waiting
    for `at_least` to be visible before any tab is clicked."""
    main = page.locator("[data-testid='stMain']")
    assert page.locator("[data-testid='stException']").count() == 0
    assert not re.search(r"\bNone\b", main.inner_text()), "the text None is shown"
    charts = drawn_charts(page, at_least)
    assert not chart_problems(charts), chart_problems(charts)
    count = len(charts)
    for tab in page.get_by_role("tab").all():
        if tab.get_attribute("aria-selected") == "true":
            continue
        tab_id = tab.get_attribute("id")
        tab.click()  # the page reruns and sends only the opened tab's content
        panel = page.locator(f"[role='tabpanel'][aria-labelledby='{tab_id}']")
        panel.locator(TAB_CONTENT).first.wait_for(timeout=RENDER_TIMEOUT_MS)
        charts = drawn_charts(page, page.evaluate(VISIBLE_CHARTS_JS))
        assert not chart_problems(charts), (tab.inner_text(), chart_problems(charts))
        count += panel.locator("[data-testid='stVegaLiteChart']").count()
    return count


def open_page(page, app_url: str, path: str, text: str) -> None:
    page.goto(f"{app_url}/{path}")
    page.get_by_role("heading", name=PAGES[path][1], exact=True).wait_for(timeout=RENDER_TIMEOUT_MS)
    page.get_by_text(text).first.wait_for(timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector(\"[data-testid='stStatusWidget']\")",
                           timeout=RENDER_TIMEOUT_MS)


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if page.get_by_role("tab").count():  # the first tab's chart, as a visitor first sees it
        page.get_by_role("tab").first.click()
    page.wait_for_timeout(500)
    page.wait_for_function("() => !document.querySelector(\"[data-testid='stStatusWidgetRunningIcon']\")",
                           timeout=RENDER_TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.fixture
def watched_page(browser, app_url):
    """A tall page whose script errors and requests to any host but the app's are recorded."""
    context = browser.new_context(viewport=SHOT_VIEWPORT)
    page = context.new_page()
    page.errors, page.foreign = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    app_host = urlparse(app_url).netloc
    page.on("request", lambda request: page.foreign.append(request.url)
            if urlparse(request.url).scheme in ("http", "https", "ws", "wss")
            and urlparse(request.url).netloc != app_host else None)
    yield page
    assert not page.errors
    assert not page.foreign, f"requests beyond the app: {page.foreign[:5]}"
    context.close()


def test_every_page_with_an_empty_database(app_url, app_home, watched_page):
    assert not (app_home / "envirollm.duckdb").exists() or Store(app_home / "envirollm.duckdb").count() == 0
    for path, (name, _, text) in PAGES.items():
        open_page(watched_page, app_url, path, text)
        charts = looks_right(watched_page, 3 if path == "" else 0)
        if path == "":
            assert charts >= 3  # power, CPU and RAM: the sampler runs whatever is stored
            # The one "no GPU" notice of the sampler, not a second one beside the charts.
            assert watched_page.get_by_text(re.compile("NVIDIA GPU", re.I)).count() <= 1
        shoot(watched_page, f"{name}-empty")


def test_import_an_original_envirollm_csv(app_url, watched_page, tmp_path):
    upload = original_envirollm_csv(tmp_path / "envirollm_benchmarks_20251002_140700.csv")
    open_page(watched_page, app_url, "import", "Export file")
    watched_page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
    watched_page.get_by_text(f"15 runs read from {upload.name}").wait_for(timeout=RENDER_TIMEOUT_MS)
    assert watched_page.get_by_text("not saved").count() == 1
    # The original keeps tokens over the whole request, not a decode rate: the axis says which speed it is.
    watched_page.locator("svg .role-axis-title text", has_text="End-to-end speed").first.wait_for(
        timeout=RENDER_TIMEOUT_MS)
    assert looks_right(watched_page, 1) == 4
    shoot(watched_page, "import-original")


def test_every_page_with_runs_stored(app_url, app_home, watched_page, tmp_path):
    exported = Store(tmp_path / "exported.duckdb")
    exported.add_runs(realistic_runs())
    upload = tmp_path / "envirollm-runs.csv"
    upload.write_bytes(export_bytes(exported, "csv"))
    Store(app_home / "envirollm.duckdb").add_runs(realistic_runs())

    for path, (name, _, text) in PAGES.items():
        open_page(watched_page, app_url, path, WITH_DATA.get(path, text))
        if path == "import":
            watched_page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
            watched_page.get_by_text("48 runs read from envirollm-runs.csv").wait_for(timeout=RENDER_TIMEOUT_MS)
        expected = {"": 3, "results": 6, "import": 4}.get(path, 0)  # Results: four tabs, and a run's two samples
        charts = looks_right(watched_page, {"": 3, "results": 1, "import": 1}.get(path, 0))
        assert charts >= expected, (path, charts)
        shoot(watched_page, f"{name}-data")
        if path == "import":  # the runs of our export are the ones stored: saving skips them all
            watched_page.get_by_role("button", name="Save these runs to the database").click()
            watched_page.get_by_text("Saved: 0 runs added, 48 already stored").wait_for(timeout=RENDER_TIMEOUT_MS)
            assert watched_page.get_by_text("not saved").count() == 0
