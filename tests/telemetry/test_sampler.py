import itertools
import subprocess
import sys
import threading
import time

import psutil
import pytest

from envirollm_core.errors import EnviroLLMError, UsageError
from envirollm_core.telemetry import sampler as sampler_module
from envirollm_core.telemetry import windows as windows_module
from envirollm_core.telemetry.measurement import EnergyMeter, IdleBaseline, Measurement
from envirollm_core.telemetry.sampler import get_sampler
from tests.fakes.processes import kill_tree, tree_cpu_s


def _window(sampler, seconds: float, name: str = "w", pids=()) -> Measurement:
    sampler.begin_window(name, pids=pids)
    time.sleep(seconds)
    return sampler.end_window(name)


def _energy_j(measurement: Measurement, component: str) -> float:
    return measurement.component(component).energy_wh * 3600


def test_without_rapl_or_gpu_cpu_and_ram_are_estimates(sysfs_root, no_gpu, make_sampler):
    sampler = make_sampler()
    assert [(c.name, c.kind, c.source) for c in sampler.components()] == [("cpu", "cpu", "estimate"), ("ram", "ram", "estimate")]
    assert any("NVML" in note for note in sampler.notes)
    m = _window(sampler, 0.5)
    assert [(c.component, c.source) for c in m.components] == [("cpu", "estimate"), ("ram", "estimate")]
    assert m.energy_wh == pytest.approx(sum(c.energy_wh for c in m.components))
    assert m.gpu_util_percent_avg is None and m.gpu_temp_c_peak is None
    ram_w = _energy_j(m, "ram") / m.duration_s
    assert ram_w == pytest.approx(0.375 * psutil.virtual_memory().total / 1e9, rel=0.01)


class CounterReads:
    """The fake counters read by the test itself just outside and just inside a window's edges.

    The fake's writer is a process that a loaded machine can delay, so "watts x
    duration" is only roughly what the files show; but the sampler's counter
    reads fall between these reads, so its energy must lie between the inner
    and the outer rise, exactly, however late the writes were.
    """

    def __init__(self, tree, dirnames: list[str]) -> None:
        self.tree, self.dirnames = tree, dirnames
        self.reads: list[dict[str, int]] = []
        self.times: list[float] = []

    def read(self) -> None:
        self.times.append(time.monotonic())
        self.reads.append({d: int((self.tree.zone(d).path / "energy_uj").read_text()) for d in self.dirnames})

    def window(self, sampler, seconds: float, name: str = "w") -> Measurement:
        self.read()
        sampler.begin_window(name)
        self.read()
        time.sleep(seconds)
        self.read()
        m = sampler.end_window(name)
        self.read()
        return m

    def rise_j(self, dirname: str, first: int, last: int) -> float:
        zone = self.tree.zone(dirname)
        raw = self.reads[last][dirname] - self.reads[first][dirname]
        # whole wraps in between, from the known rate (the writes lag by far less than a wrap period)
        expected_uj = zone.watts * (self.times[last] - self.times[first]) * 1e6
        wraps = round((expected_uj - raw) / zone.max_energy_range_uj)
        return (raw + wraps * zone.max_energy_range_uj) / 1e6

    def assert_between(self, m: Measurement, component: str, dirname: str) -> None:
        inner, outer = self.rise_j(dirname, 1, 2), self.rise_j(dirname, 0, 3)
        assert inner - 1e-6 <= _energy_j(m, component) <= outer + 1e-6, (component, inner, outer)


def test_package_counter_energy_is_the_counters_rise(rapl_tree, no_gpu, make_sampler):
    rapl_tree.add_package(0, watts=42.0)
    rapl_tree.start()
    sampler = make_sampler()
    assert [(c.name, c.source) for c in sampler.components()] == [("cpu:0", "counter"), ("ram", "estimate")]
    reads = CounterReads(rapl_tree, ["intel-rapl:0"])
    m = reads.window(sampler, 1.0)
    assert m.component("cpu:0").source == "counter"
    reads.assert_between(m, "cpu:0", "intel-rapl:0")
    # per-tick power comes from counter differences (too noisy to compare when the fake's writes run late)
    assert all(p.cpu_power_w is not None and p.cpu_power_w >= 0 for p in m.trace[1:])
    assert m.avg_power_w == pytest.approx(m.energy_j / m.duration_s)
    assert m.peak_power_w >= m.avg_power_w


