"""CPU cost of the sampler thread, as a fraction of one core (target: at most 1 % at 10 Hz).

Side by side in one process, for the same wall time each: the process idle
without a sampler (the floor), with the sampler running at 10 Hz and no
window, and with the sampler feeding an open window that tracks a process
tree (a parent with a child, as an LLM server with its runner). The cost is
the process's CPU time (all threads) over the wall time, minus the floor.

    python bench/sampler_overhead.py [--seconds 20] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envirollm_core.telemetry.sampler import Sampler  # after the path above

TARGET_CORE_FRACTION = 0.01
TREE = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def cpu_fraction(seconds: float) -> float:
    """CPU time this process used while the caller's setup ran for `seconds`, per wall second."""
    cpu_start, wall_start = time.process_time(), time.monotonic()
    time.sleep(seconds)
    return (time.process_time() - cpu_start) / (time.monotonic() - wall_start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="wall time of each phase (default 20)")
    parser.add_argument("--interval", type=float, default=0.1, help="sampling interval in seconds (default 0.1)")
    args = parser.parse_args()

    floor = cpu_fraction(args.seconds)
    with Sampler(interval_s=args.interval) as sampler:
        components = ", ".join(f"{c.name} ({c.source})" for c in sampler.components())
        time.sleep(1.0)  # start-up (device discovery) is not the steady cost
        running = cpu_fraction(args.seconds)
        tree = subprocess.Popen([sys.executable, "-c", TREE])
        try:
            time.sleep(0.5)
            sampler.begin_window("overhead", pids=[tree.pid])
            windowed = cpu_fraction(args.seconds)
            measurement = sampler.end_window("overhead")
        finally:
            for child in psutil.Process(tree.pid).children():
                child.kill()
            tree.kill()
            tree.wait()
    ticks_per_s = 1 / args.interval
    print(f"components: {components}")
    print(f"{'phase':<44}{'CPU, % of a core':>18}{'cost per tick, ms':>20}")
    print(f"{'no sampler (floor)':<44}{floor * 100:>18.3f}{'':>20}")
    for label, fraction in ((f"sampler at {ticks_per_s:g} Hz, no window", running),
                            (f"sampler at {ticks_per_s:g} Hz, window + 2-process tree", windowed)):
        cost = fraction - floor
        print(f"{label:<44}{fraction * 100:>18.3f}{cost / ticks_per_s * 1000:>20.3f}")
    worst = max(running, windowed) - floor
    print(f"samples in the window: {measurement.sample_count} over {measurement.duration_s:.1f} s")
    verdict = "met" if worst <= TARGET_CORE_FRACTION else "NOT met"
    print(f"sampler cost {worst * 100:.3f} % of one core: target (at most {TARGET_CORE_FRACTION * 100:g} %) {verdict}")
    return 0 if worst <= TARGET_CORE_FRACTION else 1


if __name__ == "__main__":
    sys.exit(main())
