"""NVIDIA GPUs through NVML (`pynvml`, package nvidia-ml-py).

`pynvml` is imported when a session opens, never at module import, so a
machine without it (or a test that puts a fake in `sys.modules`) works. Each
reading the device does not support is `None`. Power comes from the instant
field (`NVML_FI_DEV_POWER_INSTANT`), which follows bursts; the older
`nvmlDeviceGetPowerUsage` is a one-second average on Ampere and newer, so it
is only the fallback. The energy counter is exact but slow to read (~4 ms),
so the sampler reads it at window edges only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Self

PowerSource = Literal["instant", "average"]

from envirollm_core.units import bytes_to_mib, milli_to_unit


@dataclass(frozen=True)
class GpuReading:
    """One look at a GPU; `None` for what it does not report."""

    index: int
    power_w: float | None
    util_percent: float | None
    mem_used_mb: float | None
    temp_c: float | None


class NvidiaGpu:
    """One NVML device, with readings in the units their names say."""

    def __init__(self, nvml: ModuleType, index: int) -> None:
        self._nvml = nvml
        self.index = index
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.name = _text(self._call(nvml.nvmlDeviceGetName) or f"GPU {index}")
        memory = self._call(nvml.nvmlDeviceGetMemoryInfo)
        self.memory_total_mb: float | None = bytes_to_mib(memory.total) if memory is not None else None
        self.has_energy_counter = self.get_total_energy_mj() is not None
        self.power_source: PowerSource | None = (
            "instant" if self.get_instant_power_mw() is not None
            else "average" if self.get_average_power_mw() is not None
            else None
        )
        limit_mw = self._call(nvml.nvmlDeviceGetEnforcedPowerLimit)
        self.power_limit_w: float | None = milli_to_unit(limit_mw) if limit_mw else None

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return function(self.handle, *args)
        except self._nvml.NVMLError:
            return None

    def get_total_energy_mj(self) -> int | None:
        """Energy since the driver loaded (Volta and newer), millijoules."""
        return self._call(self._nvml.nvmlDeviceGetTotalEnergyConsumption)

    def get_instant_power_mw(self) -> float | None:
        field_id = getattr(self._nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field_id is None:
            return None
        values = self._call(self._nvml.nvmlDeviceGetFieldValues, [field_id])
        if not values or values[0].nvmlReturn != self._nvml.NVML_SUCCESS:
            return None
        return _field_value(self._nvml, values[0])

    def get_average_power_mw(self) -> int | None:
        return self._call(self._nvml.nvmlDeviceGetPowerUsage)

    def get_power_w(self) -> float | None:
        if self.power_source == "instant":
            milliwatts = self.get_instant_power_mw()
        elif self.power_source == "average":
            milliwatts = self.get_average_power_mw()
        else:
            return None
        return milli_to_unit(milliwatts)

    def get_util_percent(self) -> float | None:
        rates = self._call(self._nvml.nvmlDeviceGetUtilizationRates)
        return float(rates.gpu) if rates is not None else None

    def get_mem_used_mb(self) -> float | None:
        memory = self._call(self._nvml.nvmlDeviceGetMemoryInfo)
        return bytes_to_mib(memory.used) if memory is not None else None

    def get_temp_c(self) -> float | None:
        temp = self._call(self._nvml.nvmlDeviceGetTemperature, self._nvml.NVML_TEMPERATURE_GPU)
        return float(temp) if temp is not None else None

    def read(self) -> GpuReading:
        return GpuReading(self.index, self.get_power_w(), self.get_util_percent(), self.get_mem_used_mb(), self.get_temp_c())

    def process_mem_mb(self) -> dict[int, float | None] | None:
        """GPU memory of every process on this device, by pid: a process listed with `None` is on the GPU
        but NVML does not say how much (WDDM). The whole answer is `None` when NVML cannot list the
        processes: then no process is known to be off the GPU either."""
        used: dict[int, float | None] = {}
        for lister in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            processes = self._call(getattr(self._nvml, lister))
            if processes is None:
                return None
            for process in processes:
                mem = bytes_to_mib(process.usedGpuMemory)
                # a process with compute and graphics contexts is listed twice with the same memory
                known = used.get(process.pid, mem)
                used[process.pid] = mem if known is None else known if mem is None else max(known, mem)
        return used


class NvmlSession:
    """NVML initialised, with every GPU; `gpus` is empty (and `problem` says why) without a driver."""

    def __init__(self) -> None:
        self.gpus: tuple[NvidiaGpu, ...] = ()
        self.driver_version: str | None = None
        self.problem: str | None = None
        self._nvml: ModuleType | None = None
        try:
            import pynvml
        except ImportError:
            self.problem = "no NVIDIA GPU readings: the nvidia-ml-py package is not installed"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.problem = f"no NVIDIA GPU found: NVML is unavailable ({exc})"
            return
        self._nvml = pynvml
        try:
            self.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
            self.gpus = tuple(NvidiaGpu(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount()))
        except pynvml.NVMLError as exc:
            self.problem = f"NVIDIA GPUs could not be listed ({exc})"
            self.close()
            return
        if not self.gpus:
            self.problem = "no NVIDIA GPU found (NVML sees no device)"

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml = None
            self.gpus = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def gpu_mem_by_pid_mb(gpus: Iterable[NvidiaGpu]) -> dict[int, float | None] | None:
    """GPU memory per process, summed over every GPU; a process absent from the answer uses none.
    A process's `None`: on a GPU that does not say how much. `None` for all: a GPU's processes could not be
    listed, so no process's total is known."""
    total: dict[int, float | None] = {}
    for gpu in gpus:
        used = gpu.process_mem_mb()
        if used is None:
            return None
        for pid, mem in used.items():
            known = total.get(pid, 0.0)
            total[pid] = None if known is None or mem is None else known + mem
    return total


def _field_value(nvml: ModuleType, field: Any) -> float | None:
    """A field's value by its declared C type (power fields are unsigned ints, mW)."""
    member = {
        nvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    }.get(field.valueType)
    return float(getattr(field.value, member)) if member else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
