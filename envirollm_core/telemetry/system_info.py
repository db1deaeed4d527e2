"""What machine this is: CPU, memory, GPUs, OS."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

import psutil

from envirollm_core.telemetry.nvml import NvmlSession
from envirollm_core.units import bytes_to_gb


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mb: float | None  # MiB; None when NVML does not report it (unknown, not 0)
    driver_version: str


@dataclass(frozen=True)
class SystemInfo:
    os_name: str
    cpu_model: str
    cpu_physical_cores: int | None
    cpu_logical_cores: int
    ram_total_gb: float
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)


def cpu_model_name() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def nvidia_gpus() -> tuple[GpuInfo, ...]:
    """Every NVIDIA GPU NVML sees; none when there is no driver or library."""
    with NvmlSession() as nvml:
        return tuple(
            GpuInfo(gpu.index, gpu.name, gpu.memory_total_mb, nvml.driver_version or "unknown")
            for gpu in nvml.gpus
        )


def is_virtual_machine() -> bool:
    """True when the CPU reports the `hypervisor` flag (a guest of KVM, Hyper-V, VMware, WSL...)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return "hypervisor" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def system_info() -> SystemInfo:
    return SystemInfo(
        os_name=f"{platform.system()} {platform.release()}",
        cpu_model=cpu_model_name(),
        cpu_physical_cores=psutil.cpu_count(logical=False),
        cpu_logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_total_gb=bytes_to_gb(psutil.virtual_memory().total),
        gpus=nvidia_gpus(),
    )
