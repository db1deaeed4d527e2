"""The fit's decode-speed estimate against the two embedded models' measured rates, side by side in one run.

Measures this machine's memory bandwidth (the probe `envirollm fit` stores),
then decodes with llama-cpp-python on every physical core, greedy, and prints
per model: the measured decode rate (tokens after the first over the time
between the first and the last), the estimate `analysis/speed.py` makes for
it (catalog parameters x bits per weight + KV cache at the context used), the
estimate from the GGUF's size instead of the parameter count (the embedding
matrix is often kept at higher precision), and measured / estimated.

    python bench/decode_speed_estimate.py [--tokens 128] [--context 512] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envirollm_core.analysis.hardware import CatalogModel, find_model, memory_estimate  # noqa: E402
from envirollm_core.units import BYTES_PER_GB as GB  # noqa: E402
from envirollm_core.analysis.speed import decode_tps_estimate, measure_memory_bandwidth_gbps  # noqa: E402
from envirollm_core.backends import embedded  # noqa: E402
from envirollm_core.backends.embedded import model_path  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
# SmolLM2-135M-Instruct is not in data/model_catalog.csv yet (issue 11 brings it): its shape from its GGUF.
SMOLLM2 = CatalogModel("smollm2-135m", "smollm2:135m", 0.135, 30, 3, 64, 8192, "GGUF metadata")


def measured_decode_tps(gguf: Path, tokens: int, context: int, threads: int, chat: bool) -> tuple[float, int]:
    """(decode tokens/s, tokens generated); an instruct model is asked through its chat template."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=context, n_threads=threads, n_threads_batch=threads, verbose=False)
    stream = (llm.create_chat_completion([{"role": "user", "content": PROMPT}], max_tokens=tokens, temperature=0.0,
                                         stream=True) if chat else
              llm.create_completion(PROMPT, max_tokens=tokens, temperature=0.0, stream=True))
    times = [time.perf_counter() for chunk in stream if _has_text(chunk)]
    llm.close()
    if len(times) < 2:
        raise SystemExit(f"{gguf.name} generated {len(times)} token(s): nothing to time")
    return (len(times) - 1) / (times[-1] - times[0]), len(times)


def _has_text(chunk: dict) -> bool:
    choice = chunk["choices"][0]
    return bool(choice.get("text") or (choice.get("delta") or {}).get("content"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--threads", type=int, default=psutil.cpu_count(logical=False) or 1)
    args = parser.parse_args()
    threads = args.threads
    bandwidth = measure_memory_bandwidth_gbps()
    print(f"memory bandwidth {bandwidth:.2f} GB/s (probe), {threads} thread(s), {args.tokens} tokens, "
          f"context {args.context}")
    models = [("Gemma 3 270M Q4_K_M", model_path(embedded.GEMMA3.model_id), find_model("gemma-3-270m"), "Q4_K_M", False),
              ("SmolLM2-135M-Instruct Q4_1", model_path(embedded.SMOLLM2.model_id), SMOLLM2, "Q4_1", True)]
    print(f"{'model':28} {'tokens':>6} {'measured':>9} {'estimate':>9} {'ratio':>6} {'est. (file)':>11} {'ratio':>6}")
    for name, gguf, catalog, quant, chat in models:
        estimate = memory_estimate(catalog, quant, context_tokens=args.context, ram_gb=64.0, vram_gb=0.0)
        estimated = decode_tps_estimate(estimate, ram_gbps=bandwidth, gpu_gbps=None)
        by_file = bandwidth / (gguf.stat().st_size / GB + estimate.kv_cache_gb)
        measured, generated = measured_decode_tps(gguf, args.tokens, args.context, threads, chat)
        print(f"{name:28} {generated:6d} {measured:9.1f} {estimated:9.1f} {measured / estimated:6.2f} {by_file:11.1f} "
              f"{measured / by_file:6.2f}")


if __name__ == "__main__":
    main()
