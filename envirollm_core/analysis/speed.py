"""How fast a model would decode here: memory-bound decode ≈ usable memory bandwidth ÷ bytes read per token.

Generating one token reads every weight once and the KV cache of the
context, so on a machine whose compute keeps up (every CPU and GPU for
batch-1 decode) the rate is bounded by memory bandwidth. The CPU's is
measured once per machine (a short copy of a buffer far larger than any
cache, best of several) and stored; a GPU's comes from a table of makers'
figures by name (`data/gpu_bandwidth.csv`), of which `GPU_USABLE_FRACTION` is
reached in practice. Where this machine has stored runs, the estimate is
checked against them (`check_against_runs`) and the ratio shown.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import psutil

from envirollm_core.analysis.hardware import CatalogModel, FitEstimate, load_catalog, memory_estimate
from envirollm_core.errors import UsageError
from envirollm_core.figures import format_figure
from envirollm_core.machines import this_machine_key
from envirollm_core.paths import data_file, envirollm_home
from envirollm_core.units import BYTES_PER_GB

DEFAULT_MIN_TPS = 5.0  # below this a chat reply crawls: a 300-token answer takes a minute
GPU_USABLE_FRACTION = 0.75
PROBE_BYTES = 256 * 2**20
PROBE_REPEATS = 5
PROBE_FILE = "memory_bandwidth.json"


@dataclass(frozen=True)
class BandwidthProbe:
    """This machine's measured memory bandwidth, stored once (`$ENVIROLLM_HOME/memory_bandwidth.json`)."""

    machine: str
    gbps: float
    measured_at: str
    method: str


def measure_memory_bandwidth_gbps(
    size_bytes: int = PROBE_BYTES, repeats: int = PROBE_REPEATS, threads: int | None = None
) -> float:
    """Bytes read plus bytes written per second copying a buffer far past the caches, one slice per physical
    core at once (as a decode engine spreads its reads over every core; numpy copies without the GIL),
    best of `repeats`."""
    threads = threads or psutil.cpu_count(logical=False) or 1
    sources = [np.ones(size_bytes // 8 // threads) for _ in range(threads)]
    targets = [np.empty_like(source) for source in sources]
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.copyto, targets, sources))
            best = min(best, time.perf_counter() - start)
    return 2 * sum(source.nbytes for source in sources) / best / BYTES_PER_GB


def memory_bandwidth(*, refresh: bool = False, home: Path | None = None) -> BandwidthProbe:
    """This machine's probe: the stored one, else measured now (about a second) and stored."""
    path = (home or envirollm_home()) / PROBE_FILE
    machine = this_machine_key()
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    entry = stored.get(machine)
    if not refresh and isinstance(entry, dict) and isinstance(entry.get("gbps"), (int, float)) and entry["gbps"] > 0:
        return BandwidthProbe(machine, float(entry["gbps"]), str(entry.get("measured_at", "")), str(entry.get("method", "")))
    probe = BandwidthProbe(
        machine, measure_memory_bandwidth_gbps(), datetime.now(timezone.utc).isoformat(timespec="seconds"),
        f"numpy copy of {PROBE_BYTES // 2**20} MiB over every physical core, best of {PROBE_REPEATS}",
    )
    stored[machine] = {"gbps": probe.gbps, "measured_at": probe.measured_at, "method": probe.method}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    except OSError:
        pass  # a read-only home: measured again next time, nothing lost
    return probe


@cache
def _gpu_table(path: Path = data_file("gpu_bandwidth.csv")) -> tuple[tuple[str, float], ...]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [(row["name"].lower(), float(row["memory_bandwidth_gbps"])) for row in csv.DictReader(handle)]
    return tuple(sorted(rows, key=lambda row: -len(row[0])))


def gpu_bandwidth_gbps(gpu_name: str) -> float | None:
    """The maker's memory bandwidth of a GPU by its NVML name (the longest table name it contains); None if unknown."""
    name = gpu_name.lower()
    return next((gbps for part, gbps in _gpu_table() if part in name), None)


def bytes_per_token_gb(estimate: FitEstimate) -> float:
    """What one decoded token reads: every weight and the KV cache (at the estimate's context, an upper bound)."""
    return estimate.weights_gb + estimate.kv_cache_gb


