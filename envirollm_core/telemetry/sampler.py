"""The sampler: one background thread per process that watches the machine.

Everything in a process (CLI runs, the app's sessions) shares one `Sampler`
(`get_sampler()`). It samples CPU, RAM, power per component, GPUs and the
tracked processes (these two at most 4 times a second, and processes also at
window edges) every `interval_s` (0.1 s by default) into a bounded ring
buffer for live charts, and feeds every open energy window, Zeus-style:

    sampler.begin_window("run-1", pids=[server_pid])
    ...
    measurement = sampler.end_window("run-1")

A window reads energy counters (RAPL, NVML) at its two edges, where they are
exact and their cost does not matter; parts without a counter are integrated
(trapezoid) from the power read at the edges and every tick between. Each
component's energy carries its source: `counter`, `power-integral`,
`average-power`, `estimate` or `unmeasured` (docs/ENERGY.md).
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import psutil

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.records import ComponentEnergy, EnergySource, TracePoint
from envirollm_core.telemetry.estimate import (
    CpuPowerModel,
    cpu_power_model,
    gpu_power_estimate_w,
    ram_power_w,
)
from envirollm_core.telemetry.nvml import (
    GpuReading,
    NvidiaGpu,
    NvmlSession,
    gpu_mem_by_pid_mb,
)
from envirollm_core.telemetry.processes import ProcessStats, ProcessTree
from envirollm_core.telemetry.rapl import RaplZone, WrappingCounter, discover_rapl
from envirollm_core.telemetry.system_info import cpu_model_name, is_virtual_machine
from envirollm_core.units import BYTES_PER_MIB

DEFAULT_INTERVAL_S = 0.1
MIN_INTERVAL_S = 0.01
MAX_INTERVAL_S = 60.0
RECENT_BUFFER_S = 600.0  # how far back `recent()` reaches
MAX_TRACE_POINTS = 2000  # per window; longer windows keep every 2nd, 4th... sample
SLOW_SAMPLE_INTERVAL_S = 0.25  # RAM and tracked processes move slowly and cost the most to read
GPU_PROCESS_REFRESH_S = 1.0
MIN_COUNTER_POWER_INTERVAL_S = 0.02  # power from two counter reads closer than this is noise

KIND_OF_PREFIX = {"cpu": "cpu", "dram": "ram", "ram": "ram", "gpu": "gpu"}


def component_kind(name: str) -> str:
    """`cpu:0` -> `cpu`, `dram:0` and `ram` -> `ram`, `gpu:1` -> `gpu`."""
    return KIND_OF_PREFIX.get(name.partition(":")[0], name.partition(":")[0])


@dataclass(frozen=True)
class ComponentInfo:
    """What is measured, of which kind (`cpu`, `ram`, `gpu`), by which source, and any caveat."""

    name: str
    kind: str
    source: EnergySource
    note: str = ""


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
        return _sum_known(power for _, power in self.power_w)

    def kind_power_w(self, kind: str) -> float | None:
        return _sum_known(power for name, power in self.power_w if component_kind(name) == kind)


@dataclass(frozen=True)
class ProcessWindowStats:
    """A tracked process with its children over a window; CPU % is of one core."""

    pid: int
    process_name: str
    rss_mb_peak: float | None
    cpu_percent_avg: float | None
    threads_peak: int | None
    gpu_mem_mb_peak: float | None
    exited: bool


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power per component, measured over `duration_s`."""

    duration_s: float
    power_w: tuple[tuple[str, float | None], ...]

    @classmethod
    def from_measurement(cls, measurement: Measurement) -> IdleBaseline:
        """Each component's mean power over a window measured while idle."""
        return cls(measurement.duration_s, tuple(
            (c.component, c.energy_wh * 3600 / measurement.duration_s if c.energy_wh is not None else None)
            for c in measurement.components
        ))

    def component_power_w(self, name: str) -> float | None:
        return dict(self.power_w).get(name)

    @property
    def total_power_w(self) -> float | None:
        return _sum_known(power for _, power in self.power_w)


