"""LLM server faults during a batch, on both wire formats (OpenAI-compatible SSE and Ollama's NDJSON).

One batch meets every fault in turn: HTTP 4xx and 5xx, a stream dropped midway, a malformed chunk, an
error event mid-stream, a hang past the read timeout, a very slow first token, an empty answer, an
answer cut at max tokens, the server going down (connection refused) and coming back at the same
address, and a model the server does not have. Each run must end stored with a clear status, the batch
must go on, every energy window must be closed, and no thread or child process may be left behind.
Then hypothesis plays servers that send values of any type where numbers and text belong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from envirollm_core.backends.ollama import OllamaBackend
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from envirollm_core.store import Store
from envirollm_core.telemetry.sampler import get_sampler
from tests.fakes.scripted_server import (
    Reply,
    ScriptedServer,
    TokenScript,
    json_reply,
    ndjson,
    ollama_chat_stream,
    ollama_model_entry,
    ollama_show,
    ollama_tags,
    openai_chunk,
    openai_error,
    openai_routes,
    openai_stream,
    scripted_sequence,
    sse,
)
from tests.fakes.leaks import WindowLedger, nothing_left_behind
from tests.fakes.restarting_server import RestartingServer

MODEL = "llama3:8b"
SCRIPT = TokenScript(tokens=[f"w{i} " for i in range(12)], ttft_s=0.02, tokens_per_s=400.0)
READ_TIMEOUT_S = 1.0
HANG = TokenScript(tokens=["late"], ttft_s=3.0, tokens_per_s=10.0)  # past the read timeout
DOWN = None  # the server is down for this run: connection refused


@dataclass(frozen=True)
class Wire:
    """How one kind of server says each thing."""

    name: str
    routes: Callable[[object], dict]
    backend: Callable[[str], object]
    ok: Reply
    http_4xx: Reply
    http_5xx: Reply
    dropped: Reply
    malformed: Reply
    error_event: Reply
    hang: Reply
    slow_first_token: Reply
    slow_ttft_s: float
    empty: Reply


def _openai_slow_first_token() -> Reply:
    """The first token 2.5 s after the request (a cold model load), with a keep-alive comment every 0.5 s."""
    script = TokenScript(tokens=["slow ", "start"], ttft_s=2.5, tokens_per_s=50.0)
    stream = openai_stream(MODEL, script, noise=False)
    keepalives = [(0.5 * k, b": keep-alive\n\n") for k in range(5)]
    return Reply(parts=sorted([*keepalives, *stream.parts], key=lambda part: part[0]), content_type="text/event-stream")


def _openai_empty() -> Reply:
    parts = [
        sse(openai_chunk(MODEL, {"role": "assistant", "content": ""})),
        sse(openai_chunk(MODEL, {}, finish_reason="stop")),
        sse({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": [],
             "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}}),
        b"data: [DONE]\n\n",
    ]
    return Reply(parts=[(0.01, part) for part in parts], content_type="text/event-stream")


OPENAI = Wire(
    name="openai",
    routes=lambda chat: openai_routes([MODEL], chat),
    backend=lambda url: OpenAIBackend(f"{url}/v1", name="openai", read_timeout_s=READ_TIMEOUT_S),
    ok=openai_stream(MODEL, SCRIPT),
    http_4xx=openai_error(401, "invalid api key"),
    http_5xx=openai_error(503, "model is loading"),
    dropped=openai_stream(MODEL, SCRIPT, drop_after=5),
    malformed=openai_stream(MODEL, SCRIPT, malformed_after=3),
    error_event=Reply(parts=[(0.0, sse(openai_chunk(MODEL, {"content": "a"}))),
                             (0.01, sse({"error": {"message": "slot 0 crashed"}}))], content_type="text/event-stream"),
    hang=openai_stream(MODEL, HANG, noise=False),
    slow_first_token=_openai_slow_first_token(),
    slow_ttft_s=2.5,
    empty=_openai_empty(),
)

_OLLAMA_ENTRY = ollama_model_entry(MODEL)


def _ollama_message(content: str) -> bytes:
    return ndjson({"model": MODEL, "created_at": "2025-01-01T00:00:00Z",
                   "message": {"role": "assistant", "content": content}, "done": False})


OLLAMA = Wire(
    name="ollama",
    routes=lambda chat: {
        ("GET", "/api/tags"): ollama_tags([_OLLAMA_ENTRY]),
        ("POST", "/api/show"): ollama_show(_OLLAMA_ENTRY),
        ("GET", "/api/version"): json_reply({"version": "0.5.7"}),
        ("POST", "/api/chat"): chat,
    },
    backend=lambda url: OllamaBackend(url, read_timeout_s=READ_TIMEOUT_S),
    ok=ollama_chat_stream(MODEL, SCRIPT),
    http_4xx=json_reply({"error": "invalid options: num_predict"}, status=400),
    http_5xx=json_reply({"error": "llama runner process has terminated"}, status=500),
    dropped=ollama_chat_stream(MODEL, SCRIPT, drop_after=5),
    malformed=Reply(parts=[(0.0, _ollama_message("a")), (0.01, b'{"message": {"content": "b\n')],
                    content_type="application/x-ndjson"),
    error_event=Reply(parts=[(0.0, _ollama_message("a")), (0.01, ndjson({"error": "out of memory"}))],
                      content_type="application/x-ndjson"),
    hang=ollama_chat_stream(MODEL, HANG),
    # Ollama sends nothing before the first token, so a slow one must come inside the read timeout.
    slow_first_token=ollama_chat_stream(MODEL, TokenScript(tokens=["slow ", "start"], ttft_s=0.8, tokens_per_s=50.0)),
    slow_ttft_s=0.8,
    empty=Reply(parts=[(0.01, ndjson({"model": MODEL, "message": {"role": "assistant", "content": ""}, "done": True,
                                      "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 0,
                                      "eval_duration": 0}))], content_type="application/x-ndjson"),
)


def _plan(wire: Wire) -> list[tuple[str, Reply | None]]:
    """(what the run meets, the server's reply, DOWN when nothing listens); the first entry is the warm-up."""
    return [
        ("warm-up", wire.ok),
        ("http 4xx", wire.http_4xx),
        ("http 5xx", wire.http_5xx),
        ("dropped midway", wire.dropped),
        ("malformed chunk", wire.malformed),
        ("error event", wire.error_event),
        ("hang", wire.hang),
        ("slow first token", wire.slow_first_token),
        ("empty answer", wire.empty),
        ("cut at max tokens", wire.ok),
        ("server down", DOWN),
        ("server down", DOWN),
        ("server back", wire.ok),
    ]


class FollowThePlan:
    """The runner's progress hook: takes the server down before a DOWN run and brings it back after."""

    def __init__(self, server: RestartingServer, plan: list[tuple[str, Reply | None]]) -> None:
        self.server, self.runs_planned, self.done = server, plan[1:], 0

    def started(self, total_runs: int) -> None: ...

    def phase(self, text: str) -> None: ...

    def run_done(self, run) -> None:
        self.done += 1
        if self.done >= len(self.runs_planned):
            return
        if self.runs_planned[self.done][1] is DOWN:
            self.server.down()
        elif self.server.current is None:
            self.server.restart()


@pytest.mark.parametrize("wire", [OPENAI, OLLAMA], ids=lambda wire: wire.name)
def test_every_fault_is_a_stored_run_with_a_clear_status_and_the_batch_goes_on(wire, isolated_home):
    plan = _plan(wire)
    ledger = WindowLedger(get_sampler())  # the shared sampler's thread lives on: it is started before the check
    with nothing_left_behind():
        server = RestartingServer(wire.routes(scripted_sequence(*[reply for _, reply in plan if reply is not DOWN])))
        try:
            config = BenchmarkConfig(models=(MODEL, "ghost"), prompts=(Prompt("Why is the sky blue?"),),
                                     repeat=len(plan) - 1, warmup=1, max_tokens=len(SCRIPT.tokens), idle_s=0.2)
            backend = wire.backend(server.url)
            batch = run_benchmark(backend, config, sampler=ledger, store=Store(), progress=FollowThePlan(server, plan))
            getattr(backend, "close", lambda: None)()
        finally:
            server.stop()

    ledger.assert_all_closed()
    runs = {run.id: run for run in Store().runs()}
    assert set(runs) == {run.id for run in batch.runs}, "every run is stored, failed ones too"
    ours = [runs[run.id] for run in batch.runs[: len(plan) - 1]]
    ghosts = [runs[run.id] for run in batch.runs[len(plan) - 1:]]
    outcome = {what: run for (what, _), run in zip(plan[1:], ours, strict=True)}
    for run in runs.values():
        assert run.status in ("ok", "failed") and (run.error is None) == (run.status == "ok")
        assert run.error is None or ("\n" not in run.error and len(run.error) < 500)

    assert "HTTP 40" in outcome["http 4xx"].error and "HTTP 50" in outcome["http 5xx"].error
    dropped = outcome["dropped midway"]
    assert "dropped midway" in dropped.error and dropped.response == "".join(SCRIPT.tokens[:5])
    assert "malformed chunk" in outcome["malformed chunk"].error
    assert "error mid-stream" in outcome["error event"].error
    assert "read timeout" in outcome["hang"].error or "did not answer in time" in outcome["hang"].error
    slow = outcome["slow first token"]
    assert slow.status == "ok" and slow.response == "slow start" and slow.ttft_s >= wire.slow_ttft_s - 0.05
    empty = outcome["empty answer"]
    assert (empty.status, empty.response, empty.completion_tokens, empty.ttft_s) == ("ok", "", 0, None)
    assert empty.finish_reason == "stop" and empty.energy_wh is not None and empty.energy_per_token_wh is None
    cut = outcome["cut at max tokens"]
    assert (cut.status, cut.finish_reason, cut.completion_tokens) == ("ok", "length", len(SCRIPT.tokens))
    refused = [run for (what, _), run in zip(plan[1:], ours) if what == "server down"]
    assert len(refused) == 2 and all("cannot connect" in run.error for run in refused)
    back = outcome["server back"]
    assert back.status == "ok" and back.response == "".join(SCRIPT.tokens)
    assert all(run.status == "failed" and "'ghost' is not on" in run.error for run in ghosts)
    chat_path = "/v1/chat/completions" if wire is OPENAI else "/api/chat"
    asked = [request.body["model"] for request in server.requests if request.path == chat_path]
    assert asked == [MODEL] * (len(plan) - 2), "the unknown model is never asked; the down runs never arrive"


# -- servers that send anything --------------------------------------------------------------------

_anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=4), children, max_size=2),
    max_leaves=4,
)
_count = st.integers(-(2**70), 2**70) | st.floats() | _anything
_text = st.text(max_size=6) | _anything  # includes lone surrogates, which JSON escapes (\ud800) carry


