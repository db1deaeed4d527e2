"""Can the load sweep's async client hold 64+ concurrent streams and still time every token within 2 %?

A scripted OpenAI-compatible server runs in a separate process (as a real
LLM server would), streams each request's tokens at a known rate, and
records when each token really left (after `sendall`): that record is the
truth. The client is the sweep's own code path (`bench.sweep.send_request`
on one event loop, the stream parsed by `OpenAIBackend.read_events` after it
ends) with the real telemetry sampler running in the process, as in a sweep.
For each number of concurrent streams it prints, over every stream, the
median and worst error of the decode rate, the median TTFT error, the
per-token lag (client arrival stamp minus server send time) at p50 and p99,
and the client process's CPU time per token. Run:
`PYTHONPATH=. python bench/sweep_client.py` (about half a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time

from envirollm_core.backends.base import ChatRequest
from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.sweep import send_request

STREAMS = (1, 16, 64, 128)
TOKENS = 100
STREAM_TPS = 50.0  # per stream: 128 streams send 6,400 tokens/s in all
TTFT_S = 0.05
LIMIT = 0.02


def _serve(port_queue: multiprocessing.Queue, truth_queue: multiprocessing.Queue) -> None:
    from tests.fakes import scripted_server
    from tests.fakes.scripted_server import Request, ScriptedServer, TokenScript, openai_routes, openai_stream

    scripted_server.SPIN_S = 0.0  # 128 threads busy-waiting would starve the client on 2 cores; truth is still after sendall

    def chat(request: Request):
        tokens = [f" tok{i}" for i in range(request.body["max_tokens"])]
        return openai_stream(request.body["model"], TokenScript(tokens, TTFT_S, STREAM_TPS), noise=False)

    def report(request: Request) -> None:
        if request.path == "/v1/chat/completions":
            prompt = request.body["messages"][0]["content"]
            truth_queue.put((prompt, request.received_at_s, request.token_sent_at_s))

    server = ScriptedServer(openai_routes([], chat), after_reply=report).start()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


async def _streams(backend: OpenAIBackend, count: int) -> list:
    return await asyncio.gather(*(
        send_request(backend, ChatRequest("scripted", f"stream-{count}-{i}", TOKENS), count,
                     Prompt(f"stream-{count}-{i}"), 60.0)
        for i in range(count)
    ))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default=",".join(map(str, STREAMS)), help="comma-separated stream counts")
    args = parser.parse_args()
    from envirollm_core.telemetry.sampler import get_sampler

    sampler = get_sampler()
    context = multiprocessing.get_context("spawn")
    port_queue, truth_queue = context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(port_queue, truth_queue), daemon=True)
    server.start()
    try:
        backend = OpenAIBackend(f"http://127.0.0.1:{port_queue.get(timeout=60)}/v1", name="openai")
        asyncio.run(_streams(backend, 2))  # warm the imports and the loop
        for _ in range(2):
            truth_queue.get(timeout=30)
        print(f"{'streams':>7}  {'tokens/s':>8}  {'decode err median':>17}  {'worst':>6}  {'TTFT err median':>15}"
              f"  {'lag p50':>8}  {'lag p99':>8}  {'CPU us/token':>12}")
        verdict = {}
        for count in map(int, args.streams.split(",")):
            sampler.begin_window(f"sweep-client-{count}")
            cpu_s, wall_s = time.process_time(), time.perf_counter()
            requests = asyncio.run(_streams(backend, count))
            cpu_s, wall_s = time.process_time() - cpu_s, time.perf_counter() - wall_s
            sampler.end_window(f"sweep-client-{count}")
            truth = {}
            for _ in range(count):
                prompt, received_s, sent = truth_queue.get(timeout=60)
                truth[prompt] = (received_s, sent)
            errors, ttft_errors_ms, lags_ms = [], [], []
            for request in requests:
                if request.metrics.error:
                    raise SystemExit(f"a stream failed at {count} streams: {request.metrics.error}")
                received_s, sent = truth[request.prompt.text]
                true_tps = (len(sent) - 1) / (sent[-1] - sent[0])
                errors.append(abs(request.metrics.decode_tps - true_tps) / true_tps)
                ttft_errors_ms.append(abs(request.metrics.ttft_s - (sent[0] - received_s)) * 1000)
                lags_ms.extend((arrived - left) * 1000 for arrived, left in zip(request.token_times_s, sent))
            lags_ms.sort()
            median = statistics.median(errors)
            verdict[count] = median <= LIMIT
            print(f"{count:>7}  {count * TOKENS / wall_s:>8,.0f}  {median:>16.2%}  {max(errors):>6.2%}"
                  f"  {statistics.median(ttft_errors_ms):>12.1f} ms  {lags_ms[len(lags_ms) // 2]:>5.2f} ms"
                  f"  {lags_ms[int(len(lags_ms) * 0.99)]:>5.2f} ms  {cpu_s / (count * TOKENS) * 1e6:>12.1f}")
        print()
        held = [count for count, ok in verdict.items() if ok]
        print(f"decode rate timed within 2 % (median over streams) at: {', '.join(map(str, held)) or 'none'} streams")
        return 0 if all(verdict.values()) else 1
    finally:
        server.terminate()
        server.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
