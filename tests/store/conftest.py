"""Fixtures for the store tests: a fresh database and runs with every field filled."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from envirollm_core.records import ComponentEnergy, RunResult, TracePoint, prompt_hash
from envirollm_core.store import Store

_counter = itertools.count()


def full_run(**overrides) -> RunResult:
    """A run in which every field differs from its default, so a lost field shows."""
    n = next(_counter)
    prompt = overrides.pop("prompt", f"Explain quantum computing in simple terms, take {n % 3}.\nUse \"quotes\", commas, é.")
    values = dict(
        id=f"run-{n:06d}-{'x' * 8}",
        batch_id=f"batch-{n // 4}",
        created_at=datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc) + timedelta(seconds=n, microseconds=123457),
        model=f"gemma3:{('1b', '4b')[n % 2]}",
        backend="ollama",
        base_url="http://127.0.0.1:11434",
        prompt=prompt,
        prompt_hash=prompt_hash(prompt),
        status="ok",
        preset="explanation",
        repeat_index=n % 3,
        error=None,
        ttft_s=0.1 + 0.2,  # 0.30000000000000004: the exact float must survive
        e2e_s=6.43,
        decode_tps=121.9 + n,
        server_decode_tps=123.4,
        server_prompt_tps=456.7,
        itl_p50_s=0.0081,
        itl_p95_s=0.0123,
        prompt_tokens=14,
        completion_tokens=784 + n,
        reasoning_tokens=0,
        token_count_source="usage",
        finish_reason="stop",
        energy_wh=0.457,
        energy_net_wh=-0.012,
        energy_per_token_wh=0.457 / 784,
        components=[
            ComponentEnergy("cpu", 0.2, "counter"),
            ComponentEnergy("dram", None, "unmeasured", "no DRAM zone"),
            ComponentEnergy("gpu:0", 0.257, "power-integral", "instant power at 10 Hz"),
        ],
        avg_power_w=255.9,
        peak_power_w=301.2,
        cpu_percent_avg=37.5,
        ram_used_mb_peak=10240.5,
        server_peak_rss_mb=1500.25,
        server_gpu_mem_mb=2048.0,
        quantization="Q4_K_M",
        quantization_source="server",
        temperature=0.7,
        max_tokens=1024,
        seed=-1,
        response="Quantum computers use qubits,\nwhich \"superpose\" — 量子.",
        environment={"cpu_model": "Test CPU", "ram_total_gb": 32.0, "gpus": [{"name": "GPU", "memory_total_mb": 8192.0}]},
        quality_score=75.0,
        quality_method="llm-judge",
        quality_detail={"raw_scores": [4, 4, 4, 4], "judge_model": "gemma3:1b", "rubric_version": 1},
        notes="first try",
        source="live use",
        client="editor-plugin/1.2",
        live_detail={"prompt_chars": 68, "route": {"requested": "envirollm/auto", "chosen": "gemma3:1b"}},
        trace=[TracePoint(t_s=0.1 * k, cpu_percent=40.0 + k, ram_used_mb=10000.0, cpu_power_w=55.5,
                          gpu_power_w=None if k == 0 else 200.0 + k, gpu_util_percent=90.0, gpu_mem_used_mb=2000.0,
                          gpu_temp_c=61.0) for k in range(6)],
    )
    values.update(overrides)
    return RunResult(**values)


@pytest.fixture
def make_run():
    return full_run


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "results.duckdb")
