"""Realistic runs for the app's tests: what three Ollama models and the embedded engine give on two tasks.

Magnitudes follow what a desktop with one GPU measures (the paper's Table 1):
energy per token of a few hundredths of a mWh to a few tenths, 20-150 tokens/s,
GPU energy from the NVML counter, CPU and RAM estimated. Seeded, so each call
gives the same runs.

Also: `full_run` (every field filled, so a lost field shows), `assert_same_run`, and the original EnviroLLM's
CSV written row by row (`original_csv`, `original_rows`).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from envirollm_core.benchmark.presets import get_preset
from envirollm_core.records import ComponentEnergy, RunResult, TracePoint, prompt_hash
from envirollm_core.store.exchange import ORIGINAL_COLUMNS

# model, backend, quantization, decode tokens/s, GPU watts, quality
CONFIGS = (
    ("llama3.2:3b", "ollama", "q4_k_m", 95.0, 160.0, 74.0),
    ("qwen2.5:7b", "ollama", "q4_k_m", 52.0, 210.0, 83.0),
    ("gemma3:12b", "ollama", "q8_0", 24.0, 260.0, 88.0),
    ("gemma-3-270m-q4_k_m", "embedded", "q4_k_m", 140.0, 0.0, 41.0),
)
TASKS = ("explanation", "code-generation")
UNSAFE_RESPONSE = '<script>alert("x")</script> **not bold** [a link](http://example.invalid)'


def realistic_runs(batches: int = 2, repeat: int = 3, seed: int = 7, failed: bool = True) -> list[RunResult]:
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    runs: list[RunResult] = []
    for batch_index in range(batches):
        batch_id = f"batch{batch_index:02d}{rng.randrange(16**6):06x}"
        moment = start + timedelta(days=7 * batch_index)
        for model, backend, quantization, tps, gpu_w, quality in CONFIGS:
            for task in TASKS:
                preset = get_preset(task)
                for repeat_index in range(repeat):
                    moment += timedelta(seconds=rng.uniform(5, 20))
                    runs.append(_run(rng, batch_id, moment, model, backend, quantization, tps, gpu_w, quality,
                                     preset.prompt, task, repeat_index))
    if failed:  # one run in the middle failed, as a server timeout leaves it
        broken = runs[len(runs) // 2 + 3]
        broken.status, broken.error = "failed", "Ollama at http://localhost:11434 did not answer in time (timeout 120 s)"
        for name in ("ttft_s", "e2e_s", "decode_tps", "completion_tokens", "energy_wh", "energy_net_wh",
                     "energy_per_token_wh", "quality_score"):
            setattr(broken, name, None)
        broken.response = ""
    runs[0].response = UNSAFE_RESPONSE
    return runs


def _run(rng, batch_id, moment, model, backend, quantization, tps, gpu_w, quality, prompt, task, repeat_index):
    decode_tps = tps * rng.uniform(0.93, 1.07)
    tokens = rng.randint(180, 420) if task == "explanation" else rng.randint(250, 512)
    ttft_s = rng.uniform(0.08, 0.35)
    e2e_s = ttft_s + (tokens - 1) / decode_tps
    cpu_w, ram_w = rng.uniform(28, 45), 6.0
    gpu_wh = gpu_w * rng.uniform(0.9, 1.1) * e2e_s / 3600
    cpu_wh, ram_wh = cpu_w * e2e_s / 3600, ram_w * e2e_s / 3600
    components = [ComponentEnergy("cpu", cpu_wh, "estimate", "(0.1 + 0.9 x CPU utilization) x 65 W TDP"),
                  ComponentEnergy("ram", ram_wh, "estimate", "0.375 W/GB x 16.0 GB installed = 6.0 W")]
    if gpu_w:
        components.append(ComponentEnergy("gpu:0", gpu_wh, "counter", "NVIDIA RTX 4090: NVML energy counter"))
    energy_wh = sum(c.energy_wh for c in components)
    trace = [TracePoint(t_s=i * 0.1, cpu_percent=rng.uniform(20, 60), ram_used_mb=9000 + i,
                        cpu_power_w=cpu_w, gpu_power_w=gpu_w or None, gpu_util_percent=rng.uniform(80, 99) if gpu_w else None)
             for i in range(int(e2e_s * 10) + 1)]
    return RunResult(
        id=uuid.UUID(int=rng.getrandbits(128)).hex[:12], batch_id=batch_id, created_at=moment, model=model,
        backend=backend, base_url="http://localhost:11434" if backend == "ollama" else "http://127.0.0.1:41234/v1",
        prompt=prompt, prompt_hash=prompt_hash(prompt), status="ok", preset=task, repeat_index=repeat_index,
        ttft_s=ttft_s, e2e_s=e2e_s, decode_tps=decode_tps, prompt_tokens=rng.randint(20, 60),
        completion_tokens=tokens, token_count_source="server-native" if backend == "ollama" else "chunks",
        finish_reason="stop", energy_wh=energy_wh, energy_net_wh=energy_wh * 0.7,
        energy_per_token_wh=energy_wh / tokens, components=components, avg_power_w=energy_wh * 3600 / e2e_s,
        peak_power_w=(cpu_w + ram_w + gpu_w) * 1.15, cpu_percent_avg=rng.uniform(20, 60), ram_used_mb_peak=9400.0,
        quantization=quantization, quantization_source="server", temperature=0.0, max_tokens=512,
        response=f"Answer of {model} to {task}, repetition {repeat_index + 1}.",
        environment={"os_name": "Linux 6.8", "cpu_model": "AMD Ryzen 9 7950X", "server": backend},
        quality_score=min(100.0, max(0.0, quality + rng.uniform(-4, 4))), quality_method="heuristic", trace=trace,
    )


# model, source, tokens over the whole request per second, quality: what the original EnviroLLM recorded
ORIGINAL_CONFIGS = (("gemma3:1b", "ollama", 118.0, 75.0), ("llama3.2:3b", "ollama", 61.0, 85.0),
                    ("gemma-3-1b", "lmstudio", 109.0, 80.0))
ORIGINAL_PROMPT = "Explain quantum computing in simple terms."


def original_envirollm_csv(path: Path, runs: int = 15, seed: int = 11) -> Path:
    """A CSV as the original EnviroLLM's `export_csv` writes it: its 15 columns, csv.writer, None as an empty
    cell, energy per token with 6 decimals, its energy an estimate (50 W base + CPU % x 2 W + GPU power), its
    speed tokens over the whole request; and one failed run, whose figures are all empty."""
    rng = random.Random(seed)
    moment = datetime(2025, 10, 2, 14, 0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ORIGINAL_COLUMNS)
        for index in range(runs):
            model, source, speed_tps, quality = ORIGINAL_CONFIGS[index % len(ORIGINAL_CONFIGS)]
            moment += timedelta(seconds=rng.uniform(20, 90))
            row: dict[str, object] = {"ID": str(uuid.UUID(int=rng.getrandbits(128))), "Model": model,
                                      "Timestamp": moment.isoformat(), "Source": source, "Prompt": ORIGINAL_PROMPT}
            if index == runs - 1:
                row["Status"] = "failed"
            else:
                tokens = rng.randint(250, 600)
                duration_s = tokens / (speed_tps * rng.uniform(0.92, 1.08))
                cpu_percent = rng.uniform(8, 30)
                power_w = 50 + cpu_percent * 2 + rng.uniform(120, 180)
                energy_wh = power_w * duration_s / 3600
                row.update({
                    "Status": "completed", "Energy (Wh)": round(energy_wh, 4),
                    "Energy/Token (Wh)": f"{energy_wh / tokens:.6f}", "Duration (s)": round(duration_s, 2),
                    "Speed (tok/s)": round(tokens / duration_s, 1), "Quality Score": round(quality + rng.uniform(-5, 5)),
                    "CPU %": round(cpu_percent, 1), "Memory %": round(rng.uniform(55, 70), 1),
                    "Power (W)": round(power_w, 1), "Response Preview": "Quantum computers use qubits, which...",
                })
            writer.writerow(["" if row.get(column) is None else row[column] for column in ORIGINAL_COLUMNS])
    return path


# -- one run with every field filled, and field-by-field comparison (the store's tests and others) --

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


def assert_same_run(got: RunResult, want: RunResult) -> None:
    """Field by field, so a failure names the field."""
    for field in dataclasses.fields(RunResult):
        assert getattr(got, field.name) == getattr(want, field.name), field.name


# -- the original EnviroLLM's CSV, written row by row --


def original_csv(path: Path, rows: list[dict]) -> Path:
    """Written the way the original's `export_csv` writes: csv.writer, None as empty, 6-decimal Wh/token."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ORIGINAL_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(column) is None else row[column] for column in ORIGINAL_COLUMNS])
    return path


