import time

import pytest

from envirollm_core.telemetry.rapl import WrappingCounter, discover_rapl
from envirollm_core.telemetry.measurement import component_kind


def test_no_powercap_tree_means_no_zones_and_no_problem(sysfs_root):
    found = discover_rapl()
    assert found.zones == () and found.problem is None


def test_one_package_without_dram_gives_one_zone(rapl_tree):
    rapl_tree.add_package(0, watts=20.0)
    found = discover_rapl()
    assert [z.component for z in found.zones] == ["cpu:0"]
    assert found.zones[0].path.name == "intel-rapl:0"
    assert found.problem is None


def test_two_packages_with_dram_skip_core_uncore_and_psys(rapl_tree):
    rapl_tree.add_package(0, watts=20.0, dram_watts=3.0)
    rapl_tree.add_package(1, watts=30.0, dram_watts=4.0)
    rapl_tree._zone("intel-rapl:2", "psys", 80.0, 10**12)  # the platform: would count everything twice
    found = discover_rapl()
    assert [z.component for z in found.zones] == ["cpu:0", "cpu:1", "dram:0", "dram:1"]
    assert {z.path.name for z in found.zones} == {"intel-rapl:0", "intel-rapl:1", "intel-rapl:0:2", "intel-rapl:1:2"}
    assert [component_kind(z.component) for z in found.zones] == ["cpu", "cpu", "ram", "ram"]


def test_mmio_twin_of_a_package_is_counted_once_preferring_msr(rapl_tree):
    rapl_tree.add_package(0, watts=20.0, mmio_twin=True)
    found = discover_rapl()
    assert [(z.component, z.path.name) for z in found.zones] == [("cpu:0", "intel-rapl:0")]


def test_mmio_zone_alone_is_used(rapl_tree):
    rapl_tree._zone("intel-rapl-mmio:0", "package-0", 15.0, 10**9)
    found = discover_rapl()
    assert [(z.component, z.path.name) for z in found.zones] == [("cpu:0", "intel-rapl-mmio:0")]


def test_zone_reads_microjoules_and_its_range(rapl_tree):
    rapl_tree.add_package(0, watts=10.0, max_energy_range_uj=5_000_000_000)
    zone = discover_rapl().zones[0]
    assert zone.max_energy_range_uj == 5_000_000_000
    first = zone.read_energy_uj()
    time.sleep(0.1)
    rapl_tree._write(rapl_tree.zone("intel-rapl:0"), time.monotonic())
    assert 0.5e6 < zone.read_energy_uj() - first < 1.5e6  # 10 W for ~0.1 s is ~1 J


def test_unreadable_counter_is_a_problem_not_an_exception(rapl_tree):
    rapl_tree.add_package(0, watts=10.0)
    (rapl_tree.zone("intel-rapl:0").path / "energy_uj").write_text("not a number\n")
    found = discover_rapl()
    assert found.zones == ()
    assert "intel-rapl:0" in found.problem and "\n" not in found.problem


def test_wrapping_counter_unwraps_each_wrap():
    counter = WrappingCounter(max_value=1000)
    assert counter.update(900) == 0
    assert counter.update(950) == 50
    assert counter.update(30) == 130  # wrapped: 950 -> 1000 -> 30
    assert counter.update(990) == 1090
    assert counter.update(10) == 1110


@pytest.mark.parametrize("rate_per_read", [1, 999])
def test_wrapping_counter_matches_a_true_total(rate_per_read):
    max_value, true_total, raw = 1000, 0, 700
    counter = WrappingCounter(max_value)
    counter.update(raw)
    for _ in range(500):
        true_total += rate_per_read
        raw = (raw + rate_per_read) % max_value
        assert counter.update(raw) == true_total
