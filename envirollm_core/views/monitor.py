"""The Monitor page's data: the live frame from the shared sampler's recent samples, the latest power per
component with its source, the detected LLM servers, and a remote machine's power from Prometheus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from envirollm_core.figures import round_frame
from envirollm_core.telemetry.processes import LlmServer
from envirollm_core.telemetry.prometheus import RemotePower
from envirollm_core.telemetry.sampler import ComponentInfo, Sample
from envirollm_core.telemetry.system_info import GpuInfo
from envirollm_core.units import mib_to_gb


MAX_POINTS_PER_SERIES = 600  # a live chart redrawn every second stays light in the browser




# Monitor panels: title -> unit on the y axis.
PANELS: dict[str, str] = {
    "Power": "W",
    "CPU": "% of all cores",
    "RAM": "GB used",
    "GPU utilization": "%",
    "GPU memory": "GB used",
    "GPU temperature": "°C",
}


MONITOR_SCHEMA = {"panel": pl.String, "series": pl.String, "t_s": pl.Float64, "value": pl.Float64}


def power_series_label(info: ComponentInfo) -> str:
    """`cpu (estimate)`, `gpu:0 (counter)`: every power figure carries its source."""
    return f"{info.name} ({info.source})"


def monitor_frame(samples: Sequence[Sample], components: Sequence[ComponentInfo]) -> pl.DataFrame:
    """Long frame (panel, series, t_s, value) of the samples, `t_s` counted back from the newest (0 = now).

    A reading the hardware does not give is left out, never drawn as 0."""
    if not samples:
        return pl.DataFrame(schema=MONITOR_SCHEMA)
    stride = max(1, -(-len(samples) // MAX_POINTS_PER_SERIES))
    picked = list(samples[::-1][::stride])[::-1]  # keep the newest sample, thin out the older ones
    now = samples[-1].time_s
    labels = {info.name: power_series_label(info) for info in components}
    rows: list[tuple[str, str, float, float | None]] = []
    for sample in picked:
        t_s = sample.time_s - now
        for name, watts in sample.power_w:
            rows.append(("Power", labels.get(name, name), t_s, watts))
        rows.append(("CPU", "CPU", t_s, sample.cpu_percent))
        rows.append(("RAM", "RAM", t_s, mib_to_gb(sample.ram_used_mb)))
        for gpu in sample.gpus:
            series = f"gpu:{gpu.index}"
            rows.append(("GPU utilization", series, t_s, gpu.util_percent))
            rows.append(("GPU memory", series, t_s, mib_to_gb(gpu.mem_used_mb)))
            rows.append(("GPU temperature", series, t_s, gpu.temp_c))
    frame = pl.DataFrame(rows, schema=MONITOR_SCHEMA, orient="row")
    return frame.filter(pl.col("value").is_not_null())


@dataclass(frozen=True)
class PowerNow:
    """A component's latest power reading with where it comes from (None: not measured)."""

    component: str
    watts: float | None
    source: str
    note: str


def power_now(samples: Sequence[Sample], components: Sequence[ComponentInfo]) -> list[PowerNow]:
    latest = dict(samples[-1].power_w) if samples else {}
    return [PowerNow(info.name, latest.get(info.name), info.source, info.note) for info in components]


def gpus_frame(gpus: Sequence[GpuInfo]) -> pl.DataFrame:
    """This machine's NVIDIA GPUs, one row each."""
    frame = pl.DataFrame(
        [{"GPU": g.index, "name": g.name, "memory (MB)": g.memory_total_mb, "driver": g.driver_version} for g in gpus],
        schema={"GPU": pl.Int64, "name": pl.String, "memory (MB)": pl.Float64, "driver": pl.String},
    )
    return round_frame(frame, {"memory (MB)": "MB"})


def servers_frame(servers: Sequence[LlmServer]) -> pl.DataFrame:
    """The detected LLM servers, one row each, their children folded in."""
    frame = pl.DataFrame(
        [
            {
                "server": server.name,
                "pid": server.pid,
                "process": server.process_name,
                "CPU (% of one core)": server.cpu_percent,
                "RSS (MB)": server.rss_mb,
                "GPU memory (MB)": server.gpu_mem_mb,
                "threads": server.threads,
                "child processes": len(server.children),
                "command": " ".join(server.cmdline)[:200],
            }
            for server in servers
        ],
        schema={
            "server": pl.String, "pid": pl.Int64, "process": pl.String, "CPU (% of one core)": pl.Float64,
            "RSS (MB)": pl.Float64, "GPU memory (MB)": pl.Float64, "threads": pl.Int64,
            "child processes": pl.Int64, "command": pl.String,
        },
    )
    return round_frame(frame, {"CPU (% of one core)": "%", "RSS (MB)": "MB", "GPU memory (MB)": "MB"})


def remote_power_frame(rows: Sequence[RemotePower]) -> pl.DataFrame:
    """A remote machine's power from Prometheus as (panel, series, t_s, value) for `charts.timeline`."""
    return pl.DataFrame(
        [("Remote power", f"{row.component} ({row.source})", row.t_s, row.watts) for row in rows],
        schema=MONITOR_SCHEMA, orient="row",
    )
