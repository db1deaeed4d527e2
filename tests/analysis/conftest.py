"""Runs frames built to order, through the same `runs_to_frame` the app uses for uploads."""

from __future__ import annotations

import pytest

from tests.fakes.frames import run


@pytest.fixture
def make():
    return run
