"""Which machine a run was measured on, as a stable fingerprint of its stored environment.

The same model costs a laptop CPU and a desktop GPU very different energy and
time, so runs of two machines are two configurations. The fingerprint is
what identifies the hardware and does not drift between runs: the CPU model,
the GPU models and the RAM rounded to whole GB (never the OS, the driver or
this tool's version, which change on an update). A run imported from the
original EnviroLLM's CSV has no machine description: it is an "unknown
machine" of the file it came from, so two such files are never pooled.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from typing import Any

UNKNOWN_MACHINE = "unknown machine"
THIS_MACHINE = "this machine"
# Set by the import of an original EnviroLLM CSV (store/exchange.py): the file the runs came from.
SOURCE_FILE_KEY = "source_file"


def machine_key(environment: dict[str, Any] | str | None) -> str:
    """The machine of a stored environment (a dict or its JSON text), as readable text:
    `AMD EPYC 7B13 · NVIDIA H100 80GB HBM3 · 16 GB RAM`, or `unknown machine (file.csv)`."""
    if isinstance(environment, str):
        try:
            environment = json.loads(environment) if environment else {}
        except json.JSONDecodeError:
            environment = {}
    if not isinstance(environment, dict):
        environment = {}
    cpu = environment.get("cpu_model")
    if not isinstance(cpu, str) or not cpu:
        source = environment.get(SOURCE_FILE_KEY)
        return f"{UNKNOWN_MACHINE} ({source})" if source else UNKNOWN_MACHINE
    gpus = environment.get("gpus") or []
    names = sorted(str(gpu.get("name")) for gpu in gpus if isinstance(gpu, dict) and gpu.get("name"))
    parts = [cpu.strip()]
    if names:
        counted = {name: names.count(name) for name in names}
        parts.append(" + ".join(name if count == 1 else f"{count} x {name}" for name, count in counted.items()))
    ram_gb = environment.get("ram_total_gb")
    if isinstance(ram_gb, (int, float)) and ram_gb > 0:
        parts.append(f"{round(ram_gb)} GB RAM")
    return " · ".join(parts)


@lru_cache(maxsize=1)
def this_machine_key() -> str:
    """The fingerprint of the machine this process runs on (asked once: NVML is slow to open)."""
    from envirollm_core.telemetry.system_info import system_info

    return machine_key(dataclasses.asdict(system_info()))


def machine_label(key: str | None) -> str:
    """How a machine is shown: `this machine` for this one, else its fingerprint."""
    if key is None:
        return UNKNOWN_MACHINE
    return THIS_MACHINE if key == this_machine_key() else key
