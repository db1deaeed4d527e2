"""Scripted LLM servers on 127.0.0.1 for these tests."""

from tests.fakes.fixtures import closed_port, http_clients, serve  # noqa: F401  (pytest fixtures)