def test_two_packages_and_their_dram_never_add_core_or_mmio_twins(rapl_tree, no_gpu, make_sampler):
    rapl_tree.add_package(0, watts=20.0, dram_watts=3.0, mmio_twin=True)
    rapl_tree.add_package(1, watts=30.0, dram_watts=5.0, mmio_twin=True)
    rapl_tree.start()
    sampler = make_sampler()
    assert [c.name for c in sampler.components()] == ["cpu:0", "cpu:1", "dram:0", "dram:1"]
    zones = {"cpu:0": "intel-rapl:0", "cpu:1": "intel-rapl:1", "dram:0": "intel-rapl:0:2", "dram:1": "intel-rapl:1:2"}
    reads = CounterReads(rapl_tree, list(zones.values()))
    m = reads.window(sampler, 1.0)
    for component, dirname in zones.items():
        reads.assert_between(m, component, dirname)
    assert m.energy_j == pytest.approx(sum(_energy_j(m, c) for c in zones))  # no core, uncore or MMIO twin on top


def test_counter_wraps_inside_a_window(rapl_tree, no_gpu, make_sampler):
    # 50 W against a 20 J range: the counter wraps about every 0.4 s, three times in this window
    rapl_tree.add_package(0, watts=50.0, max_energy_range_uj=20_000_000)
    rapl_tree.start()
    sampler = make_sampler(interval_s=0.05)
    reads = CounterReads(rapl_tree, ["intel-rapl:0"])
    m = reads.window(sampler, 1.3)
    assert reads.rise_j("intel-rapl:0", 1, 2) > 40  # more than two wraps' worth
    reads.assert_between(m, "cpu:0", "intel-rapl:0")


def test_windows_overlap_and_nest(rapl_tree, no_gpu, make_sampler):
    rapl_tree.add_package(0, watts=10.0)
    rapl_tree.start()
    sampler = make_sampler()
    reads = CounterReads(rapl_tree, ["intel-rapl:0"])
    reads.read()
    sampler.begin_window("outer")
    reads.read()
    time.sleep(0.3)
    inner = reads.window(sampler, 0.4, name="inner")  # reads 2..5
    time.sleep(0.3)
    reads.read()
    outer = sampler.end_window("outer")
    reads.read()
    assert inner.duration_s < outer.duration_s
    inner_rise = (reads.rise_j("intel-rapl:0", 3, 4), reads.rise_j("intel-rapl:0", 2, 5))
    outer_rise = (reads.rise_j("intel-rapl:0", 1, 6), reads.rise_j("intel-rapl:0", 0, 7))
    assert inner_rise[0] - 1e-6 <= _energy_j(inner, "cpu:0") <= inner_rise[1] + 1e-6
    assert outer_rise[0] - 1e-6 <= _energy_j(outer, "cpu:0") <= outer_rise[1] + 1e-6


def test_net_energy_subtracts_idle_power_times_duration(rapl_tree, no_gpu, make_sampler):
    rapl_tree.add_package(0, watts=10.0)
    rapl_tree.start()
    sampler = make_sampler()
    baseline = sampler.measure_idle(0.5)
    assert isinstance(baseline, IdleBaseline)
    assert [name for name, _ in baseline.power_w] == ["cpu:0", "ram"]
    assert baseline.component_power_w("cpu:0") > 0
    m = _window(sampler, 0.6)
    net = m.net_energy_wh(baseline)
    idle_wh = sum(p for _, p in baseline.power_w) * m.duration_s / 3600
    assert net == pytest.approx(m.energy_wh - idle_wh)
    # RAM is estimated at a constant power: its idle and its load cancel exactly
    assert m.component("ram").energy_wh == pytest.approx(baseline.component_power_w("ram") * m.duration_s / 3600)


def test_net_energy_is_none_when_nothing_was_measured():
    empty = Measurement("x", 0.0, 1.0, (), None, None, None, *([None] * 10), (), (), 0)
    assert empty.net_energy_wh(IdleBaseline(1.0, (("cpu", 5.0),))) is None


def test_unknown_and_duplicate_windows_are_library_errors(sysfs_root, no_gpu, make_sampler):
    sampler = make_sampler()
    with pytest.raises(EnviroLLMError, match="no energy window named 'nope'"):
        sampler.end_window("nope")
    sampler.begin_window("a")
    with pytest.raises(EnviroLLMError, match="already open"):
        sampler.begin_window("a")
    sampler.end_window("a")
    with pytest.raises(EnviroLLMError):
        sampler.read_window("a")


def test_bad_interval_and_idle_duration_are_usage_errors(sysfs_root, no_gpu, make_sampler):
    with pytest.raises(UsageError):
        sampler_module.Sampler(interval_s=0)
    with pytest.raises(UsageError):
        make_sampler().measure_idle(0)


def test_window_on_a_missing_pid_is_a_usage_error_and_opens_nothing(sysfs_root, no_gpu, make_sampler):
    sampler = make_sampler()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(UsageError, match=str(dead.pid)):
        sampler.begin_window("w", pids=[dead.pid])
    sampler.begin_window("w")  # the name is still free
    sampler.end_window("w")


