"""Where a request waits on its way to its first token, direct and through the proxy: timestamps, not guesses.

The same set-up as bench/proxy_overhead.py (scripted upstream process, `envirollm proxy` process, client
processes), with every hop stamped on one clock: `time.perf_counter()` is CLOCK_MONOTONIC on Linux, the
same in every process. Each request carries a tag in its prompt; the upstream stamps when it read the
request and when its first token left, the proxy (this script's patched copy of the CLI, nothing else
changed) when the client's bytes arrived, when its handler ran, when it wrote upstream, when the upstream's
first body bytes came and were written to the client, the client when it sent and when the first token
came. Printed: the median of each leg over `--rounds` rounds of `--streams` concurrent streams, direct and
proxied, and the recorder thread's CPU while the requests start.

Run: `PYTHONPATH=. python bench/proxy_ttft_trace.py [--streams 16] [--rounds 6] [--tokens 300]` (Linux).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from bench.proxy_overhead import TTFT_S, case_pool
from bench.proxy_overhead import _measure as bench_measure
from tests.fakes.scripted_server import Reply, Request, ScriptedServer, TokenScript, json_reply, openai_routes, openai_stream

# The proxy, as the CLI runs it, with stamps added by wrapping (run as `python -c PROXY_MAIN ...`).
PROXY_MAIN = r"""
import json, re, sys, threading, time
from envirollm_core.proxy import relay, server

stamps = {}
TAG = re.compile(rb"trace-(\d+)")
path = sys.argv.pop(1)

def tag_of(body):
    m = TAG.search(body)
    return m.group(1).decode() if m else None

received = relay.ClientConnection.data_received
def data_received(self, data):
    if not self.busy and not self._buffer:
        self._trace_in = time.perf_counter()
    received(self, data)
relay.ClientConnection.data_received = data_received

handle = server.ProxyApp.handle
async def traced_handle(self, client, request):
    tag = tag_of(request.body)
    if tag:
        stamps[tag] = {"in": getattr(client, "_trace_in", None), "handle": time.perf_counter()}
        client._trace_tag = tag
    await handle(self, client, request)
server.ProxyApp.handle = traced_handle

connection = relay.Upstream.connection
async def traced_connection(self):
    c, reused = await connection(self)
    c._trace_reused = reused
    return c, reused
relay.Upstream.connection = traced_connection

send = relay.UpstreamConnection.send
def traced_send(self, client, payload, request, exchange):
    tag = getattr(client, "_trace_tag", None)
    self._trace = stamps.get(tag) if tag else None
    if self._trace is not None:
        self._trace["upstream_written"] = time.perf_counter()
        self._trace["reused"] = getattr(self, "_trace_reused", None)
    return send(self, client, payload, request, exchange)
relay.UpstreamConnection.send = traced_send

body = relay.UpstreamConnection._body
def traced_body(self, now_s, data):
    trace = getattr(self, "_trace", None)
    first = trace is not None and "body_in" not in trace
    body(self, now_s, data)
    if first:
        trace["body_in"] = now_s
        trace["body_out"] = time.perf_counter()
relay.UpstreamConnection._body = traced_body

meter_boundary = server.RequestMeter.boundary
def traced_boundary(self, starts, finishes):
    t0, c0 = time.perf_counter(), time.thread_time()
    energies = meter_boundary(self, starts, finishes)
    if starts:
        recorder_cpu.append((t0, time.perf_counter(), time.thread_time() - c0, len(starts)))
    return energies
server.RequestMeter.boundary = traced_boundary
recorder_cpu = []

import gc
gc_pauses = []
_gc_start = {}
def _gc(phase, info):
    if phase == "start":
        _gc_start[threading.get_ident()] = time.perf_counter()
    else:
        t0 = _gc_start.pop(threading.get_ident(), None)
        if t0 is not None:
            gc_pauses.append((t0, time.perf_counter() - t0, info["generation"], threading.current_thread().name))
gc.callbacks.append(_gc)

def dump():
    while True:
        time.sleep(0.5)
        with open(path + ".tmp", "w") as f:
            json.dump({"requests": stamps, "meter_start": recorder_cpu, "gc": gc_pauses}, f)
        import os; os.replace(path + ".tmp", path)
threading.Thread(target=dump, daemon=True).start()