@dataclass(frozen=True)
class Measurement:
    """One energy window: energy per component with its source, power, CPU/RAM/GPU stats, the trace."""

    name: str
    start_unix_time: float
    duration_s: float
    components: tuple[ComponentEnergy, ...]
    energy_wh: float | None  # every component with a number (measured or estimated); None if none has one
    avg_power_w: float | None
    peak_power_w: float | None
    cpu_percent_avg: float | None
    cpu_percent_peak: float | None
    ram_used_mb_avg: float | None
    ram_used_mb_peak: float | None
    gpu_util_percent_avg: float | None  # mean over GPUs
    gpu_util_percent_peak: float | None
    gpu_mem_used_mb_avg: float | None  # sum over GPUs
    gpu_mem_used_mb_peak: float | None
    gpu_temp_c_avg: float | None  # hottest GPU
    gpu_temp_c_peak: float | None
    processes: tuple[ProcessWindowStats, ...]
    trace: tuple[TracePoint, ...]
    sample_count: int
    energy_uncertainty_wh: float | None = None  # a bound on the energy's error, where the source gives one

    @property
    def energy_j(self) -> float | None:
        return self.energy_wh * 3600 if self.energy_wh is not None else None

    def component(self, name: str) -> ComponentEnergy | None:
        return next((c for c in self.components if c.component == name), None)

    def net_energy_wh(self, baseline: IdleBaseline) -> float | None:
        """Gross energy minus each component's idle power times this window's duration."""
        if self.energy_wh is None:
            return None
        idle_wh = 0.0
        for component in self.components:
            idle_w = baseline.component_power_w(component.component)
            if component.energy_wh is not None and idle_w is not None:
                idle_wh += idle_w * self.duration_s / 3600
        return self.energy_wh - idle_wh


# --- components: where each part's energy comes from ---------------------------------------------


class _Component:
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


class _RaplPart(_Component):
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


class _GpuPart(_Component):
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


class _CpuEstimate(_Component):
    def __init__(self, model: CpuPowerModel, why: str) -> None:
        note = f"(0.1 + 0.9 x CPU utilization) x {model.tdp_w:g} W ({model.basis}){why}"
        super().__init__(ComponentInfo("cpu", "cpu", "estimate", note))
        self._model = model

    def power_w(self, now, busy, readings):
        return self._model.power_w(busy) if busy is not None else None


class _RamEstimate(_Component):
    def __init__(self, total_gb: float) -> None:
        self._watts = ram_power_w(total_gb)
        super().__init__(ComponentInfo("ram", "ram", "estimate", f"0.375 W/GB x {total_gb:.1f} GB installed = {self._watts:.1f} W"))

    def power_w(self, now, busy, readings):
        return self._watts


# --- window bookkeeping ---------------------------------------------------------------------------


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
class _Edge:
    time_s: float
    unix_time: float
    counters_j: dict[str, float | None]
    power_w: dict[str, float | None]


class _Window:
    def __init__(self, name: str, start: _Edge, pids: dict[int, str], component_names: Sequence[str]) -> None:
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

    def add_edge(self, edge: _Edge) -> None:
        for name, power in edge.power_w.items():
            self.integrals[name].add(edge.time_s, power)
        self.power.add(_sum_known(edge.power_w.values()))

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


def _gpu_summary(gpus: Sequence[GpuReading]) -> tuple[float | None, float | None, float | None]:
    utils = [g.util_percent for g in gpus if g.util_percent is not None]
    mems = [g.mem_used_mb for g in gpus if g.mem_used_mb is not None]
    temps = [g.temp_c for g in gpus if g.temp_c is not None]
    return (sum(utils) / len(utils) if utils else None, sum(mems) if mems else None, max(temps) if temps else None)


def _sum_known(values) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


class _CpuBusy:
    """Share of all CPUs busy since the last call, from /proc/stat; psutil's own
    `cpu_percent()` keeps one global baseline that any other caller would move."""

    def __init__(self) -> None:
        self._last = self._times()

    @staticmethod
    def _times() -> tuple[float, float]:
        times = psutil.cpu_times()
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)  # already in user/nice
        idle = times.idle + getattr(times, "iowait", 0.0)
        return total, total - idle

    def fraction(self) -> float | None:
        total, busy = self._times()
        last_total, last_busy = self._last
        self._last = (total, busy)
        if total <= last_total:
            return None
        return min(max((busy - last_busy) / (total - last_total), 0.0), 1.0)


# --- the sampler ----------------------------------------------------------------------------------


