"""GPU energy: the sampler's integrated power readings against NVML's energy counter.

For each case (full load, a bursty load, one short burst, idle) the same
window is measured twice: by the NVML cumulative energy counter read just
outside the window's edges (the truth, Volta and newer), and by EnviroLLM's
sampler integrating the instant power field at its default 10 Hz
(`Sampler(gpu_counters=False)`: the path a GPU without a counter takes). The
target is an error within 2 %. Runtime: about a minute.

Run on a machine with an NVIDIA GPU, torch, psutil and nvidia-ml-py:

    PYTHONPATH=. python3 bench/gpu_energy_accuracy.py [--interval 0.1] [--json results.json]

It imports only `envirollm_core.telemetry` (psutil + pynvml), nothing else of ours.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envirollm_core.telemetry.sampler import Sampler  # after the path above

TARGET_ERROR_PERCENT = 2.0
MATRIX_SIZE = 8192


@dataclass
class Case:
    name: str
    window_s: float
    counter_j: float
    sampler_j: float
    samples: int
    source: str

    @property
    def error_percent(self) -> float:
        return (self.sampler_j - self.counter_j) / self.counter_j * 100


def _require_gpu():
    try:
        import pynvml
        import torch
    except ImportError as exc:
        sys.exit(f"gpu_energy_accuracy: needs torch and nvidia-ml-py ({exc}); nothing measured")
    if not torch.cuda.is_available():
        sys.exit("gpu_energy_accuracy: torch sees no CUDA GPU; nothing measured")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        sys.exit(f"gpu_energy_accuracy: NVML is unavailable ({exc}); nothing measured")
    handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as exc:
        sys.exit(f"gpu_energy_accuracy: this GPU has no energy counter to compare with ({exc}); nothing measured")
    return torch, pynvml, handle


def _busy(torch, a, b, seconds: float) -> None:
    """Back-to-back matrix products for `seconds` (synchronising often, so the burst ends on time)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(4):
            a @ b
        torch.cuda.synchronize()


def _bursty(torch, a, b, seconds: float, rng: random.Random) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _busy(torch, a, b, min(rng.uniform(0.15, 1.5), max(end - time.monotonic(), 0)))
        time.sleep(min(rng.uniform(0.1, 1.0), max(end - time.monotonic(), 0)))


def _measure(name, load, sampler, pynvml, handle, gpu_name: str) -> Case:
    start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    sampler.begin_window(name)
    load()
    measurement = sampler.end_window(name)
    end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    gpu = measurement.component(gpu_name)
    return Case(name, measurement.duration_s, (end_mj - start_mj) / 1000, gpu.energy_wh * 3600, measurement.sample_count, gpu.source)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.1, help="sampling interval in seconds (default 0.1)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    torch, pynvml, handle = _require_gpu()
    device = torch.cuda.current_device()
    a = torch.randn(MATRIX_SIZE, MATRIX_SIZE, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(MATRIX_SIZE, MATRIX_SIZE, device="cuda", dtype=torch.bfloat16)
    _busy(torch, a, b, 2.0)  # warm up clocks and kernels
    time.sleep(2.0)
    rng = random.Random(42)
    with Sampler(interval_s=args.interval, gpu_counters=False) as sampler:
        gpu_name = f"gpu:{device}"
        source = {c.name: c for c in sampler.components()}[gpu_name]
        print(f"GPU {device}: {source.note}; sampling every {args.interval:g} s", flush=True)
        cases = [
            _measure("full load 10 s", lambda: _busy(torch, a, b, 10.0), sampler, pynvml, handle, gpu_name),
            _measure("bursty 11 s", lambda: _bursty(torch, a, b, 11.0, rng), sampler, pynvml, handle, gpu_name),
            _measure("one 1.5 s burst", lambda: _busy(torch, a, b, 1.5), sampler, pynvml, handle, gpu_name),
        ]
        time.sleep(3.0)  # let the GPU settle before idle
        cases.append(_measure("idle 5 s", lambda: time.sleep(5.0), sampler, pynvml, handle, gpu_name))
    print(f"{'case':<18}{'window s':>10}{'counter J':>12}{'sampler J':>12}{'error %':>10}{'samples':>9}  source")
    for case in cases:
        print(f"{case.name:<18}{case.window_s:>10.2f}{case.counter_j:>12.1f}{case.sampler_j:>12.1f}"
              f"{case.error_percent:>+10.2f}{case.samples:>9}  {case.source}")
    worst = max(abs(case.error_percent) for case in cases)
    verdict = "met" if worst <= TARGET_ERROR_PERCENT else "NOT met"
    print(f"worst error {worst:.2f} %: target (within {TARGET_ERROR_PERCENT:g} %) {verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"gpu": source.note, "interval_s": args.interval,
                       "cases": [dict(asdict(c), error_percent=c.error_percent) for c in cases]}, out, indent=2)
    pynvml.nvmlShutdown()
    return 0 if worst <= TARGET_ERROR_PERCENT else 1


if __name__ == "__main__":
    sys.exit(main())
