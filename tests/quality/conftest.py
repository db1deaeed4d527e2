"""Fixtures for the judge tests: the scripted judge (tests/fakes/judge.py) served, and a fake Ollama listing."""

from __future__ import annotations

import pytest

from tests.fakes.fixtures import closed_port, http_clients, serve  # noqa: F401  (pytest fixtures)
from tests.fakes.judge import CHAT, ScriptedJudge, record_passed_check
from tests.fakes.scripted_server import ScriptedServer, json_reply


@pytest.fixture
def scripted_judge(serve):  # noqa: F811
    """Start a scripted judge: `scripted_judge(content=..., formats=..., ...)` -> ScriptedJudge.

    Only a judge that passed `judge-check` grades. Tests of the judge's plumbing (parsing, formats, markers...)
    script answers no sound judge would give for the canaries, so the judge starts with a passing check kept,
    as after `envirollm judge-check`; `passed_check=False` starts it never checked (the tests of the check)."""

    def start(passed_check: bool = True, **settings) -> ScriptedJudge:
        judge = ScriptedJudge(**settings)
        judge.server = serve({CHAT: judge.reply})
        if passed_check:
            record_passed_check(judge.base_url, judge.model)
        return judge

    return start


@pytest.fixture(autouse=True)
def fresh_endpoint_memory(monkeypatch):
    """Each test learns its endpoints anew, and no test finds a real Ollama by accident."""
    from envirollm_core.quality.judge import forget_endpoints

    forget_endpoints()
    yield
    forget_endpoints()


@pytest.fixture
def no_ollama(monkeypatch, closed_port):  # noqa: F811
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port}")


@pytest.fixture
def fake_ollama(serve, monkeypatch):  # noqa: F811
    """An Ollama `/api/tags` listing the given models; `OLLAMA_HOST` points at it."""

    def start(models: list[str], chat: ScriptedJudge | None = None) -> ScriptedServer:
        routes: dict = {("GET", "/api/tags"): json_reply({"models": [{"name": m, "model": m} for m in models]})}
        if chat is not None:
            routes[CHAT] = chat.reply
        server = serve(routes)
        if chat is not None:
            chat.server = server
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        return server

    return start
