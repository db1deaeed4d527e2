"""The embedded engine's decode rate through `envirollm demo` against raw llama.cpp's best thread count.

Question: does the engine EnviroLLM starts decode as fast as llama.cpp can on this machine (target >= 90 %)?

Method, side by side in one run, on the same GGUF and the same prompt, greedy, the same number of tokens:
1. raw llama.cpp (llama-cpp-python's `Llama`, in this process) at every thread count from 1 to the logical
   CPU count, `--repeat` streamed generations each; decode rate = (tokens - 1) / (last token - first token);
   the best thread count's median is the reference;
2. `envirollm demo --model M` (the engine as a user gets it: its own process, its default threads, the
   OpenAI-compatible server, the benchmark runner's own decode rate) with `--repeat` runs; its median.
The two phases alternate `--rounds` times, so a change in the machine's load hits both.

Same on both sides: the GGUF, the chat template, n_ctx (the engine's 4096), n_batch/n_ubatch (512, both
defaults), greedy sampling with the server's default repeat penalty (1.1; `Llama`'s own default is 1.0, which
changes the text and so the tokens decoded). What differs, and is what is measured: the engine's HTTP server,
its streaming (one SSE event per token), the benchmark client reading it, and the energy sampler running beside.
Prints the target (>= 90 %) and the verdict. Run it on a quiet machine (`uptime` load well under 1 per core):
with llama.cpp's threads waiting on each other at every layer, any other load on the cores swamps the figure.

    python bench/engine_threads.py --model smollm2-135m-instruct-q4_1 --tokens 64 --repeat 3 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Explain in a few sentences why the sky is blue."


def raw_decode_tps(gguf: Path, threads: int, tokens: int, repeat: int, chat_format: str | None) -> list[float]:
    from llama_cpp import Llama
    from llama_cpp.server.types import repeat_penalty_field

    from envirollm_core.backends.embedded import DEFAULT_CONTEXT_TOKENS

    llm = Llama(model_path=str(gguf), n_threads=threads, n_threads_batch=threads, n_ctx=DEFAULT_CONTEXT_TOKENS,
                verbose=False, chat_format=chat_format)
    rates = []
    for _ in range(repeat + 1):  # the first generation warms up and is dropped
        times = []
        for chunk in llm.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}], max_tokens=tokens, temperature=0.0, stream=True,
            repeat_penalty=repeat_penalty_field.default,  # what the engine's server applies to a request without one
        ):
            if chunk["choices"][0]["delta"].get("content"):
                times.append(time.perf_counter())
        if len(times) > 1:
            rates.append((len(times) - 1) / (times[-1] - times[0]))
    del llm
    return rates[1:] if len(rates) > repeat else rates


def demo_decode_tps(model: str, tokens: int, repeat: int, threads: int | None) -> tuple[list[float], int | None]:
    with tempfile.TemporaryDirectory() as home:
        command = [sys.executable, "-m", "envirollm_core", "demo", "--model", model, "--prompt", PROMPT,
                   *(("--threads", str(threads)) if threads else ()),
                   "--repeat", str(repeat), "--warmup", "1", "--max-tokens", str(tokens), "--idle-s", "0",
                   "--judge", "none", "--json", "--db", str(Path(home) / "bench.duckdb")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "ENVIROLLM_HOME": home})
    if done.returncode != 0:
        raise SystemExit(f"demo failed: {done.stderr[-500:]}")
    runs = json.loads(done.stdout)
    return [r["decode_tps"] for r in runs if r["decode_tps"]], runs[0]["engine_threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct-q4_1")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="the demo's --threads (default: its own default)")
    parser.add_argument("--max-raw-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from envirollm_core.backends.embedded import embedded_model, model_path

    model = embedded_model(args.model)
    gguf = model_path(model.model_id)
    raw: dict[int, list[float]] = {}
    engine: list[float] = []
    engine_threads = None
    for round_index in range(args.rounds):
        for threads in range(1, args.max_raw_threads + 1):
            raw.setdefault(threads, []).extend(raw_decode_tps(gguf, threads, args.tokens, args.repeat, model.chat_format))
        rates, engine_threads = demo_decode_tps(model.model_id, args.tokens, args.repeat, args.threads)
        engine.extend(rates)
        print(f"round {round_index + 1}: raw {({t: round(statistics.median(r), 1) for t, r in raw.items()})}, "
              f"demo {statistics.median(engine):.1f} tok/s", file=sys.stderr)
    best_threads = max(raw, key=lambda t: statistics.median(raw[t]))
    best = statistics.median(raw[best_threads])
    demo = statistics.median(engine)
    print(f"model {model.model_id}, {args.tokens} tokens, {args.repeat} runs x {args.rounds} rounds")
    for threads, rates in sorted(raw.items()):
        print(f"raw llama.cpp, {threads} thread(s): median {statistics.median(rates):.1f} tok/s "
              f"(min {min(rates):.1f}, max {max(rates):.1f}, n={len(rates)})")
    print(f"envirollm demo ({engine_threads} thread(s)): median {demo:.1f} tok/s "
          f"(min {min(engine):.1f}, max {max(engine):.1f}, n={len(engine)})")
    ratio = demo / best
    print(f"ratio demo / raw best ({best_threads} thread(s)): {ratio:.1%}; target >= 90 %: "
          f"{'MET' if ratio >= 0.9 else 'NOT MET'}")
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs: other work shares the cores, "
              "rerun on a quiet machine before reading the verdict")


if __name__ == "__main__":
    main()
