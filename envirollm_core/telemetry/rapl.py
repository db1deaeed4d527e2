"""CPU package and DRAM energy from RAPL counters in the powercap sysfs tree.

Intel and AMD both expose `class/powercap/intel-rapl:N` (name `package-N`)
with sub-zones `intel-rapl:N:M` (`core`, `uncore`, `dram`). Core and uncore
are parts of the package, so only packages and their `dram` zones are
counted. Some Intel machines expose the same package again through MMIO as
`intel-rapl-mmio:N` (also named `package-N`); it is counted once, the MSR zone
preferred. `psys` (the whole platform) would double-count everything and is
skipped. Counters are microjoules and wrap at `max_energy_range_uj`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envirollm_core.paths import sysfs_root

POWERCAP_DIR = Path("class") / "powercap"
_ZONE_DIR = re.compile(r"^intel-rapl(?P<mmio>-mmio)?:(?P<package>\d+)(?::(?P<sub>\d+))?$")
_PACKAGE_NAME = re.compile(r"^package-(\d+)$")


@dataclass(frozen=True)
class RaplZone:
    """One counter to read: a package (`cpu:N`) or its DRAM (`dram:N`)."""

    component: str
    path: Path
    max_energy_range_uj: int

    def read_energy_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


@dataclass(frozen=True)
class RaplDiscovery:
    zones: tuple[RaplZone, ...]
    problem: str | None = None  # one line: why some zone that exists cannot be read


class WrappingCounter:
    """Turns a counter that wraps at `max_value` into a running total.

    Read it at least once per wrap period (minutes at full load) so that no
    wrap goes unseen; the sampler reads it every tick.
    """

    def __init__(self, max_value: int) -> None:
        self._max_value = max_value
        self._last_raw: int | None = None
        self._total = 0

    def update(self, raw: int) -> int:
        if self._last_raw is not None:
            delta = raw - self._last_raw
            if delta < 0:
                delta += self._max_value
            self._total += delta
        self._last_raw = raw
        return self._total


def permission_fix(path: Path) -> str:
    return (
        f"cannot read the RAPL energy counter {path} (permission denied; since Linux 5.10 only root may): "
        "allow it with `sudo chmod a+r /sys/class/powercap/intel-rapl*/energy_uj "
        "/sys/class/powercap/intel-rapl*/intel-rapl*/energy_uj` (until reboot) or a udev rule "
        "(see docs/ENERGY.md); CPU energy is estimated until then"
    )


def discover_rapl(root: Path | None = None) -> RaplDiscovery:
    """Every readable package and DRAM counter under `<root>/class/powercap`."""
    powercap = (root or sysfs_root()) / POWERCAP_DIR
    try:
        entries = sorted(powercap.iterdir())
    except OSError:
        return RaplDiscovery(())
    candidates: dict[str, tuple[bool, Path]] = {}  # component -> (is_mmio, path)
    for entry in entries:
        component = _component_of(entry)
        if component is None:
            continue
        is_mmio = entry.name.startswith("intel-rapl-mmio")
        known = candidates.get(component)
        if known is None or (known[0] and not is_mmio):  # the MSR zone wins over its MMIO twin
            candidates[component] = (is_mmio, entry)
    zones: list[RaplZone] = []
    problems: list[str] = []
    for component, (_, path) in sorted(candidates.items(), key=lambda item: _sort_key(item[0])):
        zone, problem = _open_zone(component, path)
        if zone is not None:
            zones.append(zone)
        if problem is not None:
            problems.append(problem)
    return RaplDiscovery(tuple(zones), problems[0] if problems else None)


def _component_of(zone_dir: Path) -> str | None:
    match = _ZONE_DIR.match(zone_dir.name)
    if match is None:
        return None
    name = _read_text(zone_dir / "name")
    if match["sub"] is None:
        package = _PACKAGE_NAME.match(name or "")
        return f"cpu:{package.group(1)}" if package else None  # psys and unknown zones are skipped
    if name == "dram" and match["mmio"] is None:
        return f"dram:{match['package']}"
    return None  # core and uncore are inside the package


def _open_zone(component: str, path: Path) -> tuple[RaplZone | None, str | None]:
    try:
        max_range = int((path / "max_energy_range_uj").read_text().strip())
        zone = RaplZone(component, path, max_range)
        zone.read_energy_uj()
    except PermissionError:
        return None, permission_fix(path / "energy_uj")
    except (OSError, ValueError) as exc:
        return None, f"cannot read the RAPL counter {path} ({exc}); that part is estimated instead"
    return zone, None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _sort_key(component: str) -> tuple[str, int]:
    kind, _, index = component.partition(":")
    return kind, int(index)
