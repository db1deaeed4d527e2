"""How long each EnviroLLM page takes to load, against Streamlit's own `streamlit hello`, side by side in one run.

For each database size (built with `bench/store_queries.py`'s builder: 50 prompts, 12 models, 3 backends, 100
samples per run), serves the app and `streamlit hello` at the same time on loopback ports: the app as its users
start it (`streamlit run streamlit_app.py` in the repository, so with its `.streamlit/config.toml`), hello as
Streamlit ships it (started from a folder without a config file, so with Streamlit's defaults; until 2026-12-03
it was started in the repository, and so ran with the app's config too). It visits them in turns (hello, then
every page; again, `--repeat` times), each visit in a new browser context (a new Streamlit session) of headless
Debian Chromium, so that the load of a shared machine falls on both alike. The clock runs from navigation until
the page's script has finished: its last element is on screen and Streamlit's "running" indicator is gone. It
is the page's own clock (`performance.now()`, read in the frame after a `MutationObserver` first sees both);
until 2026-12-03 it was the time Playwright's waiting for the same returned, which polls the page (up to every
0.5 s once a wait runs long) and so added 0.05-0.5 s to a visit, more to slower ones: that figure is still
printed beside it. One untimed visit of each warms both servers first (imports, file cache). Prints one
Markdown table per size: each page's median, and its ratio to hello's median.

    python bench/page_speed.py                         # 1,000 and 100,000 runs, median of 3
    python bench/page_speed.py --runs 1000 --repeat 5

Target (issue 12): every page <= 1.3x `streamlit hello`, at 1,000 and at 100,000 stored runs; each table ends
with the verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from results_page_render import CHROMIUM, CHROMIUM_ARGS, serve
from store_queries import build

TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1440, "height": 900}  # the window
TARGET_RATIO = 1.3
# page title -> url path, and the text of the last element its script draws (with runs stored)
PAGES = {
    "Monitor": ("", "LLM servers running now"),
    "Benchmark": ("benchmark", "Start the benchmark"),
    "Results": ("results", "Delete this run for good"),
    "Recommendations": ("recommendations", "times 30 days"),
    "Usage": ("usage", "Start the proxy"),
    "Import": ("import", "Export file"),
    "Settings": ("settings", "Save the settings"),
    "System": ("system", "Start the engine and ask"),
}
HELLO = ("streamlit hello", ("", "Welcome to Streamlit"))
# Also shown, not judged: hello started in the repository, with the app's `.streamlit/config.toml` (what the
# app's server settings alone are worth).
HELLO_APP_CONFIG = "streamlit hello (with the app's config)"
BASELINES = (HELLO[0], HELLO_APP_CONFIG)


# Installed before the page's own scripts: at each change of the document, whether `text` is there and
# Streamlit's "running" indicator is not; the first time both hold, the next frame's time (the page's clock,
# milliseconds from the start of its navigation) is kept in `window.__envirollm_loaded_ms`.
LOADED_WATCH_JS = """(text) => {
  const check = (mutations, observer) => {
    if (!document.body || !document.body.textContent.includes(text)) return;
    if (document.querySelector("[data-testid='stStatusWidgetRunningIcon']")) return;
    observer.disconnect();
    requestAnimationFrame(() => { window.__envirollm_loaded_ms = performance.now(); });
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, characterData: true});
}"""


def load_s(page: Page, url: str, last_text: str) -> tuple[float, float]:
    """Seconds from navigation until `last_text` is shown and the script is no longer running: by the page's
    own clock, and as Playwright's waiting for the same sees it (it polls, up to every 0.5 s)."""
    page.add_init_script(f"({LOADED_WATCH_JS})({json.dumps(last_text)})")
    started = time.perf_counter()
    page.goto(url)
    page.get_by_text(last_text).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stStatusWidgetRunningIcon']\")", timeout=TIMEOUT_MS
    )
    waited_s = time.perf_counter() - started
    page.wait_for_function("() => window.__envirollm_loaded_ms !== undefined", timeout=TIMEOUT_MS)
    return page.evaluate("() => window.__envirollm_loaded_ms") / 1000, waited_s


def measure(app_url: str, hello_urls: tuple[str, str], repeat: int) -> dict[str, list[tuple[float, float]]]:
    """`repeat` timed visits of both hellos and of every page, in turns, after one untimed visit of each."""
    targets = {name: (url, HELLO[1][1]) for name, url in zip(BASELINES, hello_urls)}
    targets |= {title: (f"{app_url}/{path}", text) for title, (path, text) in PAGES.items()}
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for round_index in range(repeat + 1):
            for name, (url, text) in targets.items():
                context = browser.new_context(viewport=VIEWPORT)
                seconds = load_s(context.new_page(), url, text)  # (page's clock, Playwright's wait)
                context.close()
                if round_index:  # the first round only warms the servers
                    timings[name].append(seconds)
        browser.close()
    return timings


def table(n_runs: int, timings: dict[str, list[tuple[float, float]]]) -> str:
    loaded = {name: [page_s for page_s, _ in visits] for name, visits in timings.items()}
    waited = {name: statistics.median(waited_s for _, waited_s in visits) for name, visits in timings.items()}
    hello = statistics.median(loaded[HELLO[0]])
    lines = [f"| {n_runs:,} runs stored | median load (s) | all visits (s) | ratio to `streamlit hello` "
             "| Playwright's wait: median (s), ratio |",
             "| --- | ---: | --- | ---: | ---: |"]
    for name, seconds in loaded.items():
        median = statistics.median(seconds)
        verdict = "" if name in BASELINES else (" ok" if median / hello <= TARGET_RATIO else " **over 1.3x**")
        lines.append(f"| {name} | {median:.2f} | {', '.join(f'{s:.2f}' for s in seconds)} "
                     f"| {median / hello:.2f}x{verdict} | {waited[name]:.2f}, {waited[name] / waited[HELLO[0]]:.2f}x |")
    over = [name for name, seconds in loaded.items()
            if name not in BASELINES and statistics.median(seconds) / hello > TARGET_RATIO]
    lines.append(f"\nVerdict at {n_runs:,} runs: target (<= {TARGET_RATIO}x `streamlit hello`) "
                 + ("met by every page." if not over else f"NOT met by {len(over)} of {len(PAGES)} pages "
                    f"({', '.join(over)})."))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000,100000", help="database sizes in runs, comma-separated")
    parser.add_argument("--samples-per-run", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="timed visits of each page per size (median reported)")
    parser.add_argument("--dir", type=Path, default=None, help="keep the databases here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.dir or Path(temporary)
        for n_runs in (int(size) for size in args.runs.split(",")):
            home = folder / f"home-{n_runs}"
            database = home / "envirollm.duckdb"
            if not database.exists():  # a kept database (--dir) is reused as it is
                home.mkdir(parents=True, exist_ok=True)
                build_s = build(database, n_runs, args.samples_per_run)
                print(f"built {n_runs:,} runs in {build_s:.0f} s", file=sys.stderr)
            app, app_url = serve(home)
            hello, hello_url = serve(home, "hello", cwd=Path(temporary))  # no config file there: Streamlit's defaults
            hello_app_config, hello_app_config_url = serve(home, "hello")
            try:
                timings = measure(app_url, (hello_url, hello_app_config_url), args.repeat)
            finally:
                for server in (app, hello, hello_app_config):
                    server.terminate()
                    server.wait(timeout=30)
            print(table(n_runs, timings) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
