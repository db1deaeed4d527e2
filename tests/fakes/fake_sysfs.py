"""A fake powercap sysfs tree whose RAPL counters rise at known rates.

Laid out like the kernel's: `class/powercap/intel-rapl:N` named `package-N`
with sub-zones `intel-rapl:N:0` (core), `:1` (uncore), `:2` (dram), each also
nested inside its package, optional MMIO twins `intel-rapl-mmio:N` named
`package-N`, and a `psys` zone. `energy_uj` is microjoules and wraps to 0 at
`max_energy_range_uj`. A writer process rewrites every counter from the
monotonic clock (atomically, so a reader never sees half a number); it is a
process of its own, at a raised priority where allowed, so that a loaded test
machine delays its writes as little as possible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REAL_MAX_RANGE_UJ = 262_143_328_850  # what an Intel package reports


@dataclass
class FakeZone:
    path: Path
    watts: float
    max_energy_range_uj: int
    offset_uj: int = 123_456_789


class FakeRaplTree:
    def __init__(self, root: Path, write_period_s: float = 0.005) -> None:
        self.root = root
        self.powercap = root / "class" / "powercap"
        self.powercap.mkdir(parents=True, exist_ok=True)
        self.zones: list[FakeZone] = []
        self.write_period_s = write_period_s
        self._start = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
        self._writer: subprocess.Popen | None = None

    def add_package(self, index: int, watts: float, dram_watts: float | None = None, *, mmio_twin: bool = False,
                    max_energy_range_uj: int = REAL_MAX_RANGE_UJ, core_watts: float | None = None) -> None:
        package = self._zone(f"intel-rapl:{index}", f"package-{index}", watts, max_energy_range_uj)
        # core and uncore are parts of the package: they rise too, and must never be added to it
        self._zone(f"intel-rapl:{index}:0", "core", core_watts if core_watts is not None else watts * 0.7, max_energy_range_uj, package.path)
        self._zone(f"intel-rapl:{index}:1", "uncore", watts * 0.1, max_energy_range_uj, package.path)
        if dram_watts is not None:
            self._zone(f"intel-rapl:{index}:2", "dram", dram_watts, max_energy_range_uj, package.path)
        if mmio_twin:
            self._zone(f"intel-rapl-mmio:{index}", f"package-{index}", watts, max_energy_range_uj)

    def add_psys(self, watts: float) -> None:
        self._zone("intel-rapl:1", "psys", watts, REAL_MAX_RANGE_UJ)

    def _zone(self, dirname: str, name: str, watts: float, max_range: int, parent: Path | None = None) -> FakeZone:
        path = self.powercap / dirname
        path.mkdir()
        if parent is not None:  # the kernel shows sub-zones both flat and inside their package
            (parent / dirname).symlink_to(path)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_range}\n")
        zone = FakeZone(path, watts, max_range)
        self.zones.append(zone)
        self._write(zone, time.monotonic())
        return zone

    def _write(self, zone: FakeZone, t: float) -> None:
        _write(str(zone.path), zone.offset_uj, zone.watts, zone.max_energy_range_uj, self._start, t)

    def start(self) -> FakeRaplTree:
        spec = {"start": self._start, "period_s": self.write_period_s,
                "zones": [[str(z.path), z.offset_uj, z.watts, z.max_energy_range_uj] for z in self.zones]}
        self._writer = subprocess.Popen([sys.executable, __file__, json.dumps(spec)], stdout=subprocess.PIPE)
        _raise_priority(self._writer.pid)
        assert self._writer.stdout.readline() == b"writing\n"  # the counters are live from here on
        return self

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.terminate()
            self._writer.wait()
            self._writer.stdout.close()

    def zone(self, dirname: str) -> FakeZone:
        return next(z for z in self.zones if z.path.name == dirname)


def _write(path: str, offset_uj: int, watts: float, max_range_uj: int, start: float, t: float) -> None:
    value = (offset_uj + int(watts * (t - start) * 1e6)) % max_range_uj
    scratch = os.path.join(path, ".energy_uj.tmp")
    with open(scratch, "w") as file:
        file.write(f"{value}\n")
    os.replace(scratch, os.path.join(path, "energy_uj"))


def _raise_priority(pid: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, pid, -10)
    except OSError:  # not allowed: run at the normal priority
        pass


def _writer_main(spec: dict) -> None:
    next_write, announced = time.monotonic(), False
    while True:
        now = time.monotonic()
        for path, offset_uj, watts, max_range_uj in spec["zones"]:
            _write(path, offset_uj, watts, max_range_uj, spec["start"], now)
        if not announced:
            print("writing", flush=True)
            announced = True
        next_write += spec["period_s"]
        time.sleep(max(next_write - time.monotonic(), 0.0))


if __name__ == "__main__":
    _writer_main(json.loads(sys.argv[1]))
