"""Runs built to order and their frames, through the same `runs_to_frame` the app uses for uploads."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import polars as pl

from envirollm_core.records import RunResult, prompt_hash
from envirollm_core.store import runs_to_frame

_ids = itertools.count()
START = datetime(2025, 5, 1, tzinfo=timezone.utc)


def run(model="m", prompt="Explain X.", batch="b1", *, backend="ollama", quantization="Q4_K_M", status="ok",
        preset=None, minutes=0, **readings) -> RunResult:
    return RunResult(
        id=f"r{next(_ids)}", batch_id=batch, created_at=START + timedelta(minutes=minutes), model=model,
        backend=backend, base_url="", prompt=prompt, prompt_hash=prompt_hash(prompt), status=status, preset=preset,
        quantization=quantization, **readings,
    )


def frame(runs: list[RunResult]) -> pl.DataFrame:
    return runs_to_frame(runs)
