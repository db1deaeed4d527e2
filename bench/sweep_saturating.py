"""A load sweep against a server whose total throughput saturates at a known concurrency.

The scripted server (tests/fakes/saturating_server.py) shares a fixed
capacity among the streams running: each stream gets `stream_tps` up to
`knee` streams, then the total stays at `knee` x `stream_tps`. The sweep runs
through EnviroLLM's own code path (`bench.sweep.run_sweep`, the real
sampler) and this prints its table, then per level the sweep's output
tokens/s against the tokens/s the server recorded sending over the same
steady-state window. The server runs in this process with its busy-wait off
(its threads must not hold the GIL the client's event loop needs); its
record is taken after each send, so it stays the truth. Run:
`PYTHONPATH=. python bench/sweep_saturating.py` (about a minute).
"""

from __future__ import annotations

import argparse
import sys

from envirollm_core.backends.openai_compat import OpenAIBackend
from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.sweep import SweepConfig, run_sweep
from envirollm_core.cli.sweep import print_levels
from envirollm_core.telemetry.sampler import get_sampler
from tests.fakes import scripted_server
from tests.fakes.saturating_server import MODEL, SaturatingServer, WindowEdges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--knee", type=int, default=8)
    parser.add_argument("--stream-tps", type=float, default=50.0)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    parser.add_argument("--max-tokens", type=int, default=40)
    args = parser.parse_args()
    scripted_server.SPIN_S = 0.0
    saturating = SaturatingServer(knee=args.knee, stream_tps=args.stream_tps)
    recorder = WindowEdges(get_sampler())
    with saturating.server:
        backend = OpenAIBackend(f"{saturating.server.url}/v1", name="openai")
        config = SweepConfig(model=MODEL, prompts=(Prompt("Say something."),),
                             concurrency=tuple(int(c) for c in args.concurrency.split(",")),
                             max_tokens=args.max_tokens, idle_s=1.0)
        result = run_sweep(backend, config, sampler=recorder)
    print(f"server: {args.stream_tps:g} tokens/s per stream up to {args.knee} streams, "
          f"{args.knee * args.stream_tps:g} tokens/s in all past them")
    print_levels(result, sys.stdout)
    print(f"\n{'streams':>7}  {'sweep tok/s':>11}  {'server sent tok/s':>17}  {'ratio':>6}")
    worst = 0.0
    for level in result.levels:
        start_s, end_s = recorder.edges[f"sweep-{result.sweep_id}-c{level.concurrency}"]
        truth = saturating.sent_tps(start_s, end_s)
        ratio = level.output_tps / truth
        worst = max(worst, abs(ratio - 1))
        print(f"{level.concurrency:>7}  {level.output_tps:>11.1f}  {truth:>17.1f}  {ratio:>6.3f}")
    print(f"\nknee found: {result.knee} (expected {args.knee}); worst throughput error {worst:.2%}")
    return 0 if result.knee == args.knee and worst <= 0.02 else 1


if __name__ == "__main__":
    sys.exit(main())