def original_rows() -> list[dict]:
    return [
        {"ID": str(uuid.uuid4()), "Model": "gemma3:1b", "Timestamp": "2025-10-02T14:03:07.123456",
         "Status": "completed", "Source": "ollama", "Energy (Wh)": 0.457, "Energy/Token (Wh)": "0.000583",
         "Duration (s)": 6.43, "Speed (tok/s)": 121.9, "Quality Score": 75.0, "CPU %": 12.5, "Memory %": 61.2,
         "Power (W)": 255.9, "Prompt": "Explain quantum computing in simple terms.",
         "Response Preview": "Quantum computing uses qubits, which..."},
        {"ID": str(uuid.uuid4()), "Model": "gemma-3-1b", "Timestamp": "2025-10-02T14:05:00", "Status": "completed",
         "Source": "lmstudio", "Energy (Wh)": 0.41, "Energy/Token (Wh)": "0.000565", "Duration (s)": 6.57,
         "Speed (tok/s)": 110.3, "Quality Score": 95.0, "CPU %": 10.0, "Memory %": 60.0, "Power (W)": 224.6,
         "Prompt": "Explain quantum computing in simple terms.", "Response Preview": "Imagine a coin spinning..."},
        {"ID": str(uuid.uuid4()), "Model": "llama3:8b", "Timestamp": "2025-10-02T14:06:00", "Status": "failed",
         "Source": "ollama", "Prompt": "Explain quantum computing in simple terms."},
    ]
