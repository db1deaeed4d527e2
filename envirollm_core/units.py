"""Units and their conversions, each named for what it converts, so no factor is written inline twice.

Two families of byte sizes live side by side and are easy to confuse:
- mebibytes (MiB, 2**20 bytes): what the OS and NVML report. Stored names ending in `_mb`
  (`ram_used_mb`, `gpu_mem_used_mb`, `server_peak_rss_mb`, `rss_mb`) hold MiB.
- gigabytes (GB, 10**9 bytes): model sizes, RAM and VRAM in the hardware fit. Names ending in `_gb`
  (`ram_total_gb`, `weights_gb`, `vram_gb`) hold GB.
The stored names are contracts and keep their spelling; `metrics.METRIC` and README say each one's exact unit.
"""

from __future__ import annotations

BYTES_PER_MIB = 2**20
BYTES_PER_GB = 10**9
MIB_PER_GIB = 1024
SECONDS_PER_HOUR = 3600
JOULES_PER_WH = 3600  # a watt for an hour
MWH_PER_WH = 1000  # milliwatt-hours: energy per token reads better in thousandths of a Wh
WH_PER_KWH = 1000
MILLI_PER_UNIT = 1000  # mW per W, mJ per J, g per kg, ms per s
MICRO_PER_UNIT = 10**6  # µJ per J (RAPL counters)
NANO_PER_UNIT = 10**9  # ns per s (Ollama's durations)


def wh_to_mwh(wh: float | None) -> float | None:
    """Wh as mWh; None (unmeasured) stays None."""
    return None if wh is None else wh * MWH_PER_WH


def wh_to_kwh(wh: float) -> float:
    return wh / WH_PER_KWH


def wh_to_j(wh: float | None) -> float | None:
    return None if wh is None else wh * JOULES_PER_WH


def j_to_wh(joules: float | None) -> float | None:
    return None if joules is None else joules / JOULES_PER_WH


def energy_wh(power_w: float, duration_s: float) -> float:
    """The energy of `power_w` held for `duration_s`."""
    return power_w * duration_s / SECONDS_PER_HOUR


def average_power_w(energy_wh: float | None, duration_s: float) -> float | None:
    """The mean power that spends `energy_wh` over `duration_s`; None without energy or duration."""
    return energy_wh * JOULES_PER_WH / duration_s if energy_wh is not None and duration_s > 0 else None


def milli_to_unit(milli: float | None) -> float | None:
    """mW as W, mJ as J, g as kg; None stays None."""
    return None if milli is None else milli / MILLI_PER_UNIT


def micro_to_unit(micro: float) -> float:
    """µJ as J (RAPL's `energy_uj`)."""
    return micro / MICRO_PER_UNIT


def bytes_to_mib(size_bytes: float | None) -> float | None:
    return None if size_bytes is None else size_bytes / BYTES_PER_MIB


def bytes_to_gb(size_bytes: float | None) -> float | None:
    return None if size_bytes is None else size_bytes / BYTES_PER_GB


def mib_to_gb(mib: float | None) -> float | None:
    """MiB (what the OS reports) as GB (10**9 bytes, the unit every `_gb` name holds)."""
    return None if mib is None else mib * BYTES_PER_MIB / BYTES_PER_GB


def mib_to_gib(mib: float | None) -> float | None:
    return None if mib is None else mib / MIB_PER_GIB
