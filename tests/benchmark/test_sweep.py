"""Load sweeps against scripted servers (known saturation, refusals, drops) and against the real embedded engine."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
from datetime import timedelta
import time

import polars as pl
import pytest

from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.sweep import SweepConfig, SweepProgress, find_knee, levels_of, run_sweep
from envirollm_core.store import Store
from envirollm_core.telemetry.sampler import get_sampler
from tests.fakes import scripted_server
from tests.fakes.saturating_server import MODEL, SaturatingServer, WindowEdges
from tests.fakes.scripted_server import Reply, Request, json_reply

PROMPT = (Prompt("Say something."),)


@pytest.fixture(autouse=True)
def no_busy_wait(monkeypatch):
    """The scripted server shares this process with the client: its threads must not busy-wait for the GIL
    the client's event loop needs (the truth it records is taken after each send anyway)."""
    monkeypatch.setattr(scripted_server, "SPIN_S", 0.0)


def test_sweep_finds_the_knee_and_times_throughput_within_2_percent():
    saturating = SaturatingServer(knee=4, stream_tps=100.0)
    sampler = WindowEdges(get_sampler())
    with saturating.server:
        backend = OpenAIBackend(f"{saturating.server.url}/v1", name="openai")
        # Long enough requests that a stream's turnaround (a new connection, the server's new thread: ~10 ms on
        # a loaded machine) costs the server little idle time at exactly its saturation level.
        config = SweepConfig(model=MODEL, prompts=PROMPT, concurrency=(1, 2, 4, 8, 16), max_tokens=50, idle_s=0.2,
                             slo_ttft_s=1.0)
        store = Store()
        result = run_sweep(backend, config, sampler=sampler, store=store)

    assert [lv.concurrency for lv in result.levels] == [1, 2, 4, 8, 16] and not result.cancelled
    assert result.knee == 4
    assert [lv.failed for lv in result.levels] == [0] * 5
    for level in result.levels:
        start_s, end_s = sampler.edges[f"sweep-{result.sweep_id}-c{level.concurrency}"]
        truth = saturating.sent_tps(start_s, end_s)
        assert level.output_tps == pytest.approx(truth, rel=0.02), level.concurrency
        assert level.energy_wh > 0 and level.energy_per_token_wh == pytest.approx(level.energy_wh / level.window_tokens)
        assert level.e2e_p50_s <= level.e2e_p95_s <= level.e2e_p99_s
        assert level.goodput_fraction == 1.0
    tps = [lv.output_tps for lv in result.levels]
    assert tps[0] == pytest.approx(100, rel=0.1) and tps[4] == pytest.approx(400, rel=0.1)  # one stream; capacity
    # Every request is a stored run of the sweep, with its level; the levels are stored too.
    runs = store.runs_frame(batch_id=result.sweep_id)
    assert runs.height == len(result.runs) == sum(max(8, 4 * level) for level in (1, 2, 4, 8, 16))
    assert sorted(set(runs["sweep_concurrency"])) == [1, 2, 4, 8, 16]
    assert runs["energy_wh"].null_count() == runs.height  # overlapping streams have no energy of their own
    stored = store.sweep_levels(result.sweep_id)
    assert stored["concurrency"].to_list() == [1, 2, 4, 8, 16]
    assert find_knee(levels_of(stored)) == 4


class OverloadedServer(SaturatingServer):
    """Refuses (HTTP 503) a request that finds two others running, and drops every third stream it serves."""

    def __init__(self) -> None:
        super().__init__(knee=2, stream_tps=200.0)
        self.served = 0

    def chat(self, request: Request) -> Reply:
        with self.lock:
            if self.running >= 2:
                return json_reply({"error": {"message": "server overloaded"}}, status=503)
            self.served += 1
            drop = self.served % 3 == 0
        reply = super().chat(request)
        if drop:
            return Reply(parts=itertools.islice(reply.parts, 3), content_type="text/event-stream", drop=True)
        return reply


