"""A scripted OpenAI-compatible server of fixed capacity, for load sweeps: its total throughput saturates
at a known number of concurrent streams, and it records when each token really left (the truth)."""

from __future__ import annotations

import threading
import time

from tests.fakes.scripted_server import Reply, Request, ScriptedServer, openai_chunk, openai_routes, sse

MODEL = "scripted-7b-q4"


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
            at_s += 1 / (self.stream_tps * min(1.0, self.knee / max(1, self.running)))
        usage = {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": tokens + 3}
        yield at_s, sse(openai_chunk(MODEL, {}, finish_reason="length")) + sse({"choices": [], "usage": usage})
        yield at_s, b"data: [DONE]\n\n"

    def done(self, request: Request) -> None:
        if request.path == "/v1/chat/completions":
            with self.lock:
                self.running -= 1

    def sent_tps(self, start_s: float, end_s: float) -> float:
        """Tokens/s the server sent between two `time.perf_counter()` moments (all streams together)."""
        sent = [t for r in self.server.requests for t in r.token_sent_at_s if start_s <= t <= end_s]
        return len(sent) / (end_s - start_s)


class WindowEdges:
    """A sampler (the real one, or any with its window interface) noting each window's edges as the sweep
    takes them: the middle of the opening and of the closing call, in `time.perf_counter()` seconds."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self.edges: dict[str, list[float]] = {}

    def begin_window(self, name, pids=()):
        before = time.perf_counter()
        self.sampler.begin_window(name, pids)
        self.edges[name] = [(before + time.perf_counter()) / 2]

    def end_window(self, name):
        before = time.perf_counter()
        measurement = self.sampler.end_window(name)
        self.edges[name].append((before + time.perf_counter()) / 2)
        return measurement

    def measure_idle(self, duration_s):
        return self.sampler.measure_idle(duration_s)
