"""Crashes: the CLI killed with SIGKILL in the middle of a batch.

Afterwards the database must open, every run the CLI reported finished must be there intact, and no
run cut short may show as complete. SIGKILL gives the process no chance to clean up, so what survives
is only what was already committed: runs must be stored as they finish, not at the end of the batch.
The embedded engine must not outlive a killed parent (`envirollm demo`; `serve-embedded` is covered by
tests/test_cli.py::test_engine_dies_with_a_killed_parent).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import psutil
import pytest

from envirollm_core.store import Store
from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream
from tests.fakes.cli import CLI, run_cli
from tests.test_cli import _wait_gone

MODEL = "qwen2.5-7b-instruct"
PROGRESS = re.compile(r"\] (\d+)/(\d+) .*: (ok|FAILED)")


def start_batch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())


def kill_after(batch: subprocess.Popen, runs_done: int, extra_s: float) -> int:
    """SIGKILL the batch `extra_s` after it reported `runs_done` finished runs; returns how many it reported."""
    reported = 0
    assert batch.stderr is not None
    for line in batch.stderr:
        match = PROGRESS.search(line)
        if match:
            reported = int(match.group(1))
            if reported >= runs_done:
                break
    assert reported >= runs_done, "the batch ended before it could be killed"
    time.sleep(extra_s)
    batch.send_signal(signal.SIGKILL)
    batch.wait(timeout=30)
    for line in batch.stderr.read().splitlines():  # what it printed before it died
        match = PROGRESS.search(line)
        if match:
            reported = int(match.group(1))
    return reported


def assert_intact(reported: int, script: TokenScript) -> None:
    """The database opens; each run reported finished is there whole; nothing cut short shows as complete."""
    runs = Store().runs()
    # A run is stored before its progress line is printed: the kill may fall between the two.
    assert reported <= len(runs) <= reported + 1, (reported, len(runs))
    for run in runs:
        assert run.status == "ok" and run.error is None
        assert run.response == "".join(script.tokens) and run.completion_tokens == len(script.tokens)
        assert run.energy_wh is not None and run.components
    assert sorted(run.repeat_index for run in runs) == list(range(len(runs)))
    listed = run_cli("list", "--json")  # and the CLI reads it as a user would
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize(
    ("tokens_per_s", "runs_done", "extra_s"),
    [(10.0, 3, 0.5), (2000.0, 5, 0.05)],
    ids=["killed-mid-stream", "killed-among-fast-writes"],
)
def test_sigkill_mid_batch_keeps_every_finished_run(serve, isolated_home, tokens_per_s, runs_done, extra_s):
    script = TokenScript(tokens=[f"t{i} " for i in range(10)], ttft_s=0.05, tokens_per_s=tokens_per_s)
    server = serve(openai_routes([MODEL], openai_stream(MODEL, script)))
    batch = start_batch("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--repeat", "200",
                        "--warmup", "0", "--idle-s", "0", "--judge", "none", "--max-tokens", "10")
    reported = kill_after(batch, runs_done, extra_s)
    assert_intact(reported, script)


@pytest.mark.engine
def test_a_killed_demo_leaves_no_engine_and_keeps_its_finished_runs(isolated_home):
    demo = start_batch("demo", "--repeat", "6", "--warmup", "0", "--idle-s", "0", "--judge", "none",
                       "--max-tokens", "32", "--prompt", "Name three colours.")
    reported = kill_after(demo, 1, 0.2)
    marker = f"--parent-pid {demo.pid} "
    engines = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or []) + " "]
    assert all(_wait_gone(engine.pid) for engine in engines), "the embedded engine outlived the killed demo"
    runs = Store().runs()
    assert reported <= len(runs) <= reported + 1
    assert all(run.status == "ok" and run.response and run.backend == "embedded" for run in runs)


def test_scores_of_the_judge_reach_the_runs_stored_one_by_one(serve, isolated_home):
    """Runs are stored as they finish and graded after the last: the grades must reach the stored runs."""
    from envirollm_core.backends.openai_compat import OpenAIBackend
    from envirollm_core.benchmark.presets import get_preset
    from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
    from envirollm_core.quality import JudgeConfig

    script = TokenScript(tokens=[f"t{i} " for i in range(10)], ttft_s=0.02, tokens_per_s=500.0)
    server = serve(openai_routes([MODEL], openai_stream(MODEL, script)))
    config = BenchmarkConfig(models=(MODEL,), prompts=(get_preset("explanation").as_prompt(),), repeat=2, warmup=0,
                             max_tokens=10, idle_s=0)
    batch = run_benchmark(OpenAIBackend(f"{server.url}/v1"), config, store=Store(),
                          judge=JudgeConfig(None, None, disabled=True))
    stored = {run.id: run for run in Store().runs()}
    for run in batch.runs:
        assert run.quality_method == "heuristic" and run.quality_score is not None
        back = stored[run.id]
        assert (back.quality_score, back.quality_method, back.quality_detail) == (
            run.quality_score, run.quality_method, run.quality_detail)
