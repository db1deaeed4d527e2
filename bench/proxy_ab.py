"""A/B of two proxy versions: direct, proxy from checkout A, proxy from checkout B, in rotation, in one run.

bench/proxy_overhead.py's set-up (its upstream, its clients at a barrier), with two `envirollm proxy`
processes, each from its own checkout, so that machine load hits the direct path and both versions alike.
Prints the median TTFT of each and what each proxy adds.

Run: `PYTHONPATH=. python bench/proxy_ab.py STREAMS ROUNDS TOKENS CHECKOUT_A CHECKOUT_B`
(e.g. `16 12 300 /work/main .`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile

from bench.proxy_overhead import _measure, _serve, case_pool


def start(upstream: str, db: str, path: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": path}
    p = subprocess.Popen([sys.executable, "-m", "envirollm_core", "proxy", "--upstream", upstream, "--listen", "127.0.0.1:0", "--json", "--db", db],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=path)
    text = ""
    while True:
        text += p.stdout.readline()
        try:
            return p, json.loads(text)["url"]
        except ValueError:
            continue


if __name__ == "__main__":
    streams, rounds, tokens = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    checkout_a, checkout_b = (os.path.abspath(path) for path in sys.argv[4:6])
    q: multiprocessing.Queue = multiprocessing.Queue()
    srv = multiprocessing.Process(target=_serve, args=(q,), daemon=True)
    srv.start()
    up = f"http://127.0.0.1:{q.get()}"
    home = tempfile.mkdtemp()
    os.environ["ENVIROLLM_HOME"] = home
    pa, ua = start(up, home + "/a.duckdb", checkout_a)
    pb, ub = start(up, home + "/b.duckdb", checkout_b)
    urls = {"direct": up, "A": ua, "B": ub}
    res = {k: [] for k in urls}
    rate = 5000.0 / streams
    with case_pool(streams) as pool:
        for u in urls.values():  # warm the workers and both proxies
            list(pool.map(_measure, [(u, 1000.0, 20, "go", False)] * streams))
        names = list(urls)
        for r in range(rounds):
            order = names[r % 3:] + names[:r % 3]
            for n in order:
                res[n].extend(t for t, _, _ in pool.map(_measure, [(urls[n], rate, tokens, "go", False)] * streams))
    for process in (pa, pb, srv):
        process.terminate()
    d = statistics.median(res["direct"])
    print(f"{streams} streams, {rounds} rounds, load {os.getloadavg()[0]:.1f}: direct {d*1000:.2f} ms; "
          + "; ".join(f"{n} {statistics.median(res[n])*1000:.2f} ms ({(statistics.median(res[n]) - d)*1000:+.2f})" for n in ("A", "B")))