def _sse_line(payload) -> bytes:
    return b"data: " + json.dumps(payload, allow_nan=True).encode() + b"\n\n"  # NaN/Infinity: Python's own quirk


_openai_chunk = st.fixed_dictionaries({}, optional={
    "choices": st.lists(st.fixed_dictionaries({}, optional={
        "delta": st.fixed_dictionaries({}, optional={"content": _text, "reasoning_content": _text, "tool_calls": _anything})
        | _anything,
        "finish_reason": st.sampled_from(["stop", "length"]) | _anything,
    }), max_size=2) | _anything,
    "usage": st.fixed_dictionaries({}, optional={
        "prompt_tokens": _count, "completion_tokens": _count, "completion_tokens_details": _anything,
    }) | _anything,
    "timings": st.fixed_dictionaries({}, optional={
        "prompt_n": _count, "predicted_n": _count, "predicted_per_second": _count, "prompt_per_second": _count,
    }),
    "error": st.none() | _anything,
})
_openai_stream = st.tuples(
    st.lists(st.builds(_sse_line, _openai_chunk) | st.binary(max_size=12).map(lambda raw: b"data: " + raw + b"\n\n"),
             max_size=5),
    st.booleans(),
).map(lambda drawn: [*drawn[0], *([b"data: [DONE]\n\n"] if drawn[1] else [])])

