"""How many streamed tokens/s can one benchmark client time before its own error passes 2 %?

A scripted OpenAI-compatible server runs in a separate process (as a real
LLM server would) and streams tokens at increasing known rates, busy-waiting
to keep its schedule and recording when each token really left (after
`sendall`): that record is the truth. The benchmark client measures the same
stream with EnviroLLM's real code path (`OpenAIBackend` + `measure_stream`),
side by side with two variants in the same run:

- `envirollm`: raw SSE lines stamped on arrival (what the benchmark uses);
- `envirollm+sampler`: the same inside an open energy window of the real
  telemetry sampler (its 10 Hz thread shares the process, as in a benchmark);
- `openai-typed`: the openai client's typed stream, stamping each parsed
  chunk (what a straightforward client would do).

Per rate it prints the median and worst decode-rate error over the
repetitions, the median TTFT error, and the client thread's CPU time per
token (`time.thread_time`, so other processes on a busy machine do not count):
one free core can take about 1 / (CPU per token) tokens/s. Then the highest
rate each client times within 2 % (median), counting up to its first failing
rate. Run: `PYTHONPATH=. python bench/client_throughput.py` (about two
minutes; `--quick` for a shorter sweep). On a machine shared with other work
the error sweep is noisy (a descheduled client or server is late); the CPU
column is not.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable

import openai

from envirollm_core.backends.base import ChatRequest
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.metrics import decode_rate, measure_stream
from tests.fakes.scripted_server import Request, ScriptedServer, TokenScript, openai_routes, openai_stream

RATES = (500, 1_000, 2_000, 5_000, 10_000, 20_000, 40_000)
QUICK_RATES = (1_000, 5_000, 20_000)
TTFT_S = 0.05
STREAM_S = 0.6  # each stream lasts about this long, whatever its rate
LIMIT = 0.02


def _serve(port_queue: multiprocessing.Queue, truth_queue: multiprocessing.Queue) -> None:
    """The server process: the model name says the rate (`rate-5000`), max_tokens the length."""

    def chat(request: Request):
        rate = float(request.body["model"].split("-", 1)[1])
        tokens = [f" tok{i}" for i in range(request.body["max_tokens"])]
        return openai_stream(request.body["model"], TokenScript(tokens, TTFT_S, rate), noise=False)

    def report(request: Request) -> None:
        if request.path == "/v1/chat/completions":
            truth_queue.put((request.true_ttft_s(), request.true_decode_tps()))

    server = ScriptedServer(openai_routes([], chat), after_reply=report).start()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


Measured = tuple[float | None, float | None, float]  # TTFT s, decode tokens/s, client CPU s


def _envirollm(backend: OpenAIBackend, model: str, tokens: int) -> Measured:
    cpu_s = time.thread_time()
    metrics = measure_stream(backend.stream(ChatRequest(model, "go", tokens)))
    cpu_s = time.thread_time() - cpu_s
    if metrics.error:
        raise SystemExit(f"the client failed: {metrics.error}")
    return metrics.ttft_s, metrics.decode_tps, cpu_s


def _with_sampler(backend: OpenAIBackend, model: str, tokens: int) -> Measured:
    from envirollm_core.telemetry.sampler import get_sampler

    sampler = get_sampler()
    sampler.begin_window("client-throughput")
    try:
        return _envirollm(backend, model, tokens)
    finally:
        sampler.end_window("client-throughput")


def _typed(client: openai.OpenAI, model: str, tokens: int) -> Measured:
    cpu_s = time.thread_time()
    sent_s = time.perf_counter()
    times: list[float] = []
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "go"}], max_tokens=tokens, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    return times[0] - sent_s, decode_rate(len(times), times), time.thread_time() - cpu_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three rates, two repetitions")
    parser.add_argument("--repeat", type=int, default=3, help="streams per rate and client (default: 3)")
    args = parser.parse_args()
    rates, repeat = (QUICK_RATES, 2) if args.quick else (RATES, args.repeat)

    context = multiprocessing.get_context("spawn")
    port_queue, truth_queue = context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(port_queue, truth_queue), daemon=True)
    server.start()
    try:
        base_url = f"http://127.0.0.1:{port_queue.get(timeout=60)}/v1"
        backend = OpenAIBackend(base_url, name="openai")
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        clients: dict[str, Callable[[str, int], Measured]] = {
            "envirollm": lambda model, n: _envirollm(backend, model, n),
            "envirollm+sampler": lambda model, n: _with_sampler(backend, model, n),
            "openai-typed": lambda model, n: _typed(client, model, n),
        }
        _envirollm(backend, "rate-1000", 50)  # warm the connection and the imports
        truth_queue.get(timeout=30)
        print(f"{'tokens/s':>9}  {'client':<18} {'decode err median':>17} {'worst':>7} {'TTFT err median':>16}"
              f" {'CPU us/token':>13}")
        best = {name: 0 for name in clients}
        cpu_per_token_us: dict[str, list[float]] = {name: [] for name in clients}
        for rate in rates:
            tokens = max(100, int(rate * STREAM_S))
            for name, measure in clients.items():
                errors, ttft_errors, cpu_us = [], [], []
                for _ in range(repeat):
                    ttft_s, tps, cpu_s = measure(f"rate-{rate}", tokens)
                    cpu_us.append(cpu_s / tokens * 1e6)
                    true_ttft_s, true_tps = truth_queue.get(timeout=60)
                    errors.append(abs(tps - true_tps) / true_tps if tps else float("inf"))
                    ttft_errors.append(abs(ttft_s - true_ttft_s) * 1000)
                median = statistics.median(errors)
                if median <= LIMIT and best[name] == rate_before(rates, rate):
                    best[name] = rate
                cpu_per_token_us[name].append(statistics.median(cpu_us))
                print(f"{rate:>9,}  {name:<18} {median:>16.2%} {max(errors):>7.2%} {statistics.median(ttft_errors):>13.1f} ms"
                      f" {statistics.median(cpu_us):>13.1f}")
        print()
        for name, rate in best.items():
            cpu_us = min(cpu_per_token_us[name])  # at the highest rates the fixed per-request cost is spread thinnest
            print(f"{name:<18} times streams within 2 % up to {rate:,} tokens/s (highest rate tried: {rates[-1]:,});"
                  f" client CPU {cpu_us:.1f} us/token, about {1e6 / cpu_us:,.0f} tokens/s on one free core")
        return 0
    finally:
        server.terminate()
        server.join(timeout=5)


def rate_before(rates: tuple[int, ...], rate: int) -> int:
    """The rate tried before this one (0 for the first): a client counts only up to its first failing rate."""
    index = rates.index(rate)
    return rates[index - 1] if index else 0


if __name__ == "__main__":
    sys.exit(main())
