"""Load sweeps against scripted servers (known saturation, refusals, drops) and against the real embedded engine."""

from __future__ import annotations

import threading
from types import SimpleNamespace
import time

import pytest

from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.bench.presets import Prompt
from envirollm_core.bench.sweep import SweepConfig, find_knee, run_sweep
from envirollm_core.errors import UsageError
from envirollm_core.store import Store
from envirollm_core.telemetry.sampler import get_sampler
from tests.fakes.scripted_server import Reply, Request, ScriptedServer, openai_chunk, openai_routes, sse

MODEL = "scripted-7b-q4"
PROMPT = (Prompt("Say something."),)


class RecordingSampler:
    """The real sampler, with the moment each energy window opened and closed (the steady-state windows)."""

    def __init__(self) -> None:
        self.sampler = get_sampler()
        self.edges: dict[str, list[float]] = {}

    def begin_window(self, name, pids=()):
        self.sampler.begin_window(name, pids)
        self.edges[name] = [time.perf_counter()]

    def end_window(self, name):
        self.edges[name].append(time.perf_counter())
        return self.sampler.end_window(name)

    def measure_idle(self, duration_s):
        return self.sampler.measure_idle(duration_s)


class SaturatingServer:
    """A server of fixed capacity shared by the streams running: each stream's next token comes after
    1 / (`stream_tps` x min(1, `knee` / streams running now)), so the total grows with the streams up to
    `knee` of them and then stays at `knee` x `stream_tps` (each stream slows as more run at once)."""

    def __init__(self, knee: int, stream_tps: float) -> None:
        self.knee, self.stream_tps = knee, stream_tps
        self.running = 0
        self.lock = threading.Lock()
        self.server = ScriptedServer(openai_routes([MODEL], self.chat), after_reply=self.done)

    def chat(self, request: Request) -> Reply:
        with self.lock:
            self.running += 1
        tokens = request.body["max_tokens"]
        return Reply(parts=self._parts(tokens), content_type="text/event-stream", token_parts=frozenset(range(tokens)))

    def _parts(self, tokens: int):
        """Each token's time decided when the one before it has gone out, from the streams running then."""
        at_s = 0.002
        for index in range(tokens):
            yield at_s, sse(openai_chunk(MODEL, {"content": f"w{index} "}))
            at_s += 1 / (self.stream_tps * min(1.0, self.knee / self.running))
        usage = {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": tokens + 3}
        yield at_s, sse(openai_chunk(MODEL, {}, finish_reason="length")) + sse({"choices": [], "usage": usage})
        yield at_s, b"data: [DONE]\n\n"

    def done(self, request: Request) -> None:
        if request.path == "/v1/chat/completions":
            with self.lock:
                self.running -= 1

    def sent_tps(self, start_s: float, end_s: float) -> float:
        sent = [t for r in self.server.requests for t in r.token_sent_at_s if start_s <= t <= end_s]
        return len(sent) / (end_s - start_s)


def test_sweep_finds_the_knee_and_times_throughput_within_2_percent():
    saturating = SaturatingServer(knee=4, stream_tps=100.0)
    sampler = RecordingSampler()
    with saturating.server:
        backend = OpenAIBackend(f"{saturating.server.url}/v1", name="openai")
        config = SweepConfig(model=MODEL, prompts=PROMPT, concurrency=(1, 2, 4, 8, 16), max_tokens=20, idle_s=0.2,
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
    assert tps[2] == pytest.approx(4 * tps[0], rel=0.1) and tps[4] == pytest.approx(tps[2], rel=0.1)
    # Every request is a stored run of the sweep, with its level; the levels are stored too.
    runs = store.runs_frame(batch_id=result.sweep_id)
    assert runs.height == len(result.runs) == sum(max(8, 4 * level) for level in (1, 2, 4, 8, 16))
    assert sorted(set(runs["sweep_concurrency"])) == [1, 2, 4, 8, 16]
    assert runs["energy_wh"].null_count() == runs.height  # overlapping streams have no energy of their own
    stored = store.sweep_levels(result.sweep_id)
    assert stored["concurrency"].to_list() == [1, 2, 4, 8, 16]
    assert find_knee([SimpleNamespace(**row) for row in stored.iter_rows(named=True)]) == 4
