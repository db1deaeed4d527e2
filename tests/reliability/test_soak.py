"""Concurrency soak: a CLI batch, the app's pages and exports on one database at once, for two minutes.

Three kinds of users share `$ENVIROLLM_HOME/envirollm.duckdb`: `envirollm benchmark-openai` batches
one after another (separate processes, against a fast scripted server), `envirollm export` in every
format in a loop (separate processes), and the app's pages rendered in a loop in this process (AppTest,
the same core calls a browser's session makes). No command may fail, no page may show an error, and at
the end the database holds every run the batches reported, once, beside the runs it held before; every
export holds whole runs, none twice. `ENVIROLLM_RELIABILITY_SOAK_S` sets the length (default 120 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from envirollm_core.store import Store, read_runs_file
from tests.fakes.runs import realistic_runs
from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream
from tests.fakes.cli import CLI

SOAK_S = float(os.environ.get("ENVIROLLM_RELIABILITY_SOAK_S", "120"))
REPO = Path(__file__).resolve().parents[2]
MODEL = "llama-3.2-1b-instruct"
SCRIPT = TokenScript(tokens=[f"w{i} " for i in range(8)], ttft_s=0.01, tokens_per_s=800.0)
PAGES = ("results.py", "recommendations.py", "settings.py", "benchmark.py")


class Worker(threading.Thread):
    """Runs one CLI command after another until the deadline; keeps every outcome."""

    def __init__(self, name: str, deadline: float, command) -> None:
        super().__init__(name=name, daemon=True)
        self.deadline, self.command = deadline, command
        self.results: list[tuple[list[str], subprocess.CompletedProcess]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            round_number = 0
            while time.monotonic() < self.deadline:
                args = self.command(round_number)
                result = subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=300)
                self.results.append((args, result))
                round_number += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_a_batch_the_pages_and_exports_at_once_lose_and_duplicate_nothing(serve, isolated_home, tmp_path):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    seeded = realistic_runs(batches=1)
    Store().add_runs(seeded)
    deadline = time.monotonic() + SOAK_S
    formats = ("csv", "parquet", "json")
    batches = Worker("batches", deadline, lambda n: [
        "benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--prompt", f"Soak prompt {n % 3}",
        "--repeat", "12", "--warmup", "0", "--idle-s", "0", "--judge", "none", "--max-tokens", "8", "--json"])
    exports = Worker("exports", deadline, lambda n: [
        "export", "--format", formats[n % 3], "--output", str(tmp_path / f"export-{n}.{formats[n % 3]}")])
    batches.start()
    exports.start()

    renders = 0
    page_problems: list[str] = []
    while time.monotonic() < deadline:
        name = PAGES[renders % len(PAGES)]
        app = AppTest.from_file(str(REPO / "app_pages" / name), default_timeout=120).run()
        page_problems += [f"{name}: {e.value}" for e in (*app.exception, *app.error)]
        renders += 1
    batches.join(timeout=400)
    exports.join(timeout=400)

    assert batches.error is None and exports.error is None, (batches.error, exports.error)
    failures = [(args[0], r.returncode, r.stderr[-800:]) for w in (batches, exports) for args, r in w.results
                if r.returncode != 0]
    assert not failures, failures
    assert not page_problems, page_problems[:5]
    assert len(batches.results) >= 2 and len(exports.results) >= 3 and renders >= 8, (
        len(batches.results), len(exports.results), renders)

    reported = [run["id"] for _, result in batches.results for run in json.loads(result.stdout)]
    print(f"soak {SOAK_S:g} s: {len(batches.results)} batches ({len(reported)} runs), {len(exports.results)} exports, "
          f"{renders} page renders, {len(seeded) + len(reported)} runs stored at the end")
    assert all(run["status"] == "ok" for _, r in batches.results for run in json.loads(r.stdout))
    stored = Store().runs_frame(columns=["id"])["id"].to_list()
    assert len(stored) == len(set(stored)), "a run is stored twice"
    assert set(stored) == {run.id for run in seeded} | set(reported), "runs lost or unexpected"
    assert len(reported) == len(set(reported)) == sum(12 for _ in batches.results)

    previous = 0
    for args, _ in exports.results:
        ids = [run.id for run in read_runs_file(Path(args[-1])).runs]
        assert len(ids) == len(set(ids)), f"{args[-1]} holds a run twice"
        assert {run.id for run in seeded} <= set(ids) <= set(stored), f"{args[-1]} lost or invented runs"
        assert len(ids) >= previous, "an export holds fewer runs than an earlier one"
        previous = len(ids)
