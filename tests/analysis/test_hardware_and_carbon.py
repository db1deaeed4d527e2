import json

import psutil
import pytest

from envirollm_core.analysis.carbon import (
    footprint,
    grid_intensity,
    load_grid_intensities,
    make_tariff,
    monthly,
    per_thousand_tokens,
)
from envirollm_core.analysis.hardware import (
    bits_per_weight,
    detected_memory_gb,
    find_model,
    hardware_fit,
    largest_fits,
    load_catalog,
    load_quantization_bits,
    memory_estimate,
    placement,
)
from envirollm_core.cli import build_parser
from envirollm_core.errors import UsageError
from tests.fakes import fake_pynvml
from tests.fakes.fake_pynvml import FakeGpu

# NVML's memory figures are MiB; every size in the fit is 1e9-byte GB
SMALL_GPU_MIB, BIG_GPU_MIB = 8192.0, 24576.0
BIG_GPU_GB = BIG_GPU_MIB * 2**20 / 1e9  # 25.77, not 24 (GiB) and not the first GPU's 8.59


def test_the_catalog_is_sane():
    catalog = load_catalog()
    assert len(catalog) >= 20
    assert len({model.name for model in catalog}) == len(catalog)
    assert len({model.ollama_tag for model in catalog}) == len(catalog)
    for model in catalog:
        assert 0.1 < model.params_b < 1000 and model.n_layers > 0 and model.head_dim in (64, 96, 128, 256)
        assert model.source.startswith("https://huggingface.co/")
    bits = load_quantization_bits()
    assert bits_per_weight("q4_k_m") == bits["Q4_K_M"] and 2 < min(bits.values()) and max(bits.values()) == 32


def test_llama_3_1_8b_at_q4_k_m_matches_llama_cpp():
    estimate = memory_estimate(find_model("llama3.1:8b"), "Q4_K_M", context_tokens=4096)
    # llama.cpp's quantize README gives 4.58 GiB for this file; the KV cache of 32 layers x 8 heads x 128 x
    # 4096 tokens x 2 (K, V) x 2 bytes is exactly 512 MiB.
    assert estimate.weights_gb == pytest.approx(4.58 * 2**30 / 1e9, rel=0.01)
    assert estimate.kv_cache_gb == pytest.approx(512 * 2**20 / 1e9)
    assert estimate.total_gb == pytest.approx(estimate.weights_gb + estimate.kv_cache_gb + estimate.overhead_gb)


def test_context_is_capped_at_the_models_own():
    estimate = memory_estimate(find_model("tinyllama:1.1b"), "Q8_0", context_tokens=100_000)
    assert estimate.context_tokens == 2048


def test_placement_by_memory():
    assert placement(5.0, ram_gb=16, vram_gb=8) == "gpu"
    assert placement(12.0, ram_gb=16, vram_gb=8) == "gpu+cpu"
    assert placement(12.0, ram_gb=16, vram_gb=0) == "cpu"
    assert placement(15.0, ram_gb=16, vram_gb=0) == "does not fit"  # 2 GB stay with the system
    assert placement(30.0, ram_gb=16, vram_gb=8) == "does not fit"


def test_hardware_fit_lists_smallest_first_and_the_largest_that_fit():
    estimates = hardware_fit(ram_gb=16, vram_gb=8, quantizations=("Q4_K_M", "F16"))
    totals = [estimate.total_gb for estimate in estimates]
    assert totals == sorted(totals) and len(estimates) == 2 * len(load_catalog())
    best = largest_fits(estimates)
    assert best["gpu"].total_gb <= 8 and best["gpu+cpu"].total_gb <= 8 + 14
    assert all(estimate.placement == "does not fit" for estimate in estimates if estimate.total_gb > 22)


