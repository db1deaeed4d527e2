"""Where each part's energy comes from: one class per kind of source.

A RAPL zone is a counter (`counter`); a GPU is NVML's energy counter, else its
instant or 1 s average power integrated, else an estimate from utilization and
its power limit; a CPU or RAM with no counter is estimated from utilization and
a TDP, or from the installed size (`estimate`). The sampler reads counters at
window edges and power at every tick (`telemetry.windows` does the arithmetic).
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from envirollm_core.records import EnergySource
from envirollm_core.telemetry.estimate import CpuPowerModel, cpu_power_model, gpu_power_estimate_w, ram_power_w
from envirollm_core.telemetry.measurement import ComponentInfo, component_kind
from envirollm_core.telemetry.nvml import GpuReading, NvidiaGpu, NvmlSession
from envirollm_core.telemetry.rapl import RaplZone, WrappingCounter, discover_rapl
from envirollm_core.telemetry.system_info import cpu_model_name, is_virtual_machine

MIN_COUNTER_POWER_INTERVAL_S = 0.02  # power from two counter reads closer than this is noise


class Component:
    """One measured part. Counter parts give a running total in joules; every part gives power."""

    is_counter = False
    fallback_source: EnergySource = "unmeasured"  # when a counter read at an edge fails

    def __init__(self, info: ComponentInfo) -> None:
        self.info = info

    def counter_j(self) -> float | None:
        return None

    def power_w(self, now: float, busy: float | None, readings: dict[int, GpuReading] | None) -> float | None:
        """Power now; `readings` are this tick's GPU readings, None at a window edge."""
        raise NotImplementedError


class RaplPart(Component):
    is_counter = True

    def __init__(self, zone: RaplZone) -> None:
        kind = component_kind(zone.component)
        what = "package" if kind == "cpu" else "DRAM"
        super().__init__(ComponentInfo(zone.component, kind, "counter", f"RAPL {what} counter {zone.path.name}"))
        self._zone = zone
        self._counter = WrappingCounter(zone.max_energy_range_uj)
        self._total_j: float | None = None
        self._reference: tuple[float, float] | None = None  # (time, joules) that power is taken from
        self._power_w: float | None = None

    def _read(self, now: float) -> float | None:
        try:
            total_j = self._counter.update(self._zone.read_energy_uj()) / 1e6
        except (OSError, ValueError):
            return None
        if self._reference is None:
            self._reference = (now, total_j)
        elif now - self._reference[0] >= MIN_COUNTER_POWER_INTERVAL_S:
            self._power_w = (total_j - self._reference[1]) / (now - self._reference[0])
            self._reference = (now, total_j)
        self._total_j = total_j
        return total_j

    def counter_j(self) -> float | None:
        return self._read(time.monotonic())

    def power_w(self, now, busy, readings):
        if readings is not None:  # a tick: read the counter (edges were read by `counter_j`)
            self._read(now)
        return self._power_w


class GpuPart(Component):
    def __init__(self, gpu: NvidiaGpu, use_counter: bool) -> None:
        self.gpu = gpu
        source: EnergySource
        if gpu.has_energy_counter and use_counter:
            source, note = "counter", "NVML energy counter at window edges"
        elif gpu.power_source == "instant":
            source, note = "power-integral", "NVML instant power, integrated"
        elif gpu.power_source == "average":
            source, note = "average-power", "NVML 1 s average power, integrated: short bursts are smoothed"
        elif gpu.power_limit_w is not None:
            source, note = "estimate", f"no power reading: (0.1 + 0.9 x utilization) x {gpu.power_limit_w:g} W limit"
        else:
            source, note = "unmeasured", "this GPU reports neither energy nor power"
        super().__init__(ComponentInfo(f"gpu:{gpu.index}", "gpu", source, f"{gpu.name}: {note}"))
        self.is_counter = gpu.has_energy_counter and use_counter
        self.fallback_source = {"instant": "power-integral", "average": "average-power"}.get(gpu.power_source or "", "unmeasured")
        self._last_util: float | None = None

    def counter_j(self) -> float | None:
        energy_mj = self.gpu.get_total_energy_mj()
        return energy_mj / 1000 if energy_mj is not None else None

    def power_w(self, now, busy, readings):
        if readings is None:
            power = self.gpu.get_power_w()  # a fresh reading at the edge, ~3 us for the instant field
        else:
            reading = readings.get(self.gpu.index)
            power = reading.power_w if reading else None
            self._last_util = reading.util_percent if reading else None
        if power is None and self.gpu.power_source is None and self.gpu.power_limit_w and self._last_util is not None:
            return gpu_power_estimate_w(self.gpu.power_limit_w, self._last_util)
        return power


class CpuEstimate(Component):
    def __init__(self, model: CpuPowerModel, why: str) -> None:
        note = f"(0.1 + 0.9 x CPU utilization) x {model.tdp_w:g} W ({model.basis}){why}"
        super().__init__(ComponentInfo("cpu", "cpu", "estimate", note))
        self._model = model

    def power_w(self, now, busy, readings):
        return self._model.power_w(busy) if busy is not None else None


class RamEstimate(Component):
    def __init__(self, total_gb: float) -> None:
        self._watts = ram_power_w(total_gb)
        super().__init__(ComponentInfo("ram", "ram", "estimate", f"0.375 W/GB x {total_gb:.1f} GB installed = {self._watts:.1f} W"))

    def power_w(self, now, busy, readings):
        return self._watts


def discover_components(
    sysfs_root: Path | None, nvml: NvmlSession, gpu_counters: bool
) -> tuple[list[Component], tuple[str, ...]]:
    """This machine's measured parts, CPU first, and notes on what could not be read (RAPL, NVML)."""
    rapl = discover_rapl(sysfs_root)
    notes = tuple(note for note in (rapl.problem, nvml.problem) if note)
    components: list[Component] = [RaplPart(zone) for zone in rapl.zones]
    kinds = {component_kind(zone.component) for zone in rapl.zones}
    if "cpu" not in kinds:
        why = "; no readable RAPL counter" + (" (permission denied)" if rapl.problem and "permission" in rapl.problem else "")
        logical = psutil.cpu_count(logical=True) or 1
        components.insert(0, CpuEstimate(cpu_power_model(cpu_model_name(), logical, is_virtual_machine()), why))
    if "ram" not in kinds:
        components.append(RamEstimate(psutil.virtual_memory().total / 1e9))
    components.extend(GpuPart(gpu, gpu_counters) for gpu in nvml.gpus)
    return components, notes
