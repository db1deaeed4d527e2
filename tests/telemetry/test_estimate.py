import pytest

from envirollm_core.telemetry.estimate import (
    CpuPowerModel,
    cpu_power_model,
    gpu_power_estimate_w,
    lookup_tdp_w,
    normalize_cpu_name,
    ram_power_w,
)


@pytest.mark.parametrize(("raw", "normalized"), [
    ("Intel(R) Core(TM) i7-12700K CPU @ 3.60GHz", "intel core i7-12700k"),
    ("AMD Ryzen 9 7950X 16-Core Processor", "amd ryzen 9 7950x"),
    ("AMD Ryzen 7 7840U w/ Radeon 780M Graphics", "amd ryzen 7 7840u"),
    ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "intel xeon platinum 8375c"),
])
def test_cpu_names_lose_their_marketing_noise(raw, normalized):
    assert normalize_cpu_name(raw) == normalized


@pytest.mark.parametrize(("cpu", "tdp_w"), [
    ("Intel(R) Core(TM) i7-12700K CPU @ 3.60GHz", 190.0),
    ("AMD Ryzen 9 7950X 16-Core Processor", 170.0),
    ("AMD EPYC 7763 64-Core Processor", 280.0),
    ("Apple M2 Pro", 35.0),
    ("Intel(R) Core(TM) Ultra 7 155H", 28.0),
])
def test_known_cpus_are_found_in_the_shipped_table(cpu, tdp_w):
    assert lookup_tdp_w(cpu)[1] == tdp_w


@pytest.mark.parametrize("cpu", ["AMD EPYC", "QEMU Virtual CPU version 2.5+", "unknown CPU", "Intel Core i9-99999Z"])
def test_unknown_cpus_have_no_tdp(cpu):
    assert lookup_tdp_w(cpu) is None


def test_power_model_rises_from_a_tenth_of_tdp_to_tdp():
    model = CpuPowerModel(100.0, "test")
    assert model.power_w(0.0) == pytest.approx(10.0)
    assert model.power_w(0.5) == pytest.approx(55.0)
    assert model.power_w(1.0) == pytest.approx(100.0)
    assert model.power_w(1.7) == pytest.approx(100.0)  # clamped


def test_tdp_falls_back_to_4_w_per_thread_and_says_why():
    assert cpu_power_model("AMD Ryzen 9 7950X 16-Core Processor", 32, virtual_machine=False).tdp_w == 170.0
    unknown = cpu_power_model("Some Future CPU", 8, virtual_machine=False)
    assert unknown.tdp_w == 32.0 and "not in data/cpu_tdp.csv" in unknown.basis
    guest = cpu_power_model("AMD EPYC 7763 64-Core Processor", 2, virtual_machine=True)
    assert guest.tdp_w == 8.0 and "virtual machine" in guest.basis


def test_ram_and_gpu_estimates():
    assert ram_power_w(16.0) == pytest.approx(6.0)
    assert gpu_power_estimate_w(300.0, 0.0) == pytest.approx(30.0)
    assert gpu_power_estimate_w(300.0, 100.0) == pytest.approx(300.0)
