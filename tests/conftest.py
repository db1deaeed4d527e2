"""Shared fixtures: an isolated ENVIROLLM_HOME and one embedded engine per test session."""

from __future__ import annotations

import pytest

from envirollm_core.backends.embedded import GEMMA3, SMOLLM2, EmbeddedEngine

# The engines the tests share run one thread: on a machine shared with other jobs, llama.cpp with a thread per core
# waits on every busy core (20x slower under load here). The default, every physical core, has a test of its own.
TEST_ENGINE_THREADS = 1


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ENVIROLLM_HOME, so no test touches ~/.envirollm."""
    home = tmp_path / "envirollm-home"
    monkeypatch.setenv("ENVIROLLM_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedded_engine():
    """The real embedded engine (llama.cpp + Gemma 3 270M, the base model), started once per test session."""
    engine = EmbeddedEngine(model_id=GEMMA3.model_id, threads=TEST_ENGINE_THREADS)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def smollm2_engine():
    """The real embedded engine with the default chat model (SmolLM2-135M-Instruct), once per test session."""
    engine = EmbeddedEngine(model_id=SMOLLM2.model_id, threads=TEST_ENGINE_THREADS)
    engine.start()
    yield engine
    engine.stop()