_ollama_line = st.fixed_dictionaries({}, optional={
    "message": st.fixed_dictionaries({}, optional={"content": _text, "thinking": _text, "tool_calls": _anything})
    | _anything,
    "done": st.booleans() | _anything,
    "done_reason": st.sampled_from(["stop", "length"]) | _anything,
    "eval_count": _count, "eval_duration": _count, "prompt_eval_count": _count, "prompt_eval_duration": _count,
    "load_duration": _count,
    "error": st.none() | _anything,
}).map(lambda payload: json.dumps(payload, allow_nan=True).encode() + b"\n")
_ollama_stream = st.lists(_ollama_line | st.binary(max_size=12).map(lambda raw: raw + b"\n"), max_size=5)


class AnyReply:
    """One scripted server for every example: it answers the chat route with the reply of the moment."""

    def __init__(self, wire: Wire, content_type: str) -> None:
        self.parts: list[bytes] = []
        self.content_type = content_type
        self.server = ScriptedServer(wire.routes(self._reply)).start()

    def _reply(self, request) -> Reply:
        return Reply(parts=[(0.0, part) for part in self.parts], content_type=self.content_type)


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _one_run_survives(wire: Wire, replies: AnyReply, parts: list[bytes], store: Store) -> None:
    replies.parts = parts
    config = BenchmarkConfig(models=(MODEL,), prompts=(Prompt("hi"),), repeat=1, warmup=0, max_tokens=8, idle_s=0)
    backend = wire.backend(replies.server.url)
    batch = run_benchmark(backend, config, store=store)  # must not raise, whatever the server sent
    getattr(backend, "close", lambda: None)()
    (run,) = batch.runs
    assert run.status in ("ok", "failed")
    assert run.error is None or "\n" not in run.error
    for count in (run.completion_tokens, run.prompt_tokens, run.reasoning_tokens):
        assert count is None or (isinstance(count, int) and 0 <= count < 2**53)
    assert run.finish_reason is None or isinstance(run.finish_reason, str)
    assert store.run(run.id).status == run.status  # stored, and read back


@pytest.mark.parametrize("wire", [OPENAI, OLLAMA], ids=lambda wire: wire.name)
def test_a_server_sending_anything_gives_a_stored_run_never_a_crash(wire, fuzz_home):
    replies = AnyReply(wire, "text/event-stream" if wire is OPENAI else "application/x-ndjson")
    store = Store(fuzz_home / f"{wire.name}.duckdb")

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(parts=_openai_stream if wire is OPENAI else _ollama_stream)
    def check(parts):
        _one_run_survives(wire, replies, parts, store)

    try:
        check()
    finally:
        replies.server.stop()