def decode_tps_estimate(
    estimate: FitEstimate, *, ram_gbps: float | None, gpu_gbps: float | None, vram_gb: float = 0.0
) -> float | None:
    """Tokens/s of memory-bound decode where the estimate runs; None where it does not fit or a bandwidth is unknown.
    Split between GPU and CPU, each reads its share of the bytes in turn."""
    read_gb = bytes_per_token_gb(estimate)
    usable_gpu = gpu_gbps * GPU_USABLE_FRACTION if gpu_gbps else None
    if estimate.placement == "gpu":
        return usable_gpu / read_gb if usable_gpu else None
    if estimate.placement == "cpu":
        return ram_gbps / read_gb if ram_gbps else None
    if estimate.placement == "gpu+cpu":
        if not (usable_gpu and ram_gbps):
            return None
        on_gpu = min(read_gb, max(vram_gb - estimate.overhead_gb, 0.0))
        return 1.0 / (on_gpu / usable_gpu + (read_gb - on_gpu) / ram_gbps)
    return None


@dataclass(frozen=True)
class SpeedCheck:
    """An estimate against this machine's stored runs of the same model and quantization."""

    model: str
    quantization: str
    runs: int
    measured_tps: float
    estimated_tps: float

    @property
    def ratio(self) -> float:
        """measured / estimated: 1 is a perfect estimate, below 1 the estimate is optimistic."""
        return self.measured_tps / self.estimated_tps


def catalog_model_of(run_model: str) -> CatalogModel | None:
    """The catalog model a served model name stands for (`gemma3:270m`, `gemma-3-270m-q4_k_m`), or None."""
    name = run_model.strip().lower()
    matches = [m for m in load_catalog() if name == m.ollama_tag.lower() or name.startswith(m.name.lower())]
    return max(matches, key=lambda m: len(m.name), default=None)


def check_against_runs(
    frame: pl.DataFrame, *, ram_gbps: float | None, gpu_gbps: float | None, ram_gb: float, vram_gb: float,
    context_tokens: int,
) -> list[SpeedCheck]:
    """For each model and quantization this machine ran (a runs frame with `machine`, `decode_tps`), the mean
    measured decode rate beside the estimate for it."""
    here = frame.filter(
        (pl.col("machine") == this_machine_key()) & (pl.col("status") == "ok") & pl.col("decode_tps").is_not_null()
        & pl.col("quantization").is_not_null()
    )
    checks = []
    for row in here.group_by("model", "quantization").agg(
        pl.col("decode_tps").mean().alias("tps"), pl.len().alias("runs")
    ).sort("model", "quantization").iter_rows(named=True):
        model = catalog_model_of(row["model"])
        if model is None:
            continue
        try:
            estimate = memory_estimate(model, row["quantization"], context_tokens=context_tokens, ram_gb=ram_gb,
                                       vram_gb=vram_gb)
        except UsageError:  # a quantization the bits table does not know
            continue
        tps = decode_tps_estimate(estimate, ram_gbps=ram_gbps, gpu_gbps=gpu_gbps, vram_gb=vram_gb)
        if tps:
            checks.append(SpeedCheck(model.name, estimate.quantization, row["runs"], row["tps"], tps))
    return checks


def this_gpu_bandwidth_gbps() -> float | None:
    """The table's bandwidth of this machine's largest NVIDIA GPU (the one `detected_memory_gb` places models on)."""
    from envirollm_core.telemetry.system_info import nvidia_gpus

    gpus = sorted(nvidia_gpus(), key=lambda gpu: gpu.memory_total_mb or 0.0)
    return gpu_bandwidth_gbps(gpus[-1].name) if gpus else None


def with_speeds(
    estimates: list[FitEstimate], *, ram_gbps: float | None, gpu_gbps: float | None, vram_gb: float
) -> list[FitEstimate]:
    """The estimates with their estimated decode rate."""
    return [
        dataclasses.replace(
            estimate, decode_tps=decode_tps_estimate(estimate, ram_gbps=ram_gbps, gpu_gbps=gpu_gbps, vram_gb=vram_gb)
        )
        for estimate in estimates
    ]


def fit_verdict(estimate: FitEstimate, min_tps: float = DEFAULT_MIN_TPS) -> str:
    """`fits, ~12 tokens/s (estimated)`, `fits but too slow, ~0.3 tokens/s (estimated)`, or `does not fit`."""
    if estimate.placement == "does not fit":
        return "does not fit"
    if estimate.decode_tps is None:
        return "fits, speed unknown (no bandwidth figure)"
    speed = f"~{format_figure(estimate.decode_tps, 'tokens/s')} tokens/s (estimated)"
    return f"fits, {speed}" if estimate.decode_tps >= min_tps else f"fits but too slow, {speed}"
