"""A fake `pynvml` module that behaves like nvidia-ml-py's documented behaviour, quirks included.

It borrows the real module's error classes, constants and ctypes field
structure (importing the real one needs no driver), and simulates GPUs whose
power follows a repeating burst profile:
- `nvmlDeviceGetTotalEnergyConsumption`: millijoules since "driver load",
  the exact integral of the profile (a big starting offset, like a real one);
- the `NVML_FI_DEV_POWER_INSTANT` field: the power now, milliwatts, with
  `nvmlReturn`, `valueType` and `value.uiVal` as the real call fills them; an
  unsupported field comes back with `nvmlReturn = NVML_ERROR_NOT_SUPPORTED`
  while the call itself succeeds;
- `nvmlDeviceGetPowerUsage`: a one-second trailing average, as on Ampere and
  newer (so it lags bursts);
- anything a device lacks raises `NVMLError_NotSupported`; every device call
  before `nvmlInit` raises `NVMLError_Uninitialized`; without a driver
  `nvmlInit` raises `NVMLError_LibraryNotFound`.
"""

from __future__ import annotations

import math
import sys
import time
import types
from dataclasses import dataclass, field

import pynvml as real

_EXPORTED = [name for name in dir(real) if name.startswith(("NVML_", "NVMLError", "c_nvml"))] + ["NVMLError"]


@dataclass
class BurstProfile:
    """Power that repeats `segments` [(seconds, watts), ...] since `start` (monotonic seconds; by
    default a minute ago, so the GPU has a history, as a real one has since its driver loaded)."""

    segments: list[tuple[float, float]]
    start: float = field(default_factory=lambda: time.monotonic() - 60.0)

    @property
    def period_s(self) -> float:
        return sum(duration for duration, _ in self.segments)

    def power_w(self, t: float) -> float:
        phase = (t - self.start) % self.period_s
        for duration, watts in self.segments:
            if phase < duration:
                return watts
            phase -= duration
        return self.segments[-1][1]

    def energy_j(self, t: float) -> float:
        """Energy from `start` to `t` (0 before `start`)."""
        elapsed = max(t - self.start, 0.0)
        cycles = math.floor(elapsed / self.period_s)
        energy = cycles * sum(d * w for d, w in self.segments)
        phase = elapsed - cycles * self.period_s
        for duration, watts in self.segments:
            step = min(duration, phase)
            energy += step * watts
            phase -= step
            if phase <= 0:
                break
        return energy


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    profile: BurstProfile = field(default_factory=lambda: BurstProfile([(1.0, 100.0)]))
    energy_counter: bool = True
    instant_power: bool = True
    power_usage: bool = True
    power_limit_w: float | None = 700.0
    util_percent: float | None = 50.0
    memory_total_mb: float = 81559.0
    memory_used_mb: float = 1024.0
    temp_c: float | None = 40.0
    memory_info: bool = True  # False: nvmlDeviceGetMemoryInfo raises NotSupported
    processes_mb: dict[int, float | None] = field(default_factory=dict)  # pid -> GPU memory (None: not available)
    process_listing: bool = True  # False: listing the running processes raises NotSupported
    energy_offset_mj: int = 987_654_321

    def total_energy_mj(self, t: float) -> int:
        return self.energy_offset_mj + int(self.profile.energy_j(t) * 1000)