from envirollm_core.cli import main
raise SystemExit(main())
"""


def _serve(port_queue: multiprocessing.Queue) -> None:
    server: ScriptedServer

    @functools.cache
    def reply(model: str, max_tokens: int) -> Reply:  # as bench/proxy_overhead.py's upstream
        return openai_stream(model, TokenScript([f" tok{i}" for i in range(max_tokens)], TTFT_S, float(model.split("-", 1)[1])), noise=False)

    def chat(request: Request) -> Reply:
        return reply(request.body["model"], request.body["max_tokens"])

    def trace(_: Request):
        out = {}
        for r in server.requests:
            if isinstance(r.body, dict) and r.token_sent_at_s:
                prompt = r.body["messages"][0]["content"]
                out[prompt.rsplit("-", 1)[1]] = {"server_in": r.received_at_s, "token_out": r.token_sent_at_s[0]}
        return json_reply(out)

    server = ScriptedServer(openai_routes(["rate-5000"], chat, {("GET", "/trace"): trace})).start()
    port_queue.put(server.port)
    while True:
        time.sleep(3600)


def _measure(args: tuple[str, float, int, str]) -> tuple[str, float | None, float | None]:
    url, rate, tokens, tag = args
    ttft_s, _, sent_s = bench_measure((url, rate, tokens, f"go trace-{tag}", False))
    return tag, sent_s, sent_s + ttft_s if sent_s is not None and ttft_s is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=300)
    args = parser.parse_args()
    ports: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    upstream = f"http://127.0.0.1:{ports.get(timeout=30)}"
    rate = 5000.0 / args.streams
    with tempfile.TemporaryDirectory() as home:
        os.environ["ENVIROLLM_HOME"] = home
        stamps_path = os.path.join(home, "stamps.json")
        proxy = subprocess.Popen(
            [sys.executable, "-c", PROXY_MAIN, stamps_path, "proxy", "--upstream", upstream, "--listen", "127.0.0.1:0", "--json",
             "--db", os.path.join(home, "trace.duckdb")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        text = ""
        while True:
            text += proxy.stdout.readline()  # type: ignore[union-attr]
            try:
                proxy_url = json.loads(text)["url"]
                break
            except ValueError:
                continue
        client: dict[str, dict[str, float]] = {}
        kinds: dict[str, str] = {}
        try:
            with case_pool(args.streams) as pool:
                list(pool.map(_measure, [(upstream, 1000.0, 20, "w")] * args.streams))
                list(pool.map(_measure, [(proxy_url, 1000.0, 20, "w")] * args.streams))
                n = 0
                for round_index in range(args.rounds):
                    order = ("direct", "proxy") if round_index % 2 == 0 else ("proxy", "direct")
                    for name in order:
                        url = upstream if name == "direct" else proxy_url
                        jobs = [(url, rate, args.tokens, str(n + i)) for i in range(args.streams)]
                        n += args.streams
                        for tag, sent, first in pool.map(_measure, jobs):
                            client[tag] = {"sent": sent, "first": first}
                            kinds[tag] = name
            time.sleep(1.2)
            with open(stamps_path) as f:
                proxy_stamps = json.load(f)
            server_stamps = httpx.get(upstream + "/trace").json()
        finally:
            proxy.terminate()
            proxy.wait(timeout=15)
            server.terminate()
    _report(args, client, kinds, server_stamps, proxy_stamps)


def _report(args, client, kinds, server_stamps, proxy_stamps) -> None:
    legs = {"direct": {}, "proxy": {}}
    for tag, c in client.items():
        s = server_stamps.get(tag)
        if s is None or c["first"] is None:
            continue
        kind = kinds[tag]
        row = {"ttft": c["first"] - c["sent"], "sent->server_in": s["server_in"] - c["sent"],
               "token_out->client": c["first"] - s["token_out"]}
        if kind == "direct":
            row |= {"server_in->token_out": s["token_out"] - s["server_in"]}
        else:
            p = proxy_stamps["requests"].get(tag, {})
            if "body_out" not in p:
                continue
            row |= {"client->proxy": p["in"] - c["sent"], "proxy in->handle": p["handle"] - p["in"],
                    "handle->upstream written": p["upstream_written"] - p["handle"],
                    "upstream written->server_in": s["server_in"] - p["upstream_written"],
                    "server_in->token_out": s["token_out"] - s["server_in"],
                    "token_out->proxy": p["body_in"] - s["token_out"], "proxy body in->out": p["body_out"] - p["body_in"],
                    "proxy->client": c["first"] - p["body_out"], "reused": float(bool(p.get("reused")))}
        for key, value in row.items():
            legs[kind].setdefault(key, []).append(value)
    print(f"{args.streams} streams, {args.rounds} rounds, {args.tokens} tokens; load {os.getloadavg()[0]:.1f}; medians (ms), p90")
    for kind, values in legs.items():
        print(f"-- {kind} ({len(values.get('ttft', []))} requests)")
        for key, series in values.items():
            scale = 1 if key == "reused" else 1000
            q = statistics.quantiles(series, n=10) if len(series) > 1 else series * 9
            print(f"  {key:30s} {statistics.median(series) * scale:8.2f}  p90 {q[-1] * scale:8.2f}")
    pauses = proxy_stamps["gc"]
    for generation in (0, 1, 2):
        these = [d for _, d, g, _ in pauses if g == generation]
        if these:
            print(f"-- proxy GC generation {generation}: {len(these)} collections, median {statistics.median(these) * 1000:.2f} ms,"
                  f" max {max(these) * 1000:.2f} ms, threads {sorted({n for *_, g, n in pauses if g == generation})}")
    starts = proxy_stamps["meter_start"]
    if starts:
        print(f"-- recorder boundaries with starts: {len(starts)} readings for {sum(n for *_, n in starts)} starts,"
              f" wall median {statistics.median(e - s for s, e, _, _ in starts) * 1000:.2f} ms,"
              f" CPU median {statistics.median(c for _, _, c, _ in starts) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
