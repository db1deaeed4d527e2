"""Issue 13: the fit says how fast, the bandwidth probe is stored once, and one rounding rule."""

import json

import pytest

from envirollm_core.analysis.hardware import find_model, hardware_fit, largest_fits, memory_estimate
from envirollm_core.analysis.speed import (
    GPU_USABLE_FRACTION,
    PROBE_FILE,
    catalog_model_of,
    check_against_runs,
    decode_tps_estimate,
    fit_verdict,
    gpu_bandwidth_gbps,
    memory_bandwidth,
    with_speeds,
)
from envirollm_core.cli import main
from envirollm_core.figures import format_figure
from envirollm_core.machines import this_machine_key
from envirollm_core.store import Store

from tests.fakes.frames import frame, run


def test_decode_speed_is_bandwidth_over_bytes_read_per_token():
    estimate = memory_estimate(find_model("qwen3-32b"), "Q4_K_M", ram_gb=32.0, vram_gb=0.0)
    assert estimate.placement == "cpu"
    tps = decode_tps_estimate(estimate, ram_gbps=10.0, gpu_gbps=None)
    assert tps == pytest.approx(10.0 / (estimate.weights_gb + estimate.kv_cache_gb))
    assert tps < 1  # fits in RAM, crawls
    on_gpu = memory_estimate(find_model("qwen3-32b"), "Q4_K_M", ram_gb=32.0, vram_gb=80.0)
    assert decode_tps_estimate(on_gpu, ram_gbps=10.0, gpu_gbps=3350.0) == pytest.approx(
        3350.0 * GPU_USABLE_FRACTION / (on_gpu.weights_gb + on_gpu.kv_cache_gb))
    split = memory_estimate(find_model("qwen3-32b"), "Q4_K_M", ram_gb=32.0, vram_gb=8.0)
    assert split.placement == "gpu+cpu"
    split_tps = decode_tps_estimate(split, ram_gbps=10.0, gpu_gbps=1000.0, vram_gb=8.0)
    assert tps < split_tps < decode_tps_estimate(on_gpu, ram_gbps=10.0, gpu_gbps=1000.0)


def test_the_largest_usable_model_is_ranked_by_speed_not_only_size():
    estimates = with_speeds(hardware_fit(32.0, 0.0, quantizations=("Q4_K_M",)), ram_gbps=10.0, gpu_gbps=None,
                            vram_gb=0.0)
    biggest_fitting = largest_fits(estimates)["cpu"]
    usable = largest_fits(estimates, min_tps=5.0)["cpu"]
    assert biggest_fitting.decode_tps < 5.0 <= usable.decode_tps
    assert usable.weights_gb < biggest_fitting.weights_gb
    assert fit_verdict(usable).startswith("fits, ~") and fit_verdict(usable).endswith("tokens/s (estimated)")
    assert fit_verdict(biggest_fitting).startswith("fits but too slow")


def test_gpu_bandwidth_by_name_prefers_the_most_specific_row():
    assert gpu_bandwidth_gbps("NVIDIA H100 PCIe") == 2000.0
    assert gpu_bandwidth_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert gpu_bandwidth_gbps("NVIDIA GeForce RTX 4070 Ti SUPER") == 504.0
    assert gpu_bandwidth_gbps("Some Future GPU") is None


def test_the_bandwidth_probe_is_measured_once_and_stored(tmp_path):
    first = memory_bandwidth(home=tmp_path)
    assert first.gbps > 0.1 and first.machine == this_machine_key()
    stored = json.loads((tmp_path / PROBE_FILE).read_text())
    assert stored[this_machine_key()]["gbps"] == first.gbps
    assert memory_bandwidth(home=tmp_path) == first  # read back, not measured again


def test_the_estimate_is_checked_against_this_machines_runs():
    model = "gemma-3-270m-q4_k_m"
    assert catalog_model_of(model).name == "gemma-3-270m" and catalog_model_of("gemma3:270m").name == "gemma-3-270m"
    runs = [run(model, quantization="q4_k_m", decode_tps=tps, environment={}) for tps in (36.0, 40.0)]
    runs_frame = frame(runs).with_columns(machine=__import__("polars").lit(this_machine_key()))
    (check,) = check_against_runs(runs_frame, ram_gbps=5.0, gpu_gbps=None, ram_gb=16.0, vram_gb=0.0,
                                  context_tokens=4096)
    assert check.measured_tps == pytest.approx(38.0) and check.runs == 2
    assert check.ratio == pytest.approx(38.0 / check.estimated_tps)


def test_fit_cli_prints_speeds_and_checks_and_refuses_a_negative_floor(capsys, tmp_path):
    code = main(["fit", "--ram-gb", "32", "--vram-gb", "0", "--quant", "Q4_K_M", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["min_tps"] == 5.0 and result["memory_bandwidth"]["gbps"] > 0
    usable = [e for e in result["estimates"] if e["usable"]]
    assert usable and all(e["decode_tps"] >= 5.0 for e in usable)
    assert result["estimates"][: len(usable)] == usable  # usable first
    code = main(["fit", "--ram-gb", "32", "--vram-gb", "0", "--quant", "Q4_K_M"])
    captured = capsys.readouterr()
    assert code == 0 and "tokens/s (estimated)" in captured.out and "largest usable on cpu" in captured.err
    assert main(["fit", "--min-tps", "-1"]) == 2


def test_one_rounding_rule():
    assert format_figure(480.617, "g/kWh") == "481"
    assert format_figure(0.000583, "Wh") == "0.000583"
    assert format_figure(38.27, "tokens/s") == "38.3"
    assert format_figure(12345.0, "tokens") == "12345"
    assert format_figure(85.4, "score") == "85"
    assert format_figure(None) == "-"
