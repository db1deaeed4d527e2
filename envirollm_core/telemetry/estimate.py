"""Power estimates for parts that have no counter; docs/ENERGY.md states the models.

Every value here is labelled `estimate` by the sampler, and each model says
in its `basis` where its numbers come from.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass

from envirollm_core.paths import data_file

CPU_TDP_TABLE = data_file("cpu_tdp.csv")
IDLE_FRACTION = 0.1  # an idle chip draws about a tenth of its TDP (CodeCarbon uses the same floor)
DEFAULT_WATTS_PER_THREAD = 4.0  # CodeCarbon's default for a CPU it does not know
RAM_WATTS_PER_GB = 0.375  # 3 W per 8 GB module

# Marketing words that /proc/cpuinfo adds around the model number.
_NOISE = re.compile(
    r"\((?:r|tm)\)|\bcpu\b|\bprocessor\b|@\s*[\d.]+\s*ghz|\b\d+-core\b|\bwith radeon.*$|\bw/ radeon.*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CpuPowerModel:
    """CPU power as a function of utilization: `tdp_w x (0.1 + 0.9 x busy)`."""

    tdp_w: float
    basis: str  # where the TDP came from, for the component's note

    def power_w(self, busy_fraction: float) -> float:
        busy = min(max(busy_fraction, 0.0), 1.0)
        return self.tdp_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * busy)


def normalize_cpu_name(name: str) -> str:
    """`Intel(R) Core(TM) i7-12700K CPU @ 3.60GHz` -> `intel core i7-12700k`."""
    return " ".join(_NOISE.sub(" ", name).lower().split())


@functools.cache
def tdp_table() -> dict[str, float]:
    """Normalized CPU name -> TDP in watts, from the shipped table."""
    try:
        with CPU_TDP_TABLE.open(newline="", encoding="utf-8") as table:
            return {normalize_cpu_name(row["name"]): float(row["tdp_w"]) for row in csv.DictReader(table)}
    except OSError:
        return {}


def lookup_tdp_w(cpu_model: str) -> tuple[str, float] | None:
    """The table's entry for this CPU: the exact normalized name, else the longest entry
    whose words are all in the model name and that carries its model number."""
    table = tdp_table()
    wanted = normalize_cpu_name(cpu_model)
    if wanted in table:
        return wanted, table[wanted]
    words = set(wanted.split())
    numbers = {word for word in words if any(ch.isdigit() for ch in word)}
    if not numbers:
        return None
    best: list[tuple[str, float]] = []
    for name, tdp in table.items():
        name_words = set(name.split())
        if name_words <= words and name_words & numbers:
            if not best or len(name_words) > len(best[0][0].split()):
                best = [(name, tdp)]
            elif len(name_words) == len(best[0][0].split()):
                best.append((name, tdp))
    if len({tdp for _, tdp in best}) == 1:  # ambiguous matches with different TDPs: no match
        return best[0]
    return None


def cpu_power_model(cpu_model: str, logical_cpus: int, virtual_machine: bool) -> CpuPowerModel:
    """The TDP to estimate from: the table's, else 4 W per logical CPU.

    A virtual machine sees a slice of a host chip whose TDP covers every core,
    so there the per-thread default is used even for a known model.
    """
    default_w = DEFAULT_WATTS_PER_THREAD * logical_cpus
    default_basis = f"{DEFAULT_WATTS_PER_THREAD:g} W x {logical_cpus} logical CPUs"
    if virtual_machine:
        return CpuPowerModel(default_w, f"{default_basis}, as this is a virtual machine")
    match = lookup_tdp_w(cpu_model)
    if match is None:
        return CpuPowerModel(default_w, f"{default_basis}, as the CPU is not in data/cpu_tdp.csv")
    return CpuPowerModel(match[1], f"the TDP of '{match[0]}' in data/cpu_tdp.csv")


def ram_power_w(total_gb: float) -> float:
    return RAM_WATTS_PER_GB * total_gb


def gpu_power_estimate_w(power_limit_w: float, util_percent: float) -> float:
    """For a GPU that reports no power: the same idle-floor line up to its power limit."""
    busy = min(max(util_percent / 100, 0.0), 1.0)
    return power_limit_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * busy)
