"""How long the Results page takes to render in a real browser, at 1,000 and at 100,000 stored runs.

For each size, builds the database with the store's benchmark builder
(`bench/store_queries.py`: 50 prompts, 12 models, 3 backends, 100 samples per
run, so 10 million samples at 100,000 runs), serves the app with
`streamlit run` on a loopback port, and opens /results in headless Debian
Chromium, each time in a fresh browser context (a new Streamlit session).
The clock runs from navigation until the page is fully drawn: the script has
finished (no "running" indicator), the energy-vs-speed chart has drawn its
bubbles, the runs table has drawn its grid, and the run viewer shows the
newest run's response and its samples chart. The first visit of a fresh
server (Python imports, cold file cache) is reported apart from the median of
the repeated visits, and an empty database gives the baseline every visit pays
(Streamlit's frontend loading in a new session) whatever the data.

    python bench/results_page_render.py                      # 1,000 and 100,000 runs
    python bench/results_page_render.py --runs 1000,10000 --repeat 3

Target (issue 7): the Results page stays usable at 100,000 runs: its render
time grows far slower than the data (100x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from store_queries import build

from envirollm_core.backends.embedded import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1400, "height": 1800}  # tall enough that the run viewer is drawn, not scrolled away
# Everything that must be on screen before the page counts as rendered (CSS selectors, all visible).
RENDERED = (
    "[data-testid='stVegaLiteChart'] .mark-symbol.role-mark path",  # the chart's bubbles
    "[data-testid='stDataFrame'] canvas",  # the runs table's grid
    "[data-testid='stText']",  # the run viewer's prompt and response
    "[data-testid='stTabPanel'] [data-testid='stTable']",  # the run's energy by component
)


def serve(home: Path, *command: str, cwd: Path = REPO) -> tuple[subprocess.Popen[bytes], str]:
    """`streamlit run` of the app (or another `streamlit` command, such as `hello`) with its own ENVIROLLM_HOME,
    once it answers its health check. Streamlit reads `.streamlit/config.toml` from `cwd`."""
    port = free_port("127.0.0.1")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", *(command or ("run", "streamlit_app.py")), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=cwd, env={**os.environ, "ENVIROLLM_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("streamlit did not start")


def render_s(page: Page, url: str, empty: bool) -> float:
    """Seconds from navigation to the Results page fully drawn (on an empty database: its one message)."""
    started = time.perf_counter()
    page.goto(f"{url}/results")
    if empty:
        page.get_by_text("No runs stored yet").wait_for(timeout=TIMEOUT_MS)
    else:
        for selector in RENDERED:
            page.locator(selector).first.wait_for(state="visible", timeout=TIMEOUT_MS)
        page.get_by_text("Samples during the run").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stStatusWidgetRunningIcon']\")", timeout=TIMEOUT_MS
    )
    return time.perf_counter() - started


def measure(url: str, repeat: int, empty: bool) -> tuple[float, list[float]]:
    """The first visit of a fresh server, then `repeat` visits, each in a new browser context (session)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        timings = []
        for _ in range(repeat + 1):
            context = browser.new_context(viewport=VIEWPORT)
            timings.append(render_s(context.new_page(), url, empty))
            context.close()
        browser.close()
    return timings[0], timings[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000,100000", help="database sizes in runs, comma-separated")
    parser.add_argument("--samples-per-run", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="timed visits per size after the first (median reported)")
    parser.add_argument("--dir", type=Path, default=None, help="keep the databases here (default: a temporary folder)")
    args = parser.parse_args()
    # 0 runs first: the app shell and an empty Results page, what every visit pays whatever the data.
    sizes = [0, *(int(size) for size in args.runs.split(",") if int(size) > 0)]
    results: dict[int, tuple[float, list[float]]] = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.dir or Path(temporary)
        for n_runs in sizes:
            home = folder / f"home-{n_runs}"
            database = home / "envirollm.duckdb"
            if n_runs and not database.exists():  # a kept database (--dir) is reused as it is
                home.mkdir(parents=True, exist_ok=True)
                build_s = build(database, n_runs, args.samples_per_run)
                print(f"built {n_runs:,} runs and {n_runs * args.samples_per_run:,} samples in {build_s:.0f} s",
                      file=sys.stderr)
            server, url = serve(home)
            try:
                results[n_runs] = measure(url, args.repeat, empty=n_runs == 0)
            finally:
                server.terminate()
                server.wait(timeout=30)
            first, warm = results[n_runs]
            print(f"{n_runs:,} runs: first visit {first:.2f} s, then {', '.join(f'{t:.2f}' for t in warm)} s",
                  file=sys.stderr)
    small, large = sizes[1], sizes[-1]
    print(f"| Results page, full render in Chromium (s) | empty database | {small:,} runs | {large:,} runs "
          f"| ratio {large:,} / {small:,} runs (data x{large // small}) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    firsts = {size: results[size][0] for size in sizes}
    medians = {size: statistics.median(results[size][1]) for size in sizes}
    for label, figures in (("first visit of a fresh server", firsts),
                           (f"median of {args.repeat} later visits (a new session each)", medians)):
        print(f"| {label} | {figures[0]:.2f} | {figures[small]:.2f} | {figures[large]:.2f} "
              f"| {figures[large] / figures[small]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
