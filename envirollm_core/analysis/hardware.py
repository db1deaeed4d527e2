"""Which models and quantizations fit this machine's memory.

Memory a model needs = weights + KV cache + runtime overhead:
- weights: parameters x bits per weight / 8 (`data/quantization_bits.csv`,
  llama.cpp's measured file sizes);
- KV cache: 2 (keys and values) x layers x KV heads x head size x context
  tokens x bytes per element (2 for f16). Sliding-window layers (Gemma 2/3)
  are counted as full attention, so the figure is an upper bound there;
- overhead: compute buffers and the GPU runtime's context, taken as 0.5 GB
  plus 5 % of the weights (a stated assumption, not a measurement).
A model runs on the GPU when it all fits in VRAM, split between GPU and CPU
when it fits in both together, on the CPU when it fits in RAM less a reserve
for the system.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from envirollm_core.errors import UsageError
from envirollm_core.paths import data_file
from envirollm_core.units import BYTES_PER_GB, mib_to_gb

OVERHEAD_BASE_GB = 0.5
OVERHEAD_FRACTION = 0.05
RAM_RESERVE_GB = 2.0
DEFAULT_CONTEXT_TOKENS = 4096
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

Placement = Literal["gpu", "gpu+cpu", "cpu", "does not fit"]


@dataclass(frozen=True)
class CatalogModel:
    name: str
    ollama_tag: str
    params_b: float
    n_layers: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    source: str


@dataclass(frozen=True)
class FitEstimate:
    model: str
    ollama_tag: str
    quantization: str
    context_tokens: int
    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    total_gb: float
    placement: Placement
    decode_tps: float | None = None  # estimated memory-bound decode rate where it runs (analysis/speed.py)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@cache
def load_catalog(path: Path = data_file("model_catalog.csv")) -> tuple[CatalogModel, ...]:
    return tuple(
        CatalogModel(
            name=row["name"], ollama_tag=row["ollama_tag"], params_b=float(row["params_b"]),
            n_layers=int(row["n_layers"]), n_kv_heads=int(row["n_kv_heads"]), head_dim=int(row["head_dim"]),
            context_length=int(row["context_length"]), source=row["source"],
        )
        for row in _rows(path)
    )


@cache
def load_quantization_bits(path: Path = data_file("quantization_bits.csv")) -> dict[str, float]:
    return {row["quantization"].upper(): float(row["bits_per_weight"]) for row in _rows(path)}


def find_model(name: str) -> CatalogModel:
    """A catalog model by its name or Ollama tag (case-insensitive)."""
    wanted = name.strip().lower()
    for model in load_catalog():
        if wanted in (model.name.lower(), model.ollama_tag.lower()):
            return model
    raise UsageError(f"{name!r} is not in the model catalog (data/model_catalog.csv)")


def bits_per_weight(quantization: str) -> float:
    bits = load_quantization_bits()
    try:
        return bits[quantization.strip().upper()]
    except KeyError:
        raise UsageError(f"unknown quantization {quantization!r}; known: {', '.join(bits)}") from None


def memory_estimate(
    model: CatalogModel,
    quantization: str,
    *,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    kv_type: str = "f16",
    ram_gb: float | None = None,
    vram_gb: float | None = None,
) -> FitEstimate:
    """The memory `model` needs at `quantization` and `context_tokens`, and where it would run."""
    if context_tokens <= 0:
        raise UsageError(f"context must be a positive number of tokens, not {context_tokens}")
    if kv_type not in KV_BYTES:
        raise UsageError(f"unknown KV cache type {kv_type!r}; known: {', '.join(KV_BYTES)}")
    context = min(context_tokens, model.context_length)
    weights_gb = model.params_b * 1e9 * bits_per_weight(quantization) / 8 / BYTES_PER_GB
    kv_cache_gb = 2 * model.n_layers * model.n_kv_heads * model.head_dim * context * KV_BYTES[kv_type] / BYTES_PER_GB
    overhead_gb = OVERHEAD_BASE_GB + OVERHEAD_FRACTION * weights_gb
    total_gb = weights_gb + kv_cache_gb + overhead_gb
    return FitEstimate(
        model=model.name, ollama_tag=model.ollama_tag, quantization=quantization.upper(), context_tokens=context,
        weights_gb=weights_gb, kv_cache_gb=kv_cache_gb, overhead_gb=overhead_gb, total_gb=total_gb,
        placement=placement(total_gb, ram_gb=ram_gb, vram_gb=vram_gb),
    )


def placement(total_gb: float, *, ram_gb: float | None, vram_gb: float | None) -> Placement:
    usable_ram_gb = max((ram_gb or 0.0) - RAM_RESERVE_GB, 0.0)
    vram_gb = vram_gb or 0.0
    if vram_gb and total_gb <= vram_gb:
        return "gpu"
    if vram_gb and total_gb <= vram_gb + usable_ram_gb:
        return "gpu+cpu"
    if total_gb <= usable_ram_gb:
        return "cpu"
    return "does not fit"


def hardware_fit(
    ram_gb: float,
    vram_gb: float = 0.0,
    *,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    quantizations: tuple[str, ...] = ("Q4_K_M", "Q5_K_M", "Q8_0", "F16"),
    kv_type: str = "f16",
) -> list[FitEstimate]:
    """Every catalog model at each of `quantizations`, smallest first, with where it fits."""
    if ram_gb < 0 or vram_gb < 0:
        raise UsageError("memory sizes must not be negative")
    estimates = [
        memory_estimate(model, quant, context_tokens=context_tokens, kv_type=kv_type, ram_gb=ram_gb, vram_gb=vram_gb)
        for model in load_catalog()
        for quant in quantizations
    ]
    return sorted(estimates, key=lambda estimate: estimate.total_gb)


def detected_memory_gb() -> tuple[float, float | None]:
    """This machine's RAM and GPU memory in GB (1e9 bytes, the unit of every size here): `(ram_gb, vram_gb)`.

    `vram_gb` is the largest NVIDIA GPU's memory, because a model is placed on one GPU: the biggest is the one
    that decides what runs on the GPU alone (memory is not pooled across GPUs here). None without an NVIDIA GPU,
    or when NVML does not report any GPU's memory: unknown, not 0.
    """
    from envirollm_core.telemetry.system_info import system_info  # NVML opens on call only

    machine = system_info()
    sizes = [mib_to_gb(gpu.memory_total_mb) for gpu in machine.gpus if gpu.memory_total_mb is not None]
    return machine.ram_total_gb, max(sizes, default=None)


def usable(estimate: FitEstimate, min_tps: float | None) -> bool:
    """Fits, and decodes at `min_tps` or faster by its estimate (an unknown speed is not held against it)."""
    if estimate.placement == "does not fit":
        return False
    return min_tps is None or estimate.decode_tps is None or estimate.decode_tps >= min_tps


def largest_fits(estimates: list[FitEstimate], min_tps: float | None = None) -> dict[str, FitEstimate]:
    """Per placement, the estimate with the most parameters-times-bits that fits there and is usable: with
    `min_tps`, estimated to decode at least that fast (a 32B model in a laptop's RAM fits and crawls)."""
    best: dict[str, FitEstimate] = {}
    for estimate in estimates:
        if usable(estimate, min_tps) and (
            estimate.placement not in best or estimate.weights_gb > best[estimate.placement].weights_gb
        ):
            best[estimate.placement] = estimate
    return best
