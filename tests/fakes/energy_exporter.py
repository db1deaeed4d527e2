"""A Prometheus exporter on 127.0.0.1 that publishes DCGM-, node_exporter- and Kepler-shaped energy metrics
following known power profiles, and `start_prometheus`, which runs Debian's real Prometheus to scrape it.

Each series follows a `PowerProfile` whose integral is known exactly, so a test can hold a measured window to
the truth. Counters are published as the real exporters do: DCGM's `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` in mJ,
node_exporter's and Kepler's `*_joules_total` in J, each starting from a large value (a machine that has run for
a while); `reset()` restarts one from 0, as an exporter or driver restart does. Gauges (DCGM's
`DCGM_FI_DEV_POWER_USAGE`) publish the power now, in W. The text format is Prometheus's exposition format 0.0.4.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

PROMETHEUS_BINARY = "/usr/bin/prometheus"


@dataclass(frozen=True)
class PowerProfile:
    """`base_w` always, plus `burst_w` for the first `burst_s` of every `period_s` (0: steady)."""

    base_w: float
    burst_w: float = 0.0
    period_s: float = 1.0
    burst_s: float = 0.0

    def power_w(self, t: float) -> float:
        return self.base_w + (self.burst_w if self.burst_s and (t % self.period_s) < self.burst_s else 0.0)

    def energy_j(self, t: float) -> float:
        """The integral of the power from 0 to `t` seconds, exactly."""
        periods, into = divmod(t, self.period_s)
        return self.base_w * t + self.burst_w * (periods * self.burst_s + min(into, self.burst_s))


@dataclass
class ExportedSeries:
    metric: str
    labels: dict[str, str]
    profile: PowerProfile
    kind: str = "counter"  # or "gauge"
    units_per_joule: float = 1.0  # DCGM counts mJ
    start_j: float = 1_234_567.0
    reset_at_s: float | None = None  # profile time of the last reset: the counter counts from 0 since then

    def value(self, t: float) -> float:
        if self.kind == "gauge":
            return self.profile.power_w(t)
        if self.reset_at_s is None:
            return (self.start_j + self.profile.energy_j(t)) * self.units_per_joule
        return (self.profile.energy_j(t) - self.profile.energy_j(self.reset_at_s)) * self.units_per_joule

    def line(self, t: float) -> str:
        labels = ",".join(f'{key}="{value}"' for key, value in self.labels.items())
        return f"{self.metric}{{{labels}}} {self.value(t)!r}"


@dataclass
class EnergyExporter:
    series: list[ExportedSeries]
    t0: float = field(default_factory=time.time)  # profile time 0, unix seconds
    _server: ThreadingHTTPServer | None = None

    def elapsed(self, unix_time: float) -> float:
        return unix_time - self.t0

    def true_energy_j(self, series: ExportedSeries, start_unix: float, end_unix: float) -> float:
        return series.profile.energy_j(self.elapsed(end_unix)) - series.profile.energy_j(self.elapsed(start_unix))

    def reset(self, series: ExportedSeries) -> None:
        series.reset_at_s = self.elapsed(time.time())

    def metrics_text(self) -> str:
        t = self.elapsed(time.time())
        lines = []
        for metric in dict.fromkeys(s.metric for s in self.series):
            members = [s for s in self.series if s.metric == metric]
            lines.append(f"# TYPE {metric} {members[0].kind}")
            lines += [s.line(t) for s in members]
        return "\n".join(lines) + "\n"

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> EnergyExporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (http.server's name)
                body = exporter.metrics_text().encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningPrometheus:
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT

    @property
    def energy_from(self) -> str:
        return self.url.replace("http://", "prometheus://")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prometheus(directory: Path, jobs: dict[str, str], scrape_interval_s: float = 1.0) -> RunningPrometheus:
    """Debian's Prometheus on a free loopback port, scraping `jobs` (job name -> host:port) every interval;
    returns once it is ready."""
    if shutil.which(PROMETHEUS_BINARY) is None:
        raise RuntimeError(f"{PROMETHEUS_BINARY} is missing: apt-get install prometheus (.ci/run does)")
    directory.mkdir(parents=True, exist_ok=True)
    scrape = f"{scrape_interval_s:g}s"
    config = [f"global:\n  scrape_interval: {scrape}\n  scrape_timeout: {scrape}\nscrape_configs:"]
    for job, address in jobs.items():
        config.append(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']")
    (directory / "prometheus.yml").write_text("\n".join(config) + "\n")
    port = free_port()
    process = subprocess.Popen(
        [PROMETHEUS_BINARY, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(directory / "prometheus.log", "wb"),  # noqa: SIM115
    )
    running = RunningPrometheus(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(directory / 'prometheus.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{running.url}/-/ready", timeout=1).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    running.stop()
    raise RuntimeError("prometheus was not ready within 30 s")


def wait_for_samples(prometheus_url: str, selector: str, count: int, timeout_s: float = 30) -> None:
    """Until every series of `selector` holds `count` samples (the first scrapes have happened)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": f"{{{selector}}}[5m]"})
        result = response.json().get("data", {}).get("result")  # an error while the TSDB opens
        if result and all(len(item["values"]) >= count for item in result):
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} samples of {{{selector}}} after {timeout_s} s")


def bursty(base_w: float, burst_w: float) -> PowerProfile:
    """Bursts of a quarter of a 4 s period: never in step with a 1 s scrape."""
    return PowerProfile(base_w, burst_w, period_s=4.0, burst_s=1.0)
