"""Helpers of the proxy tests: a scripted chat, a raw exchange, waiting for the recorder, and stored results
the router chooses among."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.fakes.runs import full_run
from tests.fakes.scripted_server import Reply, TokenScript, json_reply, openai_stream

MODEL = "scripted-7b"
SCRIPT = TokenScript(tokens=["The", " sky", " is", " blue", "."], ttft_s=0.05, tokens_per_s=200)
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Why is the sky blue?"}], "max_tokens": 5}


def chat_body_reply() -> Reply:
    return json_reply({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "The sky is blue."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }, at_s=0.03)


def chat_route(request):
    return openai_stream(MODEL, SCRIPT) if request.body.get("stream") else chat_body_reply()


def raw_exchange(url: str, body: dict, headers: dict | None = None) -> tuple[int, str, list[bytes]]:
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=30) as response:
        return response.status_code, response.headers.get("content-type"), list(response.iter_raw())


def wait_recorded(proxy, count: int, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while proxy.recorder.flush() or len(proxy.recorder.recorded) < count:  # runs are written every few s: now
        assert time.monotonic() < deadline, f"only {len(proxy.recorder.recorded)} of {count} requests were recorded"
        time.sleep(0.02)
    return proxy.recorder.recorded


TASK_PROMPT = "Write a Python function that reverses a string."
CANDIDATES = {  # model: (quality, Wh per token)
    "big-8b": (90.0, 0.005),
    "small-1b": (80.0, 0.001),
    "tiny-135m": (40.0, 0.0001),  # cheapest, but under the floor
}


def benchmark_runs(method: str = "llm-judge"):
    return [
        full_run(id=uuid.uuid4().hex[:12], model=model, prompt=TASK_PROMPT, preset="code-generation",
                 quality_score=quality, quality_method=method, energy_per_token_wh=wh_per_token,
                 source=None, client=None, live_detail={})
        for model, (quality, wh_per_token) in CANDIDATES.items() for _ in range(2)
    ]


def answering(model_seen: list[str]):
    def route(request):
        model_seen.append(request.body["model"])
        return openai_stream(request.body["model"], TokenScript(["ok", "!"], 0.01, 100))
    return route


def auto_request(url: str, task: str | None = "code-generation", prompt: str = "reverse 'abc' in Python") -> httpx.Response:
    headers = {"X-EnviroLLM-Task": task} if task else {}
    body = {"model": "envirollm/auto", "messages": [{"role": "user", "content": prompt}], "stream": True}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
