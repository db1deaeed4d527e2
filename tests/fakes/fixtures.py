"""Fixtures over the scripted server, shared by tests/backends and tests/bench (imported by their conftest)."""

from __future__ import annotations

import socket

import httpx
import httpx2
import pytest

from tests.fakes.scripted_server import ScriptedServer


@pytest.fixture
def serve():
    """Start a scripted server for the given routes; every one started is stopped after the test."""
    started: list[ScriptedServer] = []

    def start(routes) -> ScriptedServer:
        server = ScriptedServer(routes).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_clients(monkeypatch) -> list:
    """Every HTTP client made during the test: httpx's (Ollama, probes) and httpx2's (the openai client's)."""
    made: list = []
    for client_class in (httpx.Client, httpx2.Client):
        def recording_init(self, *args, _original=client_class.__init__, **kwargs) -> None:
            _original(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(client_class, "__init__", recording_init)
    return made
