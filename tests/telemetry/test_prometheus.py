"""Remote energy from a REAL Prometheus (Debian's package) scraping a test exporter with known power profiles.

One Prometheus per test session scrapes, every 1 s, two jobs of `tests/fakes/energy_exporter.py`: `node`
(DCGM GPU energy counter and power gauges, node_exporter RAPL package and DRAM counters, a Kepler node counter
that RAPL must win over, a package counter the test resets) and `pod` (a Kepler container's dynamic and idle
counters, and a node counter the container must win over). The truth is each profile's exact integral.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time

import pytest

from envirollm_core.benchmark.presets import Prompt
from envirollm_core.benchmark.runner import BenchmarkConfig, run_benchmark
from envirollm_core.errors import UsageError
from envirollm_core.settings import Settings, save_settings
from envirollm_core.store import Store
from envirollm_core.telemetry.measurement import EnergyMeter
from envirollm_core.telemetry.prometheus import (
    FAMILY_BY_METRIC,
    PrometheusMeter,
    Series,
    counter_energy,
    parse_target,
)
from tests.fakes.energy_exporter import (
    PROMETHEUS_BINARY,
    EnergyExporter,
    ExportedSeries,
    PowerProfile,
    bursty,
    start_prometheus,
    wait_for_samples,
)
from tests.fakes.fixtures import serve  # noqa: F401  (pytest fixture)
from tests.fakes.scripted_server import Reply, TokenScript, json_reply, openai_routes, openai_stream

pytestmark = pytest.mark.skipif(not os.path.exists(PROMETHEUS_BINARY), reason="Debian's prometheus is not installed")

NODE = 'job="node"'
POD = 'job="pod"'
MODEL = "remote-model"
WINDOW_S = 20.0


def _series(metric: str, labels: dict[str, str], profile: PowerProfile, **kwargs) -> ExportedSeries:
    return ExportedSeries(metric, labels, profile, **kwargs)


GPU0 = _series("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", {"gpu": "0"}, PowerProfile(250.0), units_per_joule=1000.0)
GPU0_GAUGE = _series("DCGM_FI_DEV_POWER_USAGE", {"gpu": "0"}, PowerProfile(999.0), kind="gauge")  # the counter wins
GPU1_GAUGE = _series("DCGM_FI_DEV_POWER_USAGE", {"gpu": "1"}, bursty(150.0, 30.0), kind="gauge")  # no counter: integrated
PACKAGE0 = _series("node_rapl_package_joules_total", {"index": "0"}, bursty(60.0, 40.0))
PACKAGE1 = _series("node_rapl_package_joules_total", {"index": "1"}, PowerProfile(40.0))  # reset inside the window
DRAM0 = _series("node_rapl_dram_joules_total", {"index": "0"}, PowerProfile(8.0))
KEPLER_NODE = _series("kepler_node_package_joules_total", {"package": "0", "mode": "dynamic"}, PowerProfile(777.0))
VLLM_DYNAMIC = _series("kepler_container_joules_total", {"container_name": "vllm", "mode": "dynamic"}, bursty(50.0, 30.0))
VLLM_IDLE = _series("kepler_container_joules_total", {"container_name": "vllm", "mode": "idle"}, PowerProfile(10.0))
POD_NODE = _series("kepler_node_package_joules_total", {"package": "0", "mode": "dynamic"}, PowerProfile(55.0))

NODE_COMPONENTS = {"gpu:0": [GPU0], "gpu:1": [GPU1_GAUGE], "cpu:package-0": [PACKAGE0], "cpu:package-1": [PACKAGE1],
                   "dram:0": [DRAM0]}
POD_COMPONENTS = {"container:vllm": [VLLM_DYNAMIC, VLLM_IDLE]}


@pytest.fixture(scope="session")
def exporters():
    node = EnergyExporter([GPU0, GPU0_GAUGE, GPU1_GAUGE, PACKAGE0, PACKAGE1, DRAM0, KEPLER_NODE]).start()
    pod = EnergyExporter([VLLM_DYNAMIC, VLLM_IDLE, POD_NODE], t0=node.t0).start()
    yield node, pod
    node.stop()
    pod.stop()


@pytest.fixture(scope="session")
def prometheus(exporters, tmp_path_factory):
    node, pod = exporters
    running = start_prometheus(tmp_path_factory.mktemp("prometheus"), {"node": node.address, "pod": pod.address})
    try:
        wait_for_samples(running.url, NODE, 3)
        wait_for_samples(running.url, POD, 3)
        yield running
    finally:
        running.stop()


def _truth_j(exporter: EnergyExporter, members: list[ExportedSeries], start: float, end: float) -> float:
    return sum(exporter.true_energy_j(s, start, end) for s in members)


# --- against the real Prometheus ------------------------------------------------------------------


def test_a_20_s_window_is_within_2_percent_for_every_component_and_the_uncertainty_covers_the_error(
    prometheus, exporters
):
    node, pod = exporters
    with PrometheusMeter(parse_target(prometheus.energy_from, NODE)) as node_meter, \
            PrometheusMeter(parse_target(prometheus.energy_from, POD)) as pod_meter:
        node_meter.begin_window("w")
        pod_meter.begin_window("w")
        time.sleep(WINDOW_S / 2)
        node.reset(PACKAGE1)  # the exporter restarts that counter from 0 mid-window
        time.sleep(WINDOW_S / 2)
        measured = {"node": node_meter.end_window("w"), "pod": pod_meter.end_window("w")}

    report = []
    for key, exporter, expected in (("node", node, NODE_COMPONENTS), ("pod", pod, POD_COMPONENTS)):
        measurement = measured[key]
        start, end = measurement.start_unix_time, measurement.start_unix_time + measurement.duration_s
        assert {c.component for c in measurement.components} == set(expected)  # Kepler's node counter is not added
        total_error_j = 0.0
        for component in measurement.components:
            truth_j = _truth_j(exporter, expected[component.component], start, end)
            measured_j = component.energy_wh * 3600
            report.append(f"{component.component} {measured_j:.1f} J vs {truth_j:.1f} J "
                          f"({(measured_j - truth_j) / truth_j:+.2%}) {component.note}")
            assert abs(measured_j - truth_j) <= 0.02 * truth_j, report[-1]
            total_error_j += measured_j - truth_j
        assert abs(total_error_j) <= measurement.energy_uncertainty_wh * 3600, report
    by_name = {c.component: c for c in measured["node"].components}
    assert by_name["gpu:0"].source == "prometheus:dcgm" and "counter" in by_name["gpu:0"].note
    assert "gauge integrated" in by_name["gpu:1"].note
    assert by_name["cpu:package-0"].source == by_name["dram:0"].source == "prometheus:rapl"
    assert "1 counter reset(s)" in by_name["cpu:package-1"].note
    assert measured["pod"].components[0].source == "prometheus:kepler"
    print("\n".join(report))  # the figures docs/ENERGY.md quotes (pytest -s)


def _benchmark_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENVIROLLM_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "envirollm_core", *args], capture_output=True, text=True,
                          timeout=180, env=env)


def test_a_benchmark_with_energy_from_stores_the_remote_components_only_never_the_credentials(
    prometheus, serve, tmp_path  # noqa: F811
):
    server = serve(openai_routes([MODEL], openai_stream(MODEL, TokenScript([f"t{i} " for i in range(8)], 0.02, 200.0))))
    db = tmp_path / "runs.duckdb"
    with_credentials = prometheus.energy_from.replace("prometheus://", "prometheus://ops:hunter2-secret@")
    result = _benchmark_cli(
        "benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--prompt", "hello", "--repeat", "3",
        "--warmup", "0", "--idle-s", "1", "--judge", "none", "--db", str(db), "--json",
        "--energy-from", with_credentials, "--energy-selector", NODE, tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert len(runs) == 3 and all(run["status"] == "ok" for run in runs)
    for run in runs:
        assert {c["component"] for c in run["components"]} == set(NODE_COMPONENTS)  # no local cpu, ram or gpu
        assert all(c["source"].startswith("prometheus:") for c in run["components"])
        assert all("measured at batch level" in c["note"] and "shared by completion tokens (8 of 24)" in c["note"]
                   for c in run["components"])
        assert run["energy_wh"] > 0 and run["energy_uncertainty_wh"] > 0
        assert run["energy_per_token_wh"] == pytest.approx(run["energy_wh"] / 8)
    assert runs[0]["energy_wh"] == pytest.approx(runs[2]["energy_wh"])  # equal tokens, equal shares
    stored = {run.id: run for run in Store(db).runs()}
    for run in runs:  # the shares were written back to the runs stored as each finished
        assert stored[run["id"]].energy_wh == pytest.approx(run["energy_wh"])
        assert stored[run["id"]].energy_uncertainty_wh == pytest.approx(run["energy_uncertainty_wh"])
        assert {c.component for c in stored[run["id"]].components} == set(NODE_COMPONENTS)
        assert stored[run["id"]].environment["energy_from"] == f"{prometheus.energy_from} {{{NODE}}}"
    assert "hunter2" not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or b"hunter2" not in path.read_bytes(), path


class _StopPrometheusAfterFirstRun:
    def __init__(self, prometheus) -> None:
        self.prometheus = prometheus

    def started(self, total_runs: int) -> None: ...

    def phase(self, text: str) -> None: ...

    def run_done(self, run) -> None:
        self.prometheus.stop()


def test_prometheus_stopped_mid_batch_leaves_the_later_runs_unmeasured_with_the_reason(
    exporters, serve, tmp_path  # noqa: F811
):
    node, _ = exporters
    own = start_prometheus(tmp_path / "prometheus", {"node": node.address})
    try:
        wait_for_samples(own.url, NODE, 3)
        slow = TokenScript([f"t{i} " for i in range(10)], ttft_s=0.1, tokens_per_s=2.0)  # 4.6 s: measured alone
        server = serve(openai_routes([MODEL], openai_stream(MODEL, slow)))
        from envirollm_core.backends.openai_compat import OpenAIBackend

        store = Store(tmp_path / "runs.duckdb")
        config = BenchmarkConfig(models=(MODEL,), prompts=(Prompt("hello"),), repeat=2, warmup=0, idle_s=1.0)
        with OpenAIBackend(f"{server.url}/v1") as backend, PrometheusMeter(parse_target(own.energy_from, NODE)) as meter:
            batch = run_benchmark(backend, config, sampler=meter, store=store, progress=_StopPrometheusAfterFirstRun(own))
    finally:
        own.stop()
    first, second = sorted(Store(tmp_path / "runs.duckdb").runs(), key=lambda run: run.repeat_index)
    assert [run.status for run in batch.runs] == ["ok", "ok"] and first.status == second.status == "ok"
    assert first.energy_wh > 0 and {c.source for c in first.components} == {"prometheus:dcgm", "prometheus:rapl"}
    assert "batch level" not in first.components[0].note
    assert second.energy_wh is None and second.energy_uncertainty_wh is None
    assert {c.component for c in second.components} == set(NODE_COMPONENTS)
    assert all(c.source == "unmeasured" and "cannot be reached" in c.note for c in second.components)


def test_a_wrong_selector_gives_unmeasured_runs_that_say_why(prometheus, serve, tmp_path):  # noqa: F811
    server = serve(openai_routes([MODEL], openai_stream(MODEL, TokenScript(["a ", "b "], 0.01, 100.0))))
    from envirollm_core.backends.openai_compat import OpenAIBackend

    store = Store(tmp_path / "runs.duckdb")
    config = BenchmarkConfig(models=(MODEL,), prompts=(Prompt("hello"),), repeat=2, warmup=0, idle_s=0.0)
    with OpenAIBackend(f"{server.url}/v1") as backend, \
            PrometheusMeter(parse_target(prometheus.energy_from, 'instance="gpu-box:9400"')) as meter:
        batch = run_benchmark(backend, config, sampler=meter, store=store)
    stored = store.runs()
    assert len(stored) == 2 and all(run.status == "ok" and run.energy_wh is None for run in stored)
    assert batch.failed == 0
    (component,) = stored[0].components
    assert component.source == "unmeasured"
    assert 'no energy series matching {instance="gpu-box:9400"}' in component.note


def test_a_prometheus_that_does_not_answer_in_time_gives_unmeasured_not_an_error():
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with PrometheusMeter(parse_target(f"prometheus://127.0.0.1:{port}", NODE), timeout_s=0.5) as meter:
            meter.begin_window("w")
            measurement = meter.end_window("w")
    assert measurement.energy_wh is None
    assert "did not answer within 0.5 s" in measurement.components[0].note
    assert isinstance(meter, EnergyMeter) and meter.description.startswith(f"prometheus://127.0.0.1:{port} ")


def test_a_server_that_is_not_prometheus_gives_unmeasured_with_the_reason(serve):  # noqa: F811
    bogus = {"status": "success", "data": {"resultType": "matrix",
                                           "result": [{"metric": {"__name__": "node_rapl_dram_joules_total"}, "values": "x"}]}}
    for reply, reason in ((Reply(parts=[(0.0, b"<html>not here</html>")], content_type="text/html"), "without its JSON"),
                          (json_reply(bogus), "a matrix that is not as documented")):
        server = serve({("GET", "/api/v1/query"): reply})
        with PrometheusMeter(parse_target(server.url.replace("http://", "prometheus://"))) as meter:
            meter.begin_window("w")
            measurement = meter.end_window("w")
        assert measurement.energy_wh is None and reason in measurement.components[0].note


def test_recent_power_for_the_monitor_page(prometheus):
    with PrometheusMeter(parse_target(prometheus.energy_from, NODE)) as meter:
        rows = meter.recent_power(6)
    gpu = [row.watts for row in rows if row.component == "gpu:0"]
    # 250 W steady, from the counter's rise over each scrape interval; one scrape delayed on a busy machine moves one
    # figure by its delay / 1 s, so the median is held tighter than each
    assert len(gpu) >= 3 and all(abs(watts - 250.0) < 25 for watts in gpu)
    assert abs(statistics.median(gpu) - 250.0) < 2.5
    assert all(row.t_s <= 0 for row in rows) and {row.source for row in rows} == {"prometheus:dcgm", "prometheus:rapl"}


# --- pure logic -----------------------------------------------------------------------------------


def test_counter_rise_interpolates_at_the_edges_and_handles_a_reset():
    family = FAMILY_BY_METRIC["node_rapl_package_joules_total"]
    # 10 W steady, sampled every 1 s; the counter restarts from 0 at t = 4.5
    series = Series(family, {}, (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0), (100.0, 110.0, 120.0, 130.0, 140.0, 5.0, 15.0))
    result = counter_energy(series, 0.5, 5.5)
    assert result.energy_j == pytest.approx(50.0)
    assert result.resets == 1
    assert result.uncertainty_j == pytest.approx(5.0 + 5.0 + 10.0)  # each edge's half-step at f=0.5, the reset interval
    missing = counter_energy(series, 0.5, 6.5)
    assert missing.energy_j is None and "no sample after the window's end" in missing.problem


def test_targets_parse_keep_credentials_out_of_what_is_shown_and_refuse_bad_input():
    target = parse_target("prometheus://ops:secret@gpu-box:9090", '{instance="gpu-box:9400", job=~"dcgm.*"}')
    assert target.base_url == "http://gpu-box:9090" and target.auth == ("ops", "secret")
    assert target.display == 'prometheus://gpu-box:9090 {instance="gpu-box:9400", job=~"dcgm.*"}'
    assert "secret" not in repr(target)
    assert parse_target("prometheus+https://prom.example/prom").base_url == "https://prom.example/prom"
    for url, selector in (("http://gpu-box:9090", None), ("prometheus://:9090", None), ("prometheus://h:99999", None),
                          ("prometheus://h:9090", "instance=gpu-box"), ("prometheus://h:9090", 'x="1"; drop')):
        with pytest.raises(UsageError):
            parse_target(url, selector)


def test_settings_save_a_default_source_but_never_its_credentials():
    save_settings(Settings(energy_from="prometheus://gpu-box:9090", energy_selector='instance="gpu-box:9400"'))
    with pytest.raises(UsageError, match="credentials are never stored"):
        save_settings(Settings(energy_from="prometheus://ops:secret@gpu-box:9090"))


def test_the_cli_refuses_a_bad_energy_source_in_one_line(tmp_path):
    result = _benchmark_cli("benchmark-openai", "--model", "m", "--energy-from", "prometheus://h:9090",
                            "--energy-selector", "not a selector", tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--energy-selector 'not a selector' is not a list of Prometheus label matchers" in result.stderr


def test_the_saved_default_is_used_when_no_flag_is_given(serve, tmp_path, monkeypatch):  # noqa: F811
    server = serve(openai_routes([MODEL], openai_stream(MODEL, TokenScript(["a "], 0.01, 100.0))))
    home = tmp_path / "home"
    monkeypatch.setenv("ENVIROLLM_HOME", str(home))
    save_settings(Settings(energy_from="prometheus://127.0.0.1:9", energy_selector=NODE))  # nothing listens there
    result = _benchmark_cli("benchmark-openai", "--url", f"{server.url}/v1", "--model", MODEL, "--prompt", "x",
                            "--repeat", "1", "--warmup", "0", "--idle-s", "0", "--judge", "none", "--json",
                            tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = json.loads(result.stdout)
    assert run["status"] == "ok" and run["energy_wh"] is None
    assert "prometheus://127.0.0.1:9" in result.stderr and "cannot be reached" in run["components"][0]["note"]




# --- the pages ------------------------------------------------------------------------------------


def _page(name: str):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app_pages" / name), default_timeout=60)


def _clean(app) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def test_settings_page_saves_the_default_source_and_refuses_credentials(prometheus, isolated_home):
    app = _page("settings.py").run()
    inputs = {t.label: t for t in app.text_input}
    inputs["Default energy source"].set_value("prometheus://ops:secret@127.0.0.1:9090")
    next(b for b in app.button if b.label == "Save the settings").click().run()
    assert "credentials are never stored" in app.error[0].value
    assert not (isolated_home / "settings.json").exists()
    inputs = {t.label: t for t in app.text_input}
    inputs["Default energy source"].set_value(prometheus.energy_from)
    inputs["Default energy selector (Prometheus label matchers)"].set_value(NODE)
    next(b for b in app.button if b.label == "Save the settings").click().run()
    _clean(app)
    saved = json.loads((isolated_home / "settings.json").read_text())
    assert (saved["energy_from"], saved["energy_selector"]) == (prometheus.energy_from, NODE)


def test_monitor_page_shows_the_remote_machines_power(prometheus, isolated_home):
    import polars as pl
    import pyarrow as pa

    save_settings(Settings(energy_from=prometheus.energy_from, energy_selector=NODE))
    app = _page("monitor.py").run()
    _clean(app)
    assert "Remote machine (from Prometheus)" in [h.value for h in app.header]
    (chart,) = [c for c in app.get("vega_lite_chart") if json.loads(c.proto.spec).get("title") == "Remote power"]
    rows = pl.concat([pl.from_arrow(pa.ipc.open_stream(d.data.data).read_all()) for d in chart.proto.datasets])
    assert set(rows["series"]) == {f"{name} ({'prometheus:dcgm' if name.startswith('gpu') else 'prometheus:rapl'})"
                                   for name in NODE_COMPONENTS}
    gpu0 = rows.filter(pl.col("series") == "gpu:0 (prometheus:dcgm)")["value"]
    assert abs(gpu0.median() - 250.0) < 2.5


def test_benchmark_page_measures_from_the_saved_prometheus(prometheus, serve, isolated_home):  # noqa: F811
    save_settings(Settings(energy_from=prometheus.energy_from, energy_selector=NODE))
    server = serve(openai_routes(["m"], lambda request: openai_stream("m", TokenScript(["a ", "b "], 0.01, 100.0))))
    app = _page("benchmark.py").run()
    app.radio[0].set_value("openai").run()
    inputs = {t.label: t for t in app.text_input}
    assert inputs["Energy from"].value == prometheus.energy_from
    assert inputs["Energy selector (Prometheus label matchers)"].value == NODE
    inputs["Server URL"].set_value(f"{server.url}/v1")
    inputs["Model name(s), comma-separated"].set_value("m")
    numbers = {n.label: n for n in app.number_input}
    numbers["Repetitions"].set_value(2)
    numbers["Warm-up runs per model"].set_value(0)
    numbers["Idle baseline (s)"].set_value(0.0)
    next(r for r in app.radio if r.label == "Quality judge").set_value("heuristic")
    app.run()
    next(b for b in app.button if b.label == "Start the benchmark").click().run()
    deadline = time.monotonic() + 60
    while not app.success and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    _clean(app)
    assert "2 runs stored" in app.success[0].value
    runs = Store(isolated_home / "envirollm.duckdb").runs()
    for run in runs:
        assert {c.component for c in run.components} == set(NODE_COMPONENTS), run.components
        assert run.energy_wh > 0, run.components
