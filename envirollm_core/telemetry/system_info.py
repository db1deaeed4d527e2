"""What machine this is: CPU, memory, GPUs, OS."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mb: float
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
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver: no NVIDIA GPU to report
        return ()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuInfo(index, _text(pynvml.nvmlDeviceGetName(handle)), memory.total / 2**20, driver))
        return tuple(gpus)
    except pynvml.NVMLError:
        return ()
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def system_info() -> SystemInfo:
    return SystemInfo(
        os_name=f"{platform.system()} {platform.release()}",
        cpu_model=cpu_model_name(),
        cpu_physical_cores=psutil.cpu_count(logical=False),
        cpu_logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_total_gb=psutil.virtual_memory().total / 1e9,
        gpus=nvidia_gpus(),
    )