def test_unknown_names_are_one_line():
    with pytest.raises(UsageError, match="not in the model catalog"):
        find_model("gpt-9")
    with pytest.raises(UsageError, match="unknown quantization"):
        bits_per_weight("Q3_FANCY")
    with pytest.raises(UsageError):
        memory_estimate(find_model("gemma3:1b"), "Q4_K_M", context_tokens=0)


def test_the_grid_table_covers_the_world():
    grids = load_grid_intensities()
    assert len(grids) == 214  # 213 countries and the world mean
    assert all(0 <= grid.g_co2_per_kwh < 1500 for grid in grids.values())
    assert 300 < grids["WLD"].g_co2_per_kwh < 600
    assert grid_intensity("fra") == grid_intensity("France") == grids["FRA"]
    assert grids["FRA"].g_co2_per_kwh < grids["POL"].g_co2_per_kwh  # nuclear against coal


def test_an_unknown_country_suggests_close_names():
    with pytest.raises(UsageError, match="FRA"):
        grid_intensity("Frnace")


def test_footprints_by_hand():
    tariff = make_tariff(g_co2_per_kwh=400.0, price_per_kwh=0.30, currency="EUR")
    assert footprint(500.0, tariff).co2_g == pytest.approx(200.0)  # half a kWh at 400 g/kWh
    assert footprint(500.0, tariff).cost == pytest.approx(0.15)
    thousand = per_thousand_tokens(0.0005, tariff)  # 0.5 Wh per 1,000 tokens
    assert (thousand.energy_wh, thousand.co2_g) == pytest.approx((0.5, 0.2))
    month = monthly(tariff, energy_per_token_wh=0.0005, tokens_per_day=200_000)  # 100 Wh a day
    assert (month.energy_wh, month.co2_g, month.cost) == pytest.approx((3000.0, 1200.0, 0.9))
    by_request = monthly(tariff, energy_per_request_wh=0.5, requests_per_day=100, energy_per_token_wh=1.0)
    assert by_request.energy_wh == pytest.approx(1500.0)
    assert monthly(tariff, energy_per_token_wh=0.0005) is None


def test_tariff_defaults_and_limits():
    assert make_tariff().grid.code == "WLD" and make_tariff().price_per_kwh is None
    assert footprint(1.0, make_tariff()).cost is None
    assert make_tariff(country="DEU", g_co2_per_kwh=10.0).grid.code == "OWN"  # your own figure wins
    with pytest.raises(UsageError):
        make_tariff(g_co2_per_kwh=-1)
    with pytest.raises(UsageError):
        make_tariff(price_per_kwh=-0.1)
    with pytest.raises(UsageError):
        monthly(make_tariff(), energy_per_token_wh=0.001, tokens_per_day=-5)


def test_detected_memory_is_the_largest_gpu_in_gb(monkeypatch):
    fake_pynvml.install(monkeypatch, [FakeGpu(memory_total_mb=SMALL_GPU_MIB), FakeGpu(memory_total_mb=BIG_GPU_MIB),
                                      FakeGpu(memory_info=False)])
    ram_gb, vram_gb = detected_memory_gb()
    assert vram_gb == pytest.approx(BIG_GPU_GB)
    assert ram_gb == pytest.approx(psutil.virtual_memory().total / 1e9)


def test_detected_gpu_memory_is_unknown_without_a_gpu_or_its_reading(monkeypatch):
    fake_pynvml.install(monkeypatch, [], driver=False)
    assert detected_memory_gb()[1] is None
    fake_pynvml.install(monkeypatch, [FakeGpu(memory_info=False)])
    assert detected_memory_gb()[1] is None


def test_fit_command_uses_the_detected_memory(monkeypatch, capsys):
    fake_pynvml.install(monkeypatch, [FakeGpu(memory_total_mb=SMALL_GPU_MIB), FakeGpu(memory_total_mb=BIG_GPU_MIB)])
    args = build_parser().parse_args(["fit", "--json"])
    assert args.handler(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["ram_gb"], shown["vram_gb"]) == pytest.approx(detected_memory_gb())
