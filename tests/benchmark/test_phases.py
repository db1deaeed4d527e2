"""The prefill/decode energy split at the first token: on known traces, and on a real benchmark run."""

from __future__ import annotations

import polars as pl
import pytest

from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.phases import split_at_first_token
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from envirollm_core.records import TracePoint
from envirollm_core.store import Store
from tests.fakes.scripted_server import TokenScript, openai_routes, openai_stream


def trace(powers_w: list[float], step_s: float = 0.1) -> list[TracePoint]:
    return [TracePoint(t_s=(i + 1) * step_s, cpu_power_w=p * 0.75, gpu_power_w=p * 0.25) for i, p in enumerate(powers_w)]


def test_flat_power_splits_in_proportion_to_time():
    split = split_at_first_token(trace([10.0] * 10), energy_wh=1.0, duration_s=1.0, first_token_s=0.25)
    assert split.prefill_energy_wh == pytest.approx(0.25) and split.decode_energy_wh == pytest.approx(0.75)
    assert split.uncertainty_wh == pytest.approx(10.0 * 0.1 / 3600)  # one sampling gap at 10 W


def test_a_hot_prefill_gets_more_than_its_share_of_time():
    powers = [100.0, 100.0] + [10.0] * 8
    split = split_at_first_token(trace(powers), energy_wh=1.0, duration_s=1.0, first_token_s=0.2)
    assert split.prefill_energy_wh > 0.5 > 0.2
    assert split.prefill_energy_wh + split.decode_energy_wh == pytest.approx(1.0)
    assert split.uncertainty_wh == pytest.approx(100.0 * 0.1 / 3600)


def test_no_power_or_no_first_token_gives_no_split():
    assert split_at_first_token([TracePoint(t_s=0.1)], 1.0, 1.0, 0.2) is None
    assert split_at_first_token(trace([10.0] * 3), 1.0, 0.3, None) is None
    assert split_at_first_token(trace([10.0] * 3), None, 0.3, 0.1) is None


def test_benchmark_runs_store_and_export_the_split(serve, tmp_path):
    script = TokenScript(tokens=[f"w{i} " for i in range(30)], ttft_s=0.4, tokens_per_s=50.0)
    server = serve(openai_routes(["m-q4"], openai_stream("m-q4", script)))
    store = Store()
    config = BenchmarkConfig(models=("m-q4",), prompts=(Prompt("hi"),), repeat=1, warmup=0, max_tokens=30, idle_s=0)
    batch = run_benchmark(OpenAIBackend(f"{server.url}/v1"), config, store=store)
    run = store.run(batch.runs[0].id)
    assert run.prefill_energy_wh + run.decode_energy_wh == pytest.approx(run.energy_wh)
    assert 0 < run.phase_split_uncertainty_wh < run.energy_wh
    # The first token came 0.4 s into a ~1 s run: prefill holds a share of the energy near its share of time.
    assert 0.15 < run.prefill_energy_wh / run.energy_wh < 0.65
    exported = tmp_path / "runs.csv"
    store.export(exported, "csv")
    row = pl.read_csv(exported).row(0, named=True)
    assert row["prefill_energy_wh"] == pytest.approx(run.prefill_energy_wh)
    assert row["phase_split_uncertainty_wh"] == pytest.approx(run.phase_split_uncertainty_wh)
