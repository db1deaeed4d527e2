"""The shapes that cross module boundaries: one benchmark run and its energy.

The benchmark runner fills a `RunResult`; the store writes and reads it; the
analysis, the CLI and the pages consume it. Units are in the names; a reading
the hardware does not give is `None` (null), never 0.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EnergySource = Literal[
    "counter", "power-integral", "average-power", "estimate", "unmeasured",
    "prometheus:dcgm", "prometheus:rapl", "prometheus:kepler",  # a remote machine's counters in Prometheus
]
RunStatus = Literal["ok", "failed", "cancelled"]
TokenCountSource = Literal["usage", "server-native", "chunks"]


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy of one component (`cpu`, `dram`, `gpu:0`...) over a window, and where it came from."""

    component: str
    energy_wh: float | None
    source: EnergySource
    note: str = ""


@dataclass(frozen=True)
class TracePoint:
    """One sample of the machine during a run; `t_s` counts from the window's start."""

    t_s: float
    cpu_percent: float | None = None
    ram_used_mb: float | None = None
    cpu_power_w: float | None = None
    gpu_power_w: float | None = None
    gpu_util_percent: float | None = None
    gpu_mem_used_mb: float | None = None
    gpu_temp_c: float | None = None


@dataclass
class RunResult:
    """One request to one model with one prompt: timing, tokens, energy, quality."""

    id: str
    batch_id: str
    created_at: datetime
    model: str
    backend: str  # "ollama" | "openai" | "lmstudio" | "llamacpp" | "embedded" | "imported" | "proxy"
    base_url: str
    prompt: str
    prompt_hash: str
    status: RunStatus
    preset: str | None = None
    repeat_index: int = 0
    error: str | None = None
    # timing
    ttft_s: float | None = None
    e2e_s: float | None = None
    decode_tps: float | None = None
    server_decode_tps: float | None = None
    server_prompt_tps: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    # tokens
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    token_count_source: TokenCountSource | None = None
    finish_reason: str | None = None
    # energy and machine
    energy_wh: float | None = None
    energy_net_wh: float | None = None
    energy_per_token_wh: float | None = None
    energy_uncertainty_wh: float | None = None  # bound on energy_wh's error (remote: the scrape interval at each edge)
    components: list[ComponentEnergy] = field(default_factory=list)
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    cpu_percent_avg: float | None = None
    ram_used_mb_peak: float | None = None
    server_peak_rss_mb: float | None = None
    server_gpu_mem_mb: float | None = None
    # model and request
    quantization: str | None = None
    quantization_source: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    engine_threads: int | None = None  # threads of an engine EnviroLLM started (embedded); None when unknown
    response: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    # quality
    quality_score: float | None = None
    quality_method: str | None = None
    quality_detail: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    # load sweeps, and the energy of one stream's two phases (split at its first token)
    sweep_concurrency: int | None = None  # the level this run was sent at, in the load sweep `batch_id`
    prefill_energy_wh: float | None = None  # before the first token: the prompt's processing
    decode_energy_wh: float | None = None  # from the first token on
    phase_split_uncertainty_wh: float | None = None  # either part may be off by this (the sampling interval)
    trace: list[TracePoint] = field(default_factory=list)
    # real use through the metering proxy (null for benchmark runs): `source` is "live use", `client` the
    # X-EnviroLLM-Client tag else the user agent; `live_detail` holds the text lengths, the HTTP status,
    # the router's decision and reason, and how the energy was shared (docs/PROXY.md)
    source: str | None = None
    client: str | None = None
    live_detail: dict[str, Any] = field(default_factory=dict)


def normalize_prompt(prompt: str) -> str:
    """Unicode NFC, trimmed, inner whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", prompt).split())


def prompt_hash(prompt: str) -> str:
    """SHA-256 of the normalized prompt, 16 hex characters: runs of one prompt group together."""
    return hashlib.sha256(normalize_prompt(prompt).encode("utf-8")).hexdigest()[:16]
