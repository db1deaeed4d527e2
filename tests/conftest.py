"""Shared fixtures: an isolated ENVIROLLM_HOME and one embedded engine per test session."""

from __future__ import annotations

import pytest

from envirollm_core.backends.embedded import EmbeddedEngine


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ENVIROLLM_HOME, so no test touches ~/.envirollm."""
    home = tmp_path / "envirollm-home"
    monkeypatch.setenv("ENVIROLLM_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedded_engine():
    """The real embedded engine (llama.cpp + Gemma 3 270M), started once per test session."""
    engine = EmbeddedEngine()
    engine.start()
    yield engine
    engine.stop()
