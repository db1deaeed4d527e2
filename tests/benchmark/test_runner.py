"""The runner with the real sampler and the real store, against scripted servers."""

from __future__ import annotations

import threading

import pytest

from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.presets import Prompt, get_preset
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from envirollm_core.errors import UsageError
from envirollm_core.quality import JudgeConfig
from envirollm_core.store import Store
from tests.fakes.scripted_server import TokenScript, openai_error, openai_routes, openai_stream, scripted_sequence
from tests.fakes.timing import assert_timing_matches

MODEL = "phi-3-mini-4k-instruct-q4"
SCRIPT = TokenScript(tokens=[f"w{i} " for i in range(30)], ttft_s=0.1, tokens_per_s=100.0)


def config(**overrides) -> BenchmarkConfig:
    values = dict(models=(MODEL,), prompts=(get_preset("explanation").as_prompt(),), repeat=2, warmup=1,
                  max_tokens=32, idle_s=0.2)
    return BenchmarkConfig(**{**values, **overrides})


def chat_requests(server) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


def test_batch_measures_stores_and_skips_warmups(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    store = Store()
    prompts = (get_preset("explanation").as_prompt(), Prompt("Name three prime numbers."))
    batch = run_benchmark(OpenAIBackend(f"{server.url}/v1"), config(prompts=prompts, notes="unit"), store=store)

    assert chat_requests(server) == 1 + 2 * 2  # one warm-up, not stored; then prompts x repeats
    assert [(r.preset, r.repeat_index) for r in batch.runs] == [("explanation", 0), ("explanation", 1), (None, 0), (None, 1)]
    assert {r.status for r in batch.runs} == {"ok"} and batch.failed == 0
    run = batch.runs[0]
    assert run.backend == "openai" and run.base_url == f"{server.url}/v1"
    assert (run.quantization, run.quantization_source) == ("q4", "name")
    assert run.completion_tokens == 30 and run.token_count_source == "usage" and run.prompt_tokens == 12
    timed = [r for r in server.requests if r.path == "/v1/chat/completions"][1:]
    # The accuracy bar holds with the sampler's thread running beside the client, as in every benchmark.
    assert_timing_matches([(r.ttft_s, r.decode_tps) for r in batch.runs], timed, SCRIPT)
    assert run.energy_wh > 0 and run.energy_net_wh is not None
    assert run.energy_per_token_wh == pytest.approx(run.energy_wh / 30)
    assert {c.source for c in run.components} <= {"counter", "power-integral", "average-power", "estimate", "unmeasured"}
    assert run.components and run.trace and run.avg_power_w > 0
    # The scripted server listens in this very process, so the tracked server process is this one.
    assert run.server_peak_rss_mb > 0
    assert (run.temperature, run.max_tokens, run.notes) == (0.0, 32, "unit")
    assert run.environment["cpu_logical_cores"] >= 1 and run.environment["server"] == "openai"
    assert run.quality_score is None and run.quality_method is None  # no judge asked for

    stored = {r.id: r for r in store.runs()}
    assert set(stored) == {r.id for r in batch.runs}
    assert stored[run.id].ttft_s == pytest.approx(run.ttft_s) and stored[run.id].response == run.response


def test_faults_fail_their_run_and_the_batch_goes_on(serve):
    slow = TokenScript(tokens=["late"], ttft_s=1.5, tokens_per_s=10.0)
    chat = scripted_sequence(
        openai_stream(MODEL, SCRIPT),  # warm-up
        openai_error(500, "CUDA out of memory"),
        openai_stream(MODEL, SCRIPT, drop_after=5),
        openai_stream(MODEL, SCRIPT, malformed_after=2),
        openai_stream(MODEL, slow, noise=False),
        openai_stream(MODEL, SCRIPT),
    )
    server = serve(openai_routes([MODEL], chat))
    store = Store()
    backend = OpenAIBackend(f"{server.url}/v1", read_timeout_s=0.4)
    batch = run_benchmark(backend, config(models=(MODEL, "ghost"), repeat=5), store=store)

    errors = [r.error for r in batch.runs]
    assert [r.status for r in batch.runs] == ["failed"] * 4 + ["ok"] + ["failed"] * 5
    assert "HTTP 500: CUDA out of memory" in errors[0]
    assert "dropped midway" in errors[1]
    assert errors[2].startswith("malformed chunk")
    assert "read timeout" in errors[3] or "did not answer in time" in errors[3]
    assert all(e == f"model 'ghost' is not on {server.url}/v1; it has: {MODEL}" for e in errors[5:])
    assert all("\n" not in e for e in errors if e)
    assert chat_requests(server) == 6  # the unknown model was never asked
    assert len(store.runs()) == 10 and batch.failed == 9
    assert batch.runs[1].response == "".join(SCRIPT.tokens[:5])  # what arrived before the drop is kept


def test_connection_refused_fails_every_run_quickly(closed_port):
    store = Store()
    batch = run_benchmark(OpenAIBackend(f"http://127.0.0.1:{closed_port}/v1"), config(idle_s=0), store=store)
    assert [r.status for r in batch.runs] == ["failed", "failed"]
    assert all("cannot connect" in r.error for r in batch.runs)
    assert len(store.runs()) == 2


def test_judging_comes_after_the_runs(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    batch = run_benchmark(OpenAIBackend(f"{server.url}/v1"), config(repeat=1),
                          judge=JudgeConfig(None, None, disabled=True))
    assert batch.runs[0].quality_method == "heuristic" and batch.runs[0].quality_score is not None
    assert batch.judge_cost is not None


def test_cancel_stops_before_the_next_run_and_keeps_what_was_made(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))
    cancel = threading.Event()

    class CancelAfterFirst:
        def started(self, total_runs): ...
        def phase(self, text): ...
        def run_done(self, run):
            cancel.set()

    store = Store()
    batch = run_benchmark(OpenAIBackend(f"{server.url}/v1"), config(repeat=3), store=store,
                          progress=CancelAfterFirst(), cancel=cancel)
    assert batch.cancelled and len(batch.runs) == 1 and len(store.runs()) == 1


def test_interrupt_still_stores_the_runs_made(serve):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, SCRIPT)))

    class InterruptAfterSecond:
        done = 0
        def started(self, total_runs): ...
        def phase(self, text): ...
        def run_done(self, run):
            self.done += 1
            if self.done == 2:
                raise KeyboardInterrupt

    store = Store()
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(OpenAIBackend(f"{server.url}/v1"), config(repeat=3), store=store, progress=InterruptAfterSecond())
    assert len(store.runs()) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"repeat": 0}, "--repeat"), ({"warmup": -1}, "--warmup"), ({"max_tokens": 0}, "--max-tokens"),
     ({"temperature": 3.0}, "--temperature"), ({"idle_s": -1}, "--idle-s"), ({"models": ("",)}, "model")],
)
def test_bad_config_is_a_usage_error(overrides, message):
    with pytest.raises(UsageError, match=message):
        config(**overrides)