class Sampler:
    """The background thread and the windows it feeds; thread-safe."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, sysfs_root: Path | None = None, gpu_counters: bool = True) -> None:
        """`gpu_counters=False` integrates GPU power even where the energy counter exists
        (bench/gpu_energy_accuracy.py compares the two)."""
        _check_interval(interval_s)
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._nvml = NvmlSession()
        self._gpus = self._nvml.gpus
        self.notes: tuple[str, ...] = ()
        self._components = self._discover(sysfs_root, gpu_counters)
        self._cpu = _CpuBusy()
        self._busy: float | None = None
        self._buffer: deque[Sample] = deque(maxlen=max(1, int(RECENT_BUFFER_S / interval_s)))
        self._windows: dict[str, _Window] = {}
        self._trees: dict[int, ProcessTree] = {}
        self._tree_users: dict[int, int] = {}
        self._process_stats: dict[int, ProcessStats] = {}  # the latest of each tracked tree
        self._slow_due = 0.0
        self._ram_used_mb = 0.0
        self._gpu_mem: dict[int, float | None] | None = None
        self._gpu_mem_at = -GPU_PROCESS_REFRESH_S
        self._stop = threading.Event()
        self._wake = threading.Event()  # cuts the wait short: a new interval, or closing
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="envirollm-sampler", daemon=True)
        self._thread.start()

    def _discover(self, sysfs_root: Path | None, gpu_counters: bool) -> list[_Component]:
        rapl = discover_rapl(sysfs_root)
        notes = [note for note in (rapl.problem, self._nvml.problem) if note]
        components: list[_Component] = [_RaplPart(zone) for zone in rapl.zones]
        kinds = {component_kind(zone.component) for zone in rapl.zones}
        memory_gb = psutil.virtual_memory().total / 1e9
        if "cpu" not in kinds:
            why = "; no readable RAPL counter" + (" (permission denied)" if rapl.problem and "permission" in rapl.problem else "")
            logical = psutil.cpu_count(logical=True) or 1
            components.insert(0, _CpuEstimate(cpu_power_model(cpu_model_name(), logical, is_virtual_machine()), why))
        if "ram" not in kinds:
            components.append(_RamEstimate(memory_gb))
        components.extend(_GpuPart(gpu, gpu_counters) for gpu in self._gpus)
        self.notes = tuple(notes)
        return components

    # public API

    def components(self) -> list[ComponentInfo]:
        return [component.info for component in self._components]

    def begin_window(self, name: str, pids: Sequence[int] = ()) -> None:
        """Open an energy window; `pids` are processes to watch with their children (an LLM server)."""
        with self._lock:
            if name in self._windows:
                raise EnviroLLMError(f"an energy window named {name!r} is already open")
            trees = {pid: self._trees.get(pid) or ProcessTree(pid) for pid in dict.fromkeys(pids)}
            for pid, tree in trees.items():
                self._trees[pid] = tree
                self._tree_users[pid] = self._tree_users.get(pid, 0) + 1
            names = [component.info.name for component in self._components]
            window = _Window(name, self._edge(), {pid: t.process_name for pid, t in trees.items()}, names)
            window.add_processes(self._sample_trees(trees))  # also the baseline of the first CPU %
            self._windows[name] = window

    def end_window(self, name: str) -> Measurement:
        """Close a window and return what it measured."""
        with self._lock:
            window = self._windows.pop(name, None)
            if window is None:
                raise EnviroLLMError(f"no energy window named {name!r} is open")
            measurement = self._measure(window, self._edge())
            for pid in window.processes:
                self._tree_users[pid] -= 1
                if not self._tree_users[pid]:
                    del self._tree_users[pid], self._trees[pid]
                    self._process_stats.pop(pid, None)
            return measurement

    def read_window(self, name: str) -> Measurement:
        """What an open window has measured so far; it stays open."""
        with self._lock:
            window = self._windows.get(name)
            if window is None:
                raise EnviroLLMError(f"no energy window named {name!r} is open")
            return self._measure(window, self._edge())

    def measure_idle(self, duration_s: float) -> IdleBaseline:
        """Idle power per component: sleep `duration_s` inside a window (keep the machine idle meanwhile)."""
        if not duration_s > 0:
            raise UsageError(f"the idle measurement needs a duration above 0 s, not {duration_s}")
        name = f"idle-baseline-{next(_idle_ids)}"
        self.begin_window(name)
        time.sleep(duration_s)
        return IdleBaseline.from_measurement(self.end_window(name))

    def recent(self, seconds: float) -> list[Sample]:
        """The samples of the last `seconds`, oldest first (for live charts)."""
        with self._lock:
            if not self._buffer:
                return []
            since = self._buffer[-1].time_s - seconds
            return [sample for sample in self._buffer if sample.time_s >= since]

    def set_interval(self, interval_s: float) -> None:
        """Sample every `interval_s` from now on (the app's setting); `recent()` keeps its reach in seconds."""
        _check_interval(interval_s)
        with self._lock:
            self.interval_s = interval_s
            self._buffer = deque(self._buffer, maxlen=max(1, int(RECENT_BUFFER_S / interval_s)))
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            self._nvml.close()
            self._gpus = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # internals (the lock is held)

    def _edge(self) -> _Edge:
        if self._busy is None:
            self._busy = self._cpu.fraction()
        before = time.monotonic()
        counters = {c.info.name: c.counter_j() for c in self._components if c.is_counter}
        after = time.monotonic()
        now = (before + after) / 2  # an NVML counter read takes ~4 ms: date the readings at its middle
        power = {c.info.name: c.power_w(now, self._busy, None) for c in self._components}
        return _Edge(now, time.time(), counters, power)

    def _tick(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            now = time.monotonic()
            self._busy = self._cpu.fraction()
            readings = {gpu.index: gpu.read() for gpu in self._gpus}
            sampled = None
            if now >= self._slow_due:
                memory = psutil.virtual_memory()
                self._ram_used_mb = (memory.total - memory.available) / BYTES_PER_MIB
                sampled = self._sample_trees(self._trees) if self._trees else None
                self._slow_due = now + SLOW_SAMPLE_INTERVAL_S
            sample = Sample(
                time_s=now,
                unix_time=time.time(),
                cpu_percent=self._busy * 100 if self._busy is not None else None,
                ram_used_mb=self._ram_used_mb,
                power_w=tuple((c.info.name, c.power_w(now, self._busy, readings)) for c in self._components),
                gpus=tuple(readings.values()),
                processes=tuple(self._process_stats.values()),
            )
            self._buffer.append(sample)
            for window in self._windows.values():
                window.add_tick(sample)
                if sampled is not None:
                    window.add_processes(sampled)

    def _sample_trees(self, trees: dict[int, ProcessTree]) -> dict[int, ProcessStats | None]:
        now = time.monotonic()
        if self._gpus and trees and now - self._gpu_mem_at >= GPU_PROCESS_REFRESH_S:
            self._gpu_mem, self._gpu_mem_at = gpu_mem_by_pid_mb(self._gpus), now
        sampled = {pid: tree.sample(self._gpu_mem) for pid, tree in trees.items()}
        for pid, stats in sampled.items():
            if stats is None:
                self._process_stats.pop(pid, None)
            else:
                self._process_stats[pid] = stats
        return sampled

    def _measure(self, window: _Window, end: _Edge) -> Measurement:
        window.add_edge(end)
        window.add_processes(self._sample_trees({pid: self._trees[pid] for pid in window.processes}))
        duration_s = end.time_s - window.start.time_s
        components = []
        for component in self._components:
            info = component.info
            energy_j: float | None
            source: EnergySource = info.source
            start_j, end_j = window.start.counters_j.get(info.name), end.counters_j.get(info.name)
            if component.is_counter and start_j is not None and end_j is not None:
                energy_j = max(end_j - start_j, 0.0)
            else:
                energy_j = window.integrals[info.name].result_j()
                if component.is_counter:
                    source = component.fallback_source
                if energy_j is None or source == "unmeasured":
                    energy_j, source = None, "unmeasured"
            components.append(ComponentEnergy(info.name, energy_j / 3600 if energy_j is not None else None, source, info.note))
        energy_wh = _sum_known(c.energy_wh for c in components)
        return Measurement(
            name=window.name,
            start_unix_time=window.start.unix_time,
            duration_s=duration_s,
            components=tuple(components),
            energy_wh=energy_wh,
            avg_power_w=energy_wh * 3600 / duration_s if energy_wh is not None and duration_s > 0 else None,
            peak_power_w=window.power.peak,
            cpu_percent_avg=window.cpu.avg,
            cpu_percent_peak=window.cpu.peak,
            ram_used_mb_avg=window.ram.avg,
            ram_used_mb_peak=window.ram.peak,
            gpu_util_percent_avg=window.gpu_util.avg,
            gpu_util_percent_peak=window.gpu_util.peak,
            gpu_mem_used_mb_avg=window.gpu_mem.avg,
            gpu_mem_used_mb_peak=window.gpu_mem.peak,
            gpu_temp_c_avg=window.gpu_temp.avg,
            gpu_temp_c_peak=window.gpu_temp.peak,
            processes=tuple(stat.result() for stat in window.processes.values()),
            trace=tuple(window.trace),
            sample_count=window.ticks,
        )

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - keep sampling: one bad read must not end every later measurement
                self.last_error = f"{type(exc).__name__}: {exc}"
            else:
                self.last_error = None  # a transient failure is over once a reading succeeds again
            next_tick += self.interval_s
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a stalled machine): skip the missed ticks, keep the rhythm
                next_tick, delay = time.monotonic(), 0.0
            if self._wake.wait(delay):
                self._wake.clear()
                next_tick = time.monotonic()


def _check_interval(interval_s: float) -> None:
    if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        raise UsageError(f"the sampling interval must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} s, not {interval_s}")


_idle_ids = itertools.count(1)
_shared: Sampler | None = None
_shared_lock = threading.Lock()


def _saved_interval_s() -> float:
    from envirollm_core.settings import load_settings  # settings never import telemetry: no cycle

    try:
        return load_settings().sampling_interval_s
    except EnviroLLMError:  # a broken settings file is reported where settings are edited, not here
        return DEFAULT_INTERVAL_S


def get_sampler() -> Sampler:
    """The process-wide sampler, started on first use at the saved sampling interval (default 0.1 s)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sampler(interval_s=_saved_interval_s())
            atexit.register(_shared.close)
        return _shared
