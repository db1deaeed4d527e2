"""The router's choice from stored results, the energy shared among overlapping requests, and `envirollm usage`."""

from __future__ import annotations

import json

import httpx
import pytest

from envirollm_core.cli import main
from envirollm_core.proxy.energy import RequestMeter, _Request
from envirollm_core.proxy.usage import parse_since
from envirollm_core.records import ComponentEnergy
from envirollm_core.errors import UsageError
from tests.fakes.proxy import CANDIDATES, answering, auto_request, benchmark_runs, wait_recorded
from tests.fakes.scripted_server import openai_routes


def test_auto_goes_to_the_cheapest_model_above_the_floor_and_the_reason_is_recorded(serve, start_proxy, store):
    store.add_runs(benchmark_runs())
    seen: list[str] = []
    upstream = serve(openai_routes(list(CANDIDATES), answering(seen)))
    proxy = start_proxy(upstream.url, quality_floor=70)
    assert auto_request(proxy.url).status_code == 200
    assert seen == ["small-1b"]
    (run,) = wait_recorded(proxy, 1)
    route = run.live_detail["route"]
    assert (run.model, route["requested"], route["chosen"], route["task"]) == ("small-1b", "envirollm/auto", "small-1b", "code-generation")
    assert "quality >= 70" in route["reason"] and "small-1b" in route["reason"]


def test_a_lower_floor_lets_the_cheaper_model_in_and_unlisted_models_are_never_chosen(serve, start_proxy, store):
    store.add_runs(benchmark_runs())
    seen: list[str] = []
    upstream = serve(openai_routes(["big-8b", "small-1b"], answering(seen)))  # tiny-135m is not served here
    proxy = start_proxy(upstream.url, quality_floor=30)
    auto_request(proxy.url)
    assert seen == ["small-1b"]


def test_with_no_result_for_the_task_auto_goes_to_the_default(serve, start_proxy, store):
    store.add_runs(benchmark_runs())
    seen: list[str] = []
    upstream = serve(openai_routes(list(CANDIDATES), answering(seen)))
    proxy = start_proxy(upstream.url, default_model="big-8b")
    auto_request(proxy.url, task="summarization")
    assert seen == ["big-8b"]
    (run,) = wait_recorded(proxy, 1)
    assert "no stored results for task 'summarization'" in run.live_detail["route"]["reason"]


def test_with_no_result_and_no_default_auto_is_refused_in_one_clear_line(serve, start_proxy):
    seen: list[str] = []
    upstream = serve(openai_routes(list(CANDIDATES), answering(seen)))
    proxy = start_proxy(upstream.url)
    response = auto_request(proxy.url)
    assert response.status_code == 400 and "could not be routed" in response.json()["error"]["message"]
    assert seen == []
    (run,) = wait_recorded(proxy, 1)
    assert run.status == "failed" and "not routed" in run.error


def test_route_all_routes_named_models_too(serve, start_proxy, store):
    store.add_runs(benchmark_runs())
    seen: list[str] = []
    upstream = serve(openai_routes(list(CANDIDATES), answering(seen)))
    proxy = start_proxy(upstream.url, route_all=True)
    body = {"model": "big-8b", "messages": [{"role": "user", "content": "x"}], "stream": True}
    httpx.post(proxy.url + "/v1/chat/completions", json=body, headers={"X-EnviroLLM-Task": "code-generation"})
    assert seen == ["small-1b"]


class ScriptedSampler:
    """Cumulative energy per read, as a sampler's window gives it: one window, reads at each boundary."""

    def __init__(self, cumulative_wh: list[float]) -> None:
        self.readings = iter(cumulative_wh)
        self.open: list[str] = []

    def begin_window(self, name: str, pids=()) -> None:
        self.open.append(name)

    def _measure(self):
        from types import SimpleNamespace

        value = next(self.readings)
        return SimpleNamespace(components=(ComponentEnergy("cpu", value, "counter"), ComponentEnergy("gpu:0", None, "unmeasured")))

    def read_window(self, name: str):
        return self._measure()

    def end_window(self, name: str):
        self.open.remove(name)
        return self._measure()


