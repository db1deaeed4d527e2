"""What an energy meter measures, and the interface every meter has.

A meter measures energy over named windows, Zeus-style:

    meter.begin_window("run-1", pids=[server_pid])
    ...
    measurement = meter.end_window("run-1")

Two meters have this interface: this machine's `telemetry.sampler.Sampler`
and a remote machine's counters in Prometheus
(`telemetry.prometheus.PrometheusMeter`); `telemetry.meters` picks one.
Each component's energy carries its source: `counter`, `power-integral`,
`average-power`, `estimate`, `unmeasured` or `prometheus:*` (docs/ENERGY.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from envirollm_core.records import ComponentEnergy, EnergySource, TracePoint

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
        return sum_known(power for _, power in self.power_w)


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
    # A remote meter's window shorter than its scrape interval allows: `EnergyMeter.settle` measures it with others.
    pending: bool = False

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


def sum_known(values: Iterable[float | None]) -> float | None:
    """The sum of the values that are known; None when none is (unmeasured is not 0)."""
    known = [value for value in values if value is not None]
    return sum(known) if known else None


@runtime_checkable
class EnergyMeter(Protocol):
    """What the runner, the load sweep and the judge measure energy with."""

    @property
    def description(self) -> str | None:
        """Where a remote meter reads (shown and stored with the runs); None for this machine."""
        ...

    def components(self) -> list[ComponentInfo]: ...

    def begin_window(self, name: str, pids: Sequence[int] = ()) -> None:
        """Open a window; `pids` are processes to watch with their children (an LLM server)."""
        ...

    def end_window(self, name: str) -> Measurement:
        """Close the window and return what it measured."""
        ...

    def measure_idle(self, duration_s: float) -> IdleBaseline:
        """Idle power per component over `duration_s` (the machine kept idle meanwhile)."""
        ...

    def settle(self, pending: Sequence[Measurement], tokens: Sequence[int | None]) -> list[Measurement]:
        """Measurements of windows too short to measure alone (`Measurement.pending`), each given its share
        of their span's energy by its tokens."""
        ...