def test_refused_and_dropped_requests_are_failed_runs_counted_per_level():
    overloaded = OverloadedServer()
    with overloaded.server:
        backend = OpenAIBackend(f"{overloaded.server.url}/v1", name="openai")
        config = SweepConfig(model=MODEL, prompts=PROMPT, concurrency=(1, 4), max_tokens=10, idle_s=0,
                             requests_per_level=12)
        store = Store()
        result = run_sweep(backend, config, store=store)

    assert [lv.concurrency for lv in result.levels] == [1, 4] and not result.cancelled
    one, four = result.levels
    assert one.requests == four.requests == 12
    assert one.failed == 4  # every third stream dropped, none refused (one at a time)
    assert four.failed > one.failed
    failed = [r for r in result.runs if r.status == "failed"]
    assert len(failed) == one.failed + four.failed == result.failed
    assert any("HTTP 503" in r.error and "overloaded" in r.error for r in failed if r.sweep_concurrency == 4)
    assert any("dropped midway" in r.error for r in failed)
    runs = store.runs_frame(batch_id=result.sweep_id)
    counts = runs.group_by("sweep_concurrency").agg((pl.col("status") == "failed").sum().alias("failed")).sort("sweep_concurrency")
    assert counts["failed"].to_list() == [one.failed, four.failed]


def test_a_server_that_is_not_there_fails_every_request_and_nothing_crashes(closed_port):
    backend = OpenAIBackend(f"http://127.0.0.1:{closed_port}/v1", name="openai")
    config = SweepConfig(model=MODEL, prompts=PROMPT, concurrency=(1, 2), idle_s=0, requests_per_level=4)
    result = run_sweep(backend, config, store=Store())
    assert [(lv.requests, lv.failed, lv.output_tps) for lv in result.levels] == [(4, 4, 0.0), (4, 4, 0.0)]
    assert all("cannot connect" in run.error for run in result.runs)


def test_cancel_ends_the_sweep_and_keeps_the_finished_levels():
    saturating = SaturatingServer(knee=4, stream_tps=200.0)
    cancel = threading.Event()

    class CancelAfterFirst(SweepProgress):
        def level_done(self, level):
            cancel.set()

    with saturating.server:
        backend = OpenAIBackend(f"{saturating.server.url}/v1", name="openai")
        config = SweepConfig(model=MODEL, prompts=PROMPT, concurrency=(1, 2, 4), max_tokens=10, idle_s=0)
        store = Store()
        result = run_sweep(backend, config, store=store, progress=CancelAfterFirst(), cancel=cancel)
    assert result.cancelled and [lv.concurrency for lv in result.levels] == [1]
    assert store.sweep_levels(result.sweep_id)["concurrency"].to_list() == [1]
    assert chat_requests(saturating.server) == 8 == len(result.runs)


def chat_requests(server) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