def test_overlapping_requests_share_each_segment_by_their_chunks():
    # a starts (window opens at 0); b starts at cumulative 1.0; a ends at 4.0; b ends at 5.0
    sampler = ScriptedSampler([1.0, 4.0, 5.0])
    meter = RequestMeter(sampler)
    a, b = _Request(), _Request()
    meter.start("a", a)
    a.chunks += 2  # a alone: segment 0..1 Wh all to a
    meter.start("b", b)
    a.chunks += 1
    b.chunks += 2  # together: 3 Wh shared 1:2
    a_energy = meter.finish("a")
    b_energy = meter.finish("b")  # b alone: 1 Wh, with no chunk: all to b
    assert a_energy.energy_wh == pytest.approx(1.0 + 1.0)
    assert b_energy.energy_wh == pytest.approx(2.0 + 1.0)
    assert a_energy.energy_wh + b_energy.energy_wh == pytest.approx(5.0)  # nothing counted twice
    assert a_energy.overlapped == 1 and sampler.open == []
    gpu = next(c for c in a_energy.components if c.component == "gpu:0")
    assert gpu.energy_wh is None and gpu.source == "unmeasured"  # not measured stays null, never 0


def test_since_durations():
    assert parse_since("7d").days == 7 and parse_since("12h").total_seconds() == 43200
    with pytest.raises(UsageError):
        parse_since("soon")


def test_usage_prices_real_use_against_the_recommended_configuration(serve, start_proxy, store, capsys):
    store.add_runs(benchmark_runs())
    seen: list[str] = []
    upstream = serve(openai_routes(list(CANDIDATES), answering(seen)))
    proxy = start_proxy(upstream.url)
    for task in ("code-generation", None):
        body = {"model": "big-8b", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"X-EnviroLLM-Client": "cli-test"} | ({"X-EnviroLLM-Task": task} if task else {})
        httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers)
    auto_request(proxy.url)
    wait_recorded(proxy, 3)
    proxy.stop()
    capsys.readouterr()

    assert main(["usage", "--db", str(store.path), "--by", "model", "--json", "--grid-g-per-kwh", "500"]) == 0
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"big-8b", "small-1b"}  # the benchmark runs are not real use
    assert rows["big-8b"]["requests"] == 2 and rows["big-8b"]["comparable_requests"] == 0  # not routed: no task known
    assert rows["small-1b"]["routed_requests"] == 1 and rows["small-1b"]["comparable_requests"] == 1
    assert rows["small-1b"]["recommended_energy_wh"] == pytest.approx(2 * 0.001)  # 2 tokens at the pick's Wh/token
    assert rows["big-8b"]["co2e_g"] == pytest.approx(rows["big-8b"]["energy_wh"] / 1000 * 500)

    assert main(["usage", "--db", str(store.path), "--by", "client"]) == 0
    captured = capsys.readouterr()
    assert "cli-test" in captured.out and "requests" in captured.out
    assert main(["usage", "--db", str(store.path), "--since", "yesterday"]) == 2
    assert "--since must be" in capsys.readouterr().err


def test_the_proxy_command_refuses_read_only_mode_and_bad_input_in_one_line(monkeypatch, capsys, closed_port):
    for args, expected in (
        (["proxy", "--upstream", "localhost:11434"], "not an http(s) URL"),
        (["proxy", "--upstream", "http://127.0.0.1:9", "--listen", "nowhere"], "--listen must be HOST:PORT"),
        (["proxy", "--upstream", "http://127.0.0.1:9", "--quality-floor", "120"], "--quality-floor must be between"),
    ):
        assert main(args) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("envirollm: error: ") and expected in last, last
    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    assert main(["proxy", "--upstream", f"http://127.0.0.1:{closed_port}", "--listen", "127.0.0.1:0"]) == 2
    assert "read-only mode: starting the metering proxy" in capsys.readouterr().err
    assert main(["usage", "--json"]) == 0  # reading is allowed
    assert json.loads(capsys.readouterr().out)["rows"] == []
