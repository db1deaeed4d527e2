"""Window arithmetic: what one energy window gathers from the sampler's edges and ticks.

A window opens with an edge (counters and power read at once), is fed every
tick the sampler takes while it is open, and closes with another edge. Energy
per component is the counter's rise between the edges where the part has a
counter, else the trapezoid of its power over the edges and ticks. The window
also keeps CPU, RAM, GPU and tracked-process statistics and a trace bounded in
length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envirollm_core.records import ComponentEnergy, EnergySource, TracePoint
from envirollm_core.telemetry.components import Component
from envirollm_core.telemetry.measurement import Measurement, ProcessWindowStats, component_kind, sum_known
from envirollm_core.telemetry.nvml import GpuReading
from envirollm_core.telemetry.processes import ProcessStats

MAX_TRACE_POINTS = 2000  # per window; longer windows keep every 2nd, 4th... sample


@dataclass(frozen=True)
class Sample:
    """The machine at one tick. `time_s` is `time.monotonic()`; power is per component;
    RAM and the tracked `processes` are as last read (at most 0.25 s ago)."""

    time_s: float
    unix_time: float
    cpu_percent: float | None
    ram_used_mb: float
    power_w: tuple[tuple[str, float | None], ...]
    gpus: tuple[GpuReading, ...]
    processes: tuple[ProcessStats, ...]

    @property
    def total_power_w(self) -> float | None:
        return sum_known(power for _, power in self.power_w)

    def kind_power_w(self, kind: str) -> float | None:
        return sum_known(power for name, power in self.power_w if component_kind(name) == kind)


class _Trapezoid:
    def __init__(self) -> None:
        self.energy_j = 0.0
        self.points = 0
        self._last: tuple[float, float] | None = None

    def add(self, t: float, power_w: float | None) -> None:
        if power_w is None:
            return
        if self._last is not None:
            self.energy_j += (t - self._last[0]) * (power_w + self._last[1]) / 2
        self._last = (t, power_w)
        self.points += 1

    def result_j(self) -> float | None:
        return self.energy_j if self.points >= 2 else None


class _Stat:
    def __init__(self) -> None:
        self.count, self.total, self.peak = 0, 0.0, None

    def add(self, value: float | None) -> None:
        if value is None:
            return
        self.count += 1
        self.total += value
        self.peak = value if self.peak is None or value > self.peak else self.peak

    @property
    def avg(self) -> float | None:
        return self.total / self.count if self.count else None


class _ProcessStat:
    def __init__(self, pid: int, process_name: str) -> None:
        self.pid, self.process_name = pid, process_name
        self.rss, self.cpu, self.threads, self.gpu_mem = _Stat(), _Stat(), _Stat(), _Stat()
        self.exited = False

    def result(self) -> ProcessWindowStats:
        threads = int(self.threads.peak) if self.threads.peak is not None else None
        return ProcessWindowStats(self.pid, self.process_name, self.rss.peak, self.cpu.avg, threads, self.gpu_mem.peak, self.exited)


@dataclass(frozen=True)
class Edge:
    """Counters and power read at one window edge, dated at the middle of the counter reads."""

    time_s: float
    unix_time: float
    counters_j: dict[str, float | None]
    power_w: dict[str, float | None]


class Window:
    """One open window: integrals and statistics fed by the sampler (which holds its lock meanwhile)."""

    def __init__(self, name: str, start: Edge, pids: dict[int, str], component_names: Sequence[str]) -> None:
        self.name = name
        self.start = start
        self.integrals = {component: _Trapezoid() for component in component_names}
        self.processes = {pid: _ProcessStat(pid, process_name) for pid, process_name in pids.items()}
        self.cpu, self.ram, self.power = _Stat(), _Stat(), _Stat()
        self.gpu_util, self.gpu_mem, self.gpu_temp = _Stat(), _Stat(), _Stat()
        self.trace: list[TracePoint] = []
        self.trace_stride = 1
        self.ticks = 0
        self.add_edge(start)

    def add_edge(self, edge: Edge) -> None:
        for name, power in edge.power_w.items():
            self.integrals[name].add(edge.time_s, power)
        self.power.add(sum_known(edge.power_w.values()))

    def add_processes(self, sampled: dict[int, ProcessStats | None]) -> None:
        """Tracked processes just sampled; None for one that has exited."""
        for pid, stat in self.processes.items():
            if pid not in sampled:
                continue
            stats = sampled[pid]
            if stats is None:
                stat.exited = True
                continue
            stat.rss.add(stats.rss_mb)
            stat.cpu.add(stats.cpu_percent)
            stat.threads.add(stats.threads)
            stat.gpu_mem.add(stats.gpu_mem_mb)

    def add_tick(self, sample: Sample) -> None:
        for name, power in sample.power_w:
            self.integrals[name].add(sample.time_s, power)
        self.ticks += 1
        self.cpu.add(sample.cpu_percent)
        self.ram.add(sample.ram_used_mb)
        self.power.add(sample.total_power_w)
        gpu_util, gpu_mem, gpu_temp = _gpu_summary(sample.gpus)
        self.gpu_util.add(gpu_util)
        self.gpu_mem.add(gpu_mem)
        self.gpu_temp.add(gpu_temp)
        if (self.ticks - 1) % self.trace_stride == 0:
            self.trace.append(TracePoint(
                t_s=sample.time_s - self.start.time_s,
                cpu_percent=sample.cpu_percent,
                ram_used_mb=sample.ram_used_mb,
                cpu_power_w=sample.kind_power_w("cpu"),
                gpu_power_w=sample.kind_power_w("gpu"),
                gpu_util_percent=gpu_util,
                gpu_mem_used_mb=gpu_mem,
                gpu_temp_c=gpu_temp,
            ))
            if len(self.trace) >= MAX_TRACE_POINTS:  # bounded memory for long windows
                self.trace = self.trace[::2]
                self.trace_stride *= 2

    def measurement(self, end: Edge, components: Sequence[Component]) -> Measurement:
        """What the window measured from its start to `end`.

        A counter gives the energy between the edges; a part without one, or whose counter read failed at
        an edge, gives the trapezoid of its power (labelled by its fallback source)."""
        self.add_edge(end)
        duration_s = end.time_s - self.start.time_s
        energies = []
        for component in components:
            info = component.info
            energy_j: float | None
            source: EnergySource = info.source
            start_j, end_j = self.start.counters_j.get(info.name), end.counters_j.get(info.name)
            if component.is_counter and start_j is not None and end_j is not None:
                energy_j = max(end_j - start_j, 0.0)
            else:
                energy_j = self.integrals[info.name].result_j()
                if component.is_counter:
                    source = component.fallback_source
                if energy_j is None or source == "unmeasured":
                    energy_j, source = None, "unmeasured"
            energies.append(ComponentEnergy(info.name, energy_j / 3600 if energy_j is not None else None, source, info.note))
        energy_wh = sum_known(c.energy_wh for c in energies)
        return Measurement(
            name=self.name,
            start_unix_time=self.start.unix_time,
            duration_s=duration_s,
            components=tuple(energies),
            energy_wh=energy_wh,
            avg_power_w=energy_wh * 3600 / duration_s if energy_wh is not None and duration_s > 0 else None,
            peak_power_w=self.power.peak,
            cpu_percent_avg=self.cpu.avg,
            cpu_percent_peak=self.cpu.peak,
            ram_used_mb_avg=self.ram.avg,
            ram_used_mb_peak=self.ram.peak,
            gpu_util_percent_avg=self.gpu_util.avg,
            gpu_util_percent_peak=self.gpu_util.peak,
            gpu_mem_used_mb_avg=self.gpu_mem.avg,
            gpu_mem_used_mb_peak=self.gpu_mem.peak,
            gpu_temp_c_avg=self.gpu_temp.avg,
            gpu_temp_c_peak=self.gpu_temp.peak,
            processes=tuple(stat.result() for stat in self.processes.values()),
            trace=tuple(self.trace),
            sample_count=self.ticks,
        )


def _gpu_summary(gpus: Sequence[GpuReading]) -> tuple[float | None, float | None, float | None]:
    utils = [g.util_percent for g in gpus if g.util_percent is not None]
    mems = [g.mem_used_mb for g in gpus if g.mem_used_mb is not None]
    temps = [g.temp_c for g in gpus if g.temp_c is not None]
    return (sum(utils) / len(utils) if utils else None, sum(mems) if mems else None, max(temps) if temps else None)