CLI = [sys.executable, "-m", "envirollm_core"]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_cli_sweep_prints_json_and_stores_the_sweep(tmp_path):
    saturating = SaturatingServer(knee=2, stream_tps=100.0)
    db = tmp_path / "sweep.duckdb"
    with saturating.server:
        done = run_cli("sweep", "--url", f"{saturating.server.url}/v1", "--model", MODEL, "--concurrency", "1,2,4",
                       "--max-tokens", "20", "--idle-s", "0.2", "--slo-ttft", "5", "--preset", "explanation",
                       "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["knee"] == 2 and output["failed"] == 0 and not output["cancelled"]
    assert [lv["concurrency"] for lv in output["levels"]] == [1, 2, 4]
    level = output["levels"][0]
    for key in ("output_tps", "requests_per_s", "ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "itl_p99_s", "e2e_p99_s",
                "goodput_rps", "goodput_fraction", "energy_wh", "energy_net_wh", "energy_per_token_wh",
                "energy_per_request_wh", "components", "failed", "requests"):
        assert key in level
    assert level["energy_per_token_wh"] > 0 and level["components"][0]["source"]
    assert Store(db).sweep_levels(output["sweep_id"]).height == 3


def test_cli_sweep_table(tmp_path):
    saturating = SaturatingServer(knee=1, stream_tps=100.0)
    with saturating.server:
        done = run_cli("sweep", "--url", f"{saturating.server.url}/v1", "--model", MODEL, "--concurrency", "1,2",
                       "--max-tokens", "20", "--idle-s", "0", "--db", str(tmp_path / "t.duckdb"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["conc", "reqs", "failed", "tok/s"]
    assert lines[2].startswith("1 *knee") and "knee: concurrency 1" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--concurrency", "4,2"], "increasing order"),
    (["--concurrency", "1,x"], "whole numbers"),
    (["--concurrency", "0"], "between 1 and"),
    (["--concurrency", "1,8", "--requests-per-level", "4"], "at least twice"),
    (["--suite", "nope"], "unknown suite 'nope'"),
    (["--slo-ttft", "0"], "--slo-ttft must be"),
    (["--preset", "nope"], "unknown preset"),
])
def test_cli_sweep_refuses_bad_input_in_one_line(args, message, closed_port, tmp_path):
    done = run_cli("sweep", "--url", f"http://127.0.0.1:{closed_port}/v1", "--model", MODEL, "--idle-s", "0",
                   "--db", str(tmp_path / "x.duckdb"), *args)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_ctrl_c_keeps_every_finished_level(tmp_path):
    saturating = SaturatingServer(knee=1, stream_tps=20.0)  # slow: each request of 10 tokens takes 0.5 s or more
    db = tmp_path / "c.duckdb"
    with saturating.server:
        process = subprocess.Popen(
            [*CLI, "sweep", "--url", f"{saturating.server.url}/v1", "--model", MODEL, "--concurrency", "1,2,4",
             "--max-tokens", "4", "--idle-s", "0", "--requests-per-level", "8", "--db", str(db), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for line in process.stderr:
            if line.startswith("concurrency 2:") and "requests" in line:  # the second level has started
                break
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    output = json.loads(stdout)
    assert output["cancelled"] and [lv["concurrency"] for lv in output["levels"]] == [1]
    store = Store(db)
    assert store.sweep_levels()["concurrency"].to_list() == [1]
    assert set(store.runs_frame()["sweep_concurrency"]) <= {1, 2}


def test_embedded_engine_one_slot_throughput_flat_latency_growing(embedded_engine):
    from envirollm_core.backends.embedded import embedded_backend

    config = SweepConfig(model=embedded_engine.model_id, prompts=PROMPT, concurrency=(1, 2, 4), max_tokens=8,
                         idle_s=0, requests_per_level=8)
    with embedded_backend(embedded_engine) as backend:
        result = run_sweep(backend, config, store=Store())
    assert result.failed == 0 and [lv.concurrency for lv in result.levels] == [1, 2, 4]
    one, two, four = result.levels
    # One slot: requests queue, so more of them at once add waiting, not throughput. How fast the engine
    # decodes moves with the machine's other load, so the throughput bound is loose; that the streams never
    # decode at the same time is what makes it flat, and that is checked exactly.
    assert four.output_tps < 2 * one.output_tps
    assert one.e2e_p50_s < two.e2e_p50_s < four.e2e_p50_s and four.ttft_p50_s > 2 * one.ttft_p50_s
    decoding = sorted((run.created_at + timedelta(seconds=run.ttft_s), run.created_at + timedelta(seconds=run.e2e_s))
                      for run in result.runs if run.sweep_concurrency == 4)
    for (_, ended), (started, _) in zip(decoding, decoding[1:]):
        assert started >= ended - timedelta(milliseconds=50)


def test_compare_and_recommend_know_sweeps_and_keep_them_out_of_the_single_stream_statistics(tmp_path):
    saturating = SaturatingServer(knee=1, stream_tps=20.0)
    db = tmp_path / "cr.duckdb"
    with saturating.server:
        backend = OpenAIBackend(f"{saturating.server.url}/v1", name="openai")
        # One stream gets 20 tokens/s (50 ms gaps); four share that (200 ms gaps), over the 150 ms inter-token SLO.
        config = SweepConfig(model=MODEL, prompts=PROMPT, concurrency=(1, 4), max_tokens=12, idle_s=0,
                             slo_itl_s=0.15)
        result = run_sweep(backend, config, store=Store(db))
    goodput = [lv.goodput_fraction for lv in result.levels]
    assert goodput[0] >= 0.95 and goodput[1] == 0.0, goodput

    compared = run_cli("compare", "--db", str(db), "--json")
    assert compared.returncode == 0, compared.stderr
    output = json.loads(compared.stdout)
    assert output["groups"] == []  # a sweep's overlapping runs are no single-stream statistics
    (sweep,) = output["sweeps"]
    assert sweep["sweep_id"] == result.sweep_id and sweep["knee"] == 1 and sweep["levels"] == [1, 4]
    assert sweep["best_level"] == 1 and sweep["slo_itl_s"] == 0.15

    recommended = run_cli("recommend", "--db", str(db), "--json", "--country", "FRA")
    assert recommended.returncode == 0, recommended.stderr
    (pick,) = json.loads(recommended.stdout)["sweeps"]
    assert pick["best_level"] == sweep["best_level"] and pick["per_1k_tokens"]["co2_g"] > 0

    table = run_cli("recommend", "--db", str(db), "--country", "FRA")
    assert "load sweeps" in table.stdout and result.sweep_id[:8] in table.stdout