def _wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_last_error_clears_once_a_reading_succeeds_again(sysfs_root, no_gpu, make_sampler, monkeypatch):
    sampler = make_sampler(interval_s=0.02)
    real_fraction, recovered = sampler._cpu.fraction, threading.Event()

    def fraction_failing_until_recovered():
        if not recovered.is_set():
            raise OSError("transient /proc read failure")
        return real_fraction()

    monkeypatch.setattr(sampler._cpu, "fraction", fraction_failing_until_recovered)
    assert _wait_for(lambda: "transient" in str(sampler.last_error))
    recovered.set()
    assert _wait_for(lambda: sampler.last_error is None)  # the Monitor page stops warning


def test_recent_is_a_bounded_thread_safe_snapshot(sysfs_root, no_gpu, make_sampler, monkeypatch):
    monkeypatch.setattr(sampler_module, "RECENT_BUFFER_S", 0.5)
    sampler = make_sampler(interval_s=0.02)
    time.sleep(1.0)
    everything = sampler.recent(3600)
    assert 10 <= len(everything) <= 0.5 / 0.02 + 1
    assert all(a.time_s < b.time_s for a, b in itertools.pairwise(everything))
    last_quarter = sampler.recent(0.25)
    assert 0 < len(last_quarter) < len(everything)
    errors = []

    def reader():
        try:
            for _ in range(200):
                sampler.recent(1.0)
        except Exception as exc:  # noqa: BLE001 - any failure of a concurrent reader fails the test
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_long_window_trace_stays_bounded_and_spans_the_window(sysfs_root, no_gpu, make_sampler, monkeypatch):
    monkeypatch.setattr(windows_module, "MAX_TRACE_POINTS", 8)
    sampler = make_sampler(interval_s=0.02)
    m = _window(sampler, 1.0)
    assert m.sample_count > 30
    assert len(m.trace) <= 8
    assert m.trace[0].t_s < 0.1 and m.trace[-1].t_s > 0.6
    assert all(a.t_s < b.t_s for a, b in itertools.pairwise(m.trace))


def test_tracked_process_tree_stats(sysfs_root, no_gpu, make_sampler):
    busy = "import subprocess, sys, time\n" \
           "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n" \
           "end = time.time() + 30\n" \
           "while time.time() < end: pass\n"
    parent = subprocess.Popen([sys.executable, "-c", busy])
    try:
        while len(psutil.Process(parent.pid).children()) < 1:
            time.sleep(0.05)
        sampler = make_sampler(interval_s=0.05)
        cpu_before_s, wall_before_s = tree_cpu_s(parent.pid), time.monotonic()
        m = _window(sampler, 1.5, pids=[parent.pid])
        busy_percent = (tree_cpu_s(parent.pid) - cpu_before_s) / (time.monotonic() - wall_before_s) * 100
    finally:
        kill_tree(parent)
    (stats,) = m.processes
    assert stats.pid == parent.pid and not stats.exited
    assert busy_percent > 5  # it did run (however loaded the machine is)
    assert stats.cpu_percent_avg == pytest.approx(busy_percent, rel=0.25, abs=3)
    assert stats.rss_mb_peak > 10  # two Python interpreters
    assert stats.threads_peak >= 2  # parent and child together
    assert stats.gpu_mem_mb_peak is None  # no GPU: unknown, not 0


def test_tracked_process_that_exits_is_marked(sysfs_root, no_gpu, make_sampler):
    short = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.4)"])
    sampler = make_sampler()
    sampler.begin_window("w", pids=[short.pid])
    short.wait()
    time.sleep(0.3)
    (stats,) = sampler.end_window("w").processes
    assert stats.exited and stats.rss_mb_peak > 0


def test_interval_can_change_while_running(sysfs_root, no_gpu, make_sampler):
    sampler = make_sampler(interval_s=10.0)
    time.sleep(0.2)
    sampler.set_interval(0.02)  # takes effect at once, not after the 10 s wait
    time.sleep(0.6)
    assert len(sampler.recent(0.5)) >= 10
    with pytest.raises(UsageError):
        sampler.set_interval(0.0)
    assert sampler.interval_s == 0.02


def test_get_sampler_is_shared_and_running():
    first = get_sampler()
    assert first is get_sampler()
    assert first.interval_s == 0.1
    time.sleep(0.25)
    assert first.recent(1.0)


def test_this_machine_is_an_energy_meter_whose_windows_are_never_pending(sysfs_root, no_gpu, make_sampler):
    sampler = make_sampler()
    assert isinstance(sampler, EnergyMeter) and sampler.description is None  # the runner names no remote source
    measurement = _window(sampler, 0.1)
    assert not measurement.pending and measurement.energy_wh is not None
    assert sampler.settle([measurement], [5]) == [measurement]  # measured whole, however short
