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


def test_boundaries_at_one_instant_share_one_reading_and_split_as_one_at_a_time():
    # b and c start together at cumulative 1.0 (one reading, not two); a and b end together at 4.0; c at 5.0
    sampler = ScriptedSampler([1.0, 4.0, 5.0])
    meter = RequestMeter(sampler)
    a, b, c = _Request(), _Request(), _Request()
    meter.boundary([("a", a)], [])
    a.chunks += 2
    meter.boundary([("b", b), ("c", c)], [])
    a.chunks, b.chunks, c.chunks = a.chunks + 1, 1, 4  # together: 3 Wh shared 1:1:4
    ended = meter.boundary([], ["a", "b"])
    c_energy = meter.finish("c")  # c alone: 1 Wh
    assert next(sampler.readings, None) is None  # three readings for five boundaries
    assert ended["a"].energy_wh == pytest.approx(1.0 + 0.5)
    assert ended["b"].energy_wh == pytest.approx(0.5)
    assert c_energy.energy_wh == pytest.approx(2.0 + 1.0)
    assert sum(e.energy_wh for e in (*ended.values(), c_energy)) == pytest.approx(5.0)  # the window's energy, once
    assert ended["a"].overlapped == 2 and c_energy.overlapped == 2 and sampler.open == []

    # the same boundaries one reading each, readings equal at the instants that coincided: the same split
    sampler = ScriptedSampler([1.0, 1.0, 4.0, 4.0, 5.0])
    meter = RequestMeter(sampler)
    a, b, c = _Request(), _Request(), _Request()
    meter.start("a", a)
    a.chunks += 2
    meter.start("b", b)
    meter.start("c", c)
    a.chunks, b.chunks, c.chunks = a.chunks + 1, 1, 4
    one_by_one = {"a": meter.finish("a"), "b": meter.finish("b"), "c": meter.finish("c")}
    assert {k: e.energy_wh for k, e in one_by_one.items()} == pytest.approx(
        {"a": ended["a"].energy_wh, "b": ended["b"].energy_wh, "c": c_energy.energy_wh})


def test_the_recorder_hands_over_one_loop_turn_of_boundaries_as_one_reading(store):
    """Sixteen requests forwarded in one turn of the event loop: one reading of the window for their starts."""
    import asyncio
    from datetime import datetime, timezone

    from envirollm_core.proxy.server import Exchange, ProxyConfig, Recorder

    sampler = ScriptedSampler([float(n) for n in range(1, 40)])
    reads: list[str] = []
    read_window = sampler.read_window
    sampler.read_window = lambda name: reads.append(name) or read_window(name)  # type: ignore[method-assign]
    recorder = Recorder(ProxyConfig("http://127.0.0.1:9"), store, sampler, log=lambda _: None)
    exchanges = [Exchange(id=f"r{i}", method="POST", path="/v1/chat/completions", created_at=datetime.now(timezone.utc),
                          client=None, user_agent=None, request=None, model="m", status_code=200) for i in range(16)]

    async def one_turn(fn) -> None:
        for exchange in exchanges:
            fn(exchange)
        await asyncio.sleep(0.05)  # the loop's next turns: the hand-over runs

    asyncio.run(one_turn(lambda exchange: setattr(exchange, "counter", recorder.started(exchange.id))))
    asyncio.run(one_turn(recorder.finished))
    recorder.flush()
    recorder.close()
    assert sampler.open == [] and reads == []  # begin_window at the starts, end_window at the ends: no read between
    assert len(recorder.recorded) == 16
    assert sum(run.energy_wh for run in recorder.recorded) == pytest.approx(1.0)  # one segment, 1 Wh, shared by 16
    assert all(run.energy_wh == pytest.approx(1 / 16) for run in recorder.recorded)


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
