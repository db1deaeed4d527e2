"""The metering proxy in front of the real embedded engine (llama-cpp-python's server with Gemma 3 270M)."""

from __future__ import annotations

import re

import httpx
import openai

from tests.fakes.proxy import wait_recorded

# What differs between any two answers of the engine, even to the same request: its id and its clock.
_PER_ANSWER = re.compile(rb'"(id|created)": ?("[^"]*"|\d+)')


def _same_but_id_and_clock(data: bytes) -> bytes:
    return _PER_ANSWER.sub(rb'"\1": _', data)


def test_through_the_proxy_the_engine_answers_as_it_does_directly(embedded_engine, start_proxy, store):
    proxy = start_proxy(embedded_engine.base_url)
    body = {"model": embedded_engine.model_id, "messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": 6, "temperature": 0, "seed": 1}
    raw = []
    for base in (embedded_engine.base_url, proxy.url + "/v1"):
        with httpx.stream("POST", base + "/chat/completions", json={**body, "stream": True}, timeout=120) as response:
            chunks = list(response.iter_raw())
        raw.append((response.status_code, response.headers["content-type"], [_same_but_id_and_clock(c) for c in chunks]))
    assert raw[1] == raw[0]
    assert len(raw[0][2]) >= 3  # streamed: several chunks, each passed on as it came

    plain = []
    for base in (embedded_engine.base_url, proxy.url + "/v1"):
        client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)
        plain.append(_same_but_id_and_clock(client.chat.completions.with_raw_response.create(**body).http_response.content))
        client.close()
    assert plain[1] == plain[0]

    streamed, answered = wait_recorded(proxy, 2)
    for run in (streamed, answered):
        assert (run.status, run.backend, run.model) == ("ok", "proxy", embedded_engine.model_id)
        assert 1 <= run.completion_tokens <= 6 and run.finish_reason in ("stop", "length")
        assert run.energy_wh is not None and run.prompt == "" and run.response == ""
    assert streamed.ttft_s is not None and streamed.live_detail["response_chars"] > 0
