"""A fake powercap sysfs tree whose RAPL counters rise at known rates.

Laid out like the kernel's: `class/powercap/intel-rapl:N` named `package-N`
with sub-zones `intel-rapl:N:0` (core), `:1` (uncore), `:2` (dram), each also
nested inside its package, optional MMIO twins `intel-rapl-mmio:N` named
`package-N`, and a `psys` zone. `energy_uj` is microjoules and wraps to 0 at
`max_energy_range_uj`. A writer thread rewrites every counter from wall-clock
time (atomically, so a reader never sees half a number).
"""

from __future__ import annotations

import os
import threading
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
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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

    def energy_uj(self, zone: FakeZone, t: float) -> int:
        return (zone.offset_uj + int(zone.watts * (t - self._start) * 1e6)) % zone.max_energy_range_uj

    def _write(self, zone: FakeZone, t: float) -> None:
        target = zone.path / "energy_uj"
        scratch = zone.path / ".energy_uj.tmp"
        scratch.write_text(f"{self.energy_uj(zone, t)}\n")
        os.replace(scratch, target)

    def _run(self) -> None:
        while not self._stop.wait(self.write_period_s):
            now = time.monotonic()
            for zone in self.zones:
                self._write(zone, now)

    def start(self) -> FakeRaplTree:
        self._thread = threading.Thread(target=self._run, name="fake-rapl-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def zone(self, dirname: str) -> FakeZone:
        return next(z for z in self.zones if z.path.name == dirname)