def make_fake_pynvml(gpus: list[FakeGpu], driver: bool = True) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.__dict__.update({name: getattr(real, name) for name in _EXPORTED})
    state = {"initialised": 0}

    def error(code: int) -> Exception:
        return real.NVMLError(code)

    def needs_init() -> None:
        if not state["initialised"]:
            raise error(real.NVML_ERROR_UNINITIALIZED)

    def device(handle: object) -> FakeGpu:
        needs_init()
        if not isinstance(handle, FakeGpu):
            raise error(real.NVML_ERROR_INVALID_ARGUMENT)
        return handle

    def not_supported() -> Exception:
        return error(real.NVML_ERROR_NOT_SUPPORTED)

    def nvmlInit() -> None:
        if not driver:
            raise error(real.NVML_ERROR_LIBRARY_NOT_FOUND)
        state["initialised"] += 1

    def nvmlShutdown() -> None:
        needs_init()
        state["initialised"] -= 1

    def nvmlSystemGetDriverVersion() -> str:
        needs_init()
        return "580.159.04"

    def nvmlDeviceGetCount() -> int:
        needs_init()
        return len(gpus)

    def nvmlDeviceGetHandleByIndex(index: int) -> FakeGpu:
        needs_init()
        if not 0 <= index < len(gpus):
            raise error(real.NVML_ERROR_INVALID_ARGUMENT)
        return gpus[index]

    def nvmlDeviceGetName(handle) -> str:
        return device(handle).name

    def nvmlDeviceGetMemoryInfo(handle, version=None):
        gpu = device(handle)
        if not gpu.memory_info:
            raise not_supported()
        total, used = int(gpu.memory_total_mb * 2**20), int(gpu.memory_used_mb * 2**20)
        return types.SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetUtilizationRates(handle):
        gpu = device(handle)
        if gpu.util_percent is None:
            raise not_supported()
        return types.SimpleNamespace(gpu=int(gpu.util_percent), memory=int(gpu.util_percent / 2))

    def nvmlDeviceGetTemperature(handle, sensor):
        gpu = device(handle)
        if gpu.temp_c is None or sensor != real.NVML_TEMPERATURE_GPU:
            raise not_supported()
        return int(gpu.temp_c)

    def nvmlDeviceGetEnforcedPowerLimit(handle) -> int:
        gpu = device(handle)
        if gpu.power_limit_w is None:
            raise not_supported()
        return int(gpu.power_limit_w * 1000)

    def nvmlDeviceGetPowerUsage(handle) -> int:
        gpu = device(handle)
        if not gpu.power_usage:
            raise not_supported()
        now = time.monotonic()
        return int((gpu.profile.energy_j(now) - gpu.profile.energy_j(now - 1.0)) * 1000)  # a 1 s average

    def nvmlDeviceGetTotalEnergyConsumption(handle) -> int:
        gpu = device(handle)
        if not gpu.energy_counter:
            raise not_supported()
        return gpu.total_energy_mj(time.monotonic())

    def nvmlDeviceGetFieldValues(handle, fieldIds):
        gpu = device(handle)
        values = (real.c_nvmlFieldValue_t * len(fieldIds))()
        now = time.monotonic()
        for slot, field_id in zip(values, fieldIds):
            slot.fieldId = field_id
            slot.timestamp = int(time.time() * 1e6)
            if field_id == real.NVML_FI_DEV_POWER_INSTANT and gpu.instant_power:
                slot.nvmlReturn = real.NVML_SUCCESS
                slot.valueType = real.NVML_VALUE_TYPE_UNSIGNED_INT
                slot.value.uiVal = int(gpu.profile.power_w(now) * 1000)
            else:
                slot.nvmlReturn = real.NVML_ERROR_NOT_SUPPORTED
        return values

    def running_processes(handle):
        gpu = device(handle)
        if not gpu.process_listing:
            raise not_supported()
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=None if mb is None else int(mb * 2**20))
                for pid, mb in gpu.processes_mb.items()]

    def graphics_processes(handle):
        gpu = device(handle)
        if not gpu.process_listing:
            raise not_supported()
        return []

    for function in (nvmlInit, nvmlShutdown, nvmlSystemGetDriverVersion, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex,
                     nvmlDeviceGetName, nvmlDeviceGetMemoryInfo, nvmlDeviceGetUtilizationRates, nvmlDeviceGetTemperature,
                     nvmlDeviceGetEnforcedPowerLimit, nvmlDeviceGetPowerUsage, nvmlDeviceGetTotalEnergyConsumption,
                     nvmlDeviceGetFieldValues):
        setattr(module, function.__name__, function)
    module.nvmlDeviceGetComputeRunningProcesses = running_processes
    module.nvmlDeviceGetGraphicsRunningProcesses = graphics_processes
    module.initialised = lambda: state["initialised"]
    return module


def install(monkeypatch, gpus: list[FakeGpu], driver: bool = True) -> types.ModuleType:
    fake = make_fake_pynvml(gpus, driver)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake
