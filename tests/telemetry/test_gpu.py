import os
import time

import pytest

from envirollm_core.telemetry.nvml import NvmlSession
from envirollm_core.telemetry.processes import process_tree_stats
from envirollm_core.telemetry.system_info import nvidia_gpus
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import BurstProfile, FakeGpu

# bursts of 0.35 s at 400 W and pauses of 0.25 s at 80 W, like a bursty inference load
BURSTS = [(0.35, 400.0), (0.25, 80.0)]


def _run_window(sampler, seconds: float):
    sampler.begin_window("w")
    start = time.monotonic()
    time.sleep(seconds)
    m = sampler.end_window("w")
    return m, start, start + m.duration_s


def test_no_driver_means_no_gpu_component_and_nothing_fails(sysfs_root, no_gpu, make_sampler):
    sampler = make_sampler()
    assert all(c.kind != "gpu" for c in sampler.components())
    assert any("NVML Shared Library Not Found" in note for note in sampler.notes)
    assert nvidia_gpus() == ()
    m, *_ = _run_window(sampler, 0.3)
    assert m.gpu_util_percent_avg is None


def test_energy_counter_is_read_at_the_edges(sysfs_root, monkeypatch, make_sampler):
    gpu = FakeGpu(profile=BurstProfile(BURSTS))
    fake = fake_pynvml.install(monkeypatch, [gpu])
    sampler = make_sampler(interval_s=0.05)
    (info,) = [c for c in sampler.components() if c.kind == "gpu"]
    assert (info.name, info.source) == ("gpu:0", "counter")
    m, start, end = _run_window(sampler, 1.2)
    truth_j = gpu.profile.energy_j(end) - gpu.profile.energy_j(start)
    assert m.component("gpu:0").source == "counter"
    assert m.component("gpu:0").energy_wh * 3600 == pytest.approx(truth_j, rel=0.02)
    assert m.gpu_util_percent_avg == 50.0 and m.gpu_temp_c_peak == 40.0 and m.gpu_mem_used_mb_peak == 1024.0
    assert max(p.gpu_power_w for p in m.trace) == 400.0 and min(p.gpu_power_w for p in m.trace) == 80.0
    sampler.close()
    assert fake.initialised() == 0  # NVML shut down again


def test_without_counter_instant_power_is_integrated(sysfs_root, monkeypatch, make_sampler):
    gpu = FakeGpu(profile=BurstProfile(BURSTS), energy_counter=False)
    fake_pynvml.install(monkeypatch, [gpu])
    sampler = make_sampler(interval_s=0.02)
    m, start, end = _run_window(sampler, 1.5)
    truth_j = gpu.profile.energy_j(end) - gpu.profile.energy_j(start)
    assert m.component("gpu:0").source == "power-integral"
    assert m.component("gpu:0").energy_wh * 3600 == pytest.approx(truth_j, rel=0.06)


def test_instant_field_not_supported_falls_back_to_average_power(sysfs_root, monkeypatch, make_sampler):
    gpu = FakeGpu(profile=BurstProfile([(1.0, 150.0)]), energy_counter=False, instant_power=False)
    fake_pynvml.install(monkeypatch, [gpu])
    sampler = make_sampler()
    (info,) = [c for c in sampler.components() if c.kind == "gpu"]
    assert info.source == "average-power" and "1 s average" in info.note
    m, *_ = _run_window(sampler, 0.5)
    assert m.component("gpu:0").source == "average-power"
    assert m.component("gpu:0").energy_wh * 3600 == pytest.approx(150.0 * m.duration_s, rel=0.03)


def test_power_not_supported_is_estimated_from_utilization_and_limit(sysfs_root, monkeypatch, make_sampler):
    gpu = FakeGpu(energy_counter=False, instant_power=False, power_usage=False, power_limit_w=300.0, util_percent=50.0)
    fake_pynvml.install(monkeypatch, [gpu])
    sampler = make_sampler()
    m, *_ = _run_window(sampler, 0.5)
    assert m.component("gpu:0").source == "estimate"
    assert m.component("gpu:0").energy_wh * 3600 == pytest.approx(300.0 * (0.1 + 0.9 * 0.5) * m.duration_s, rel=0.03)


def test_a_gpu_that_reports_nothing_is_unmeasured_not_zero(sysfs_root, monkeypatch, make_sampler):
    gpu = FakeGpu(energy_counter=False, instant_power=False, power_usage=False, power_limit_w=None,
                  util_percent=None, temp_c=None)
    fake_pynvml.install(monkeypatch, [gpu])
    sampler = make_sampler()
    m, *_ = _run_window(sampler, 0.3)
    gpu_energy = m.component("gpu:0")
    assert gpu_energy.source == "unmeasured" and gpu_energy.energy_wh is None
    assert m.energy_wh == pytest.approx(sum(c.energy_wh for c in m.components if c.energy_wh is not None))
    assert m.gpu_util_percent_avg is None and m.gpu_temp_c_peak is None


def test_two_gpus_are_two_components_with_their_own_sources(sysfs_root, monkeypatch, make_sampler):
    first = FakeGpu(name="NVIDIA A100", profile=BurstProfile([(1.0, 200.0)]))
    second = FakeGpu(name="NVIDIA T4", profile=BurstProfile([(1.0, 50.0)]), energy_counter=False, util_percent=20.0, temp_c=60.0)
    fake_pynvml.install(monkeypatch, [first, second])
    sampler = make_sampler()
    assert [(c.name, c.source) for c in sampler.components() if c.kind == "gpu"] == [("gpu:0", "counter"), ("gpu:1", "power-integral")]
    m, *_ = _run_window(sampler, 0.6)
    assert m.component("gpu:0").energy_wh * 3600 == pytest.approx(200.0 * m.duration_s, rel=0.03)
    assert m.component("gpu:1").energy_wh * 3600 == pytest.approx(50.0 * m.duration_s, rel=0.03)
    assert m.gpu_util_percent_avg == pytest.approx(35.0)  # mean over GPUs
    assert m.gpu_mem_used_mb_peak == 2048.0  # summed
    assert m.gpu_temp_c_peak == 60.0  # hottest
    assert [p.gpu_power_w for p in m.trace] == pytest.approx([250.0] * len(m.trace))
    assert [g.name for g in nvidia_gpus()] == ["NVIDIA A100", "NVIDIA T4"]


def test_process_gpu_memory_comes_from_the_running_process_lists(sysfs_root, monkeypatch, make_sampler):
    me = os.getpid()
    gpus = [FakeGpu(processes_mb={me: 1500.0, 999_999: 10.0}), FakeGpu(processes_mb={me: 500.0})]
    fake_pynvml.install(monkeypatch, gpus)
    assert process_tree_stats(me, sample_s=0.05).gpu_mem_mb == pytest.approx(2000.0)
    sampler = make_sampler()
    sampler.begin_window("w", pids=[me])
    time.sleep(0.3)
    (stats,) = sampler.end_window("w").processes
    assert stats.gpu_mem_mb_peak == pytest.approx(2000.0)


def test_session_reports_why_there_is_no_gpu(monkeypatch):
    fake_pynvml.install(monkeypatch, [])
    with NvmlSession() as session:
        assert session.gpus == () and "no device" in session.problem


def _tree_gpu_mem_now(monkeypatch, make_sampler, gpus: list[FakeGpu]) -> tuple[float | None, float | None]:
    """Our own process's GPU memory, from `process_tree_stats` and from a sampler window."""
    fake_pynvml.install(monkeypatch, gpus)
    me = os.getpid()
    once = process_tree_stats(me, sample_s=0.05).gpu_mem_mb
    sampler = make_sampler()
    sampler.begin_window("w", pids=[me])
    time.sleep(0.3)
    (stats,) = sampler.end_window("w").processes
    return once, stats.gpu_mem_mb_peak


def test_process_gpu_memory_is_unknown_when_nvml_cannot_list_processes(sysfs_root, monkeypatch, make_sampler):
    listed = FakeGpu(processes_mb={os.getpid(): 1500.0})
    unlisted = FakeGpu(processes_mb={os.getpid(): 500.0}, process_listing=False)
    assert _tree_gpu_mem_now(monkeypatch, make_sampler, [listed, unlisted]) == (None, None)  # unknown, not 1500 or 0


def test_process_gpu_memory_is_zero_only_when_listed_and_absent(sysfs_root, monkeypatch, make_sampler):
    assert _tree_gpu_mem_now(monkeypatch, make_sampler, [FakeGpu(processes_mb={999_999: 10.0})]) == (0.0, 0.0)


def test_a_listed_process_without_its_memory_is_unknown(sysfs_root, monkeypatch, make_sampler):
    gpus = [FakeGpu(processes_mb={os.getpid(): 1500.0}), FakeGpu(processes_mb={os.getpid(): None})]  # WDDM-style
    assert _tree_gpu_mem_now(monkeypatch, make_sampler, gpus) == (None, None)


def test_gpu_total_memory_nvml_does_not_report_is_unknown(monkeypatch):
    fake_pynvml.install(monkeypatch, [FakeGpu(memory_info=False)])
    (gpu,) = nvidia_gpus()
    assert gpu.memory_total_mb is None  # not 0 MB
