"""The sampler: one background thread per process that watches this machine.

Everything in a process (CLI runs, the app's sessions) shares one `Sampler`
(`get_sampler()`). It samples CPU, RAM, power per component, GPUs and the
tracked processes (these two at most 4 times a second, and processes also at
window edges) every `interval_s` (0.1 s by default) into a bounded ring
buffer for live charts, and feeds every open energy window. It is the local
`EnergyMeter` (`telemetry.measurement`):

    sampler.begin_window("run-1", pids=[server_pid])
    ...
    measurement = sampler.end_window("run-1")

A window reads energy counters (RAPL, NVML) at its two edges, where they are
exact and their cost does not matter; parts without a counter are integrated
from the power read at the edges and every tick between. Where each part's
energy comes from is `telemetry.components`; the window arithmetic is
`telemetry.windows`.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import psutil

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.telemetry.components import discover_components
from envirollm_core.telemetry.measurement import ComponentInfo, IdleBaseline, Measurement
from envirollm_core.telemetry.nvml import NvmlSession, gpu_mem_by_pid_mb
from envirollm_core.telemetry.processes import ProcessStats, ProcessTree
from envirollm_core.telemetry.windows import Edge, Sample, Window
from envirollm_core.units import BYTES_PER_MIB

DEFAULT_INTERVAL_S = 0.1
MIN_INTERVAL_S = 0.01
MAX_INTERVAL_S = 60.0
RECENT_BUFFER_S = 600.0  # how far back `recent()` reaches
SLOW_SAMPLE_INTERVAL_S = 0.25  # RAM and tracked processes move slowly and cost the most to read
GPU_PROCESS_REFRESH_S = 1.0
from envirollm_core.units import BYTES_PER_MIB


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

    description: str | None = None  # this machine; a remote `EnergyMeter` names where it reads

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, sysfs_root: Path | None = None, gpu_counters: bool = True) -> None:
        """`gpu_counters=False` integrates GPU power even where the energy counter exists
        (bench/gpu_energy_accuracy.py compares the two)."""
        _check_interval(interval_s)
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._nvml = NvmlSession()
        self._gpus = self._nvml.gpus
        self._components, self.notes = discover_components(sysfs_root, self._nvml, gpu_counters)
        self._cpu = _CpuBusy()
        self._busy: float | None = None
        self._buffer: deque[Sample] = deque(maxlen=max(1, int(RECENT_BUFFER_S / interval_s)))
        self._windows: dict[str, Window] = {}
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
            window = Window(name, self._edge(), {pid: t.process_name for pid, t in trees.items()}, names)
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

    def settle(self, pending: Sequence[Measurement], tokens: Sequence[int | None]) -> list[Measurement]:
        """This machine's windows are measured whole however short: none is ever pending."""
        return list(pending)

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

    def _edge(self) -> Edge:
        if self._busy is None:
            self._busy = self._cpu.fraction()
        before = time.monotonic()
        counters = {c.info.name: c.counter_j() for c in self._components if c.is_counter}
        after = time.monotonic()
        now = (before + after) / 2  # an NVML counter read takes ~4 ms: date the readings at its middle
        power = {c.info.name: c.power_w(now, self._busy, None) for c in self._components}
        return Edge(now, time.time(), counters, power)

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

    def _measure(self, window: Window, end: Edge) -> Measurement:
        window.add_processes(self._sample_trees({pid: self._trees[pid] for pid in window.processes}))
        return window.measurement(end, self._components)

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
