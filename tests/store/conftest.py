"""Fixtures for the store tests: a fresh database and runs with every field filled."""

from __future__ import annotations

import pytest

from envirollm_core.store import Store
from tests.fakes.runs import full_run


@pytest.fixture
def make_run():
    return full_run


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "results.duckdb")
