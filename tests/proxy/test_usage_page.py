"""The Usage page as a person sees it: real use per model with its routing decisions, and the proxy's controls."""

from __future__ import annotations

from pathlib import Path

import httpx
from streamlit.testing.v1 import AppTest

from envirollm_core.proxy.server import MeteringProxy, ProxyConfig, app_proxy, stop_app_proxy
from envirollm_core.store import Store
from tests.fakes.scripted_server import openai_routes
from tests.fakes.proxy import CANDIDATES, answering, auto_request, benchmark_runs, wait_recorded

USAGE_PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "usage.py")


def texts(app: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("info", "success", "caption", "markdown") for element in app.get(kind))


def test_the_page_shows_real_use_and_why_each_request_went_where_it_did(serve, isolated_home):
    store = Store()  # the app's database, in this test's ENVIROLLM_HOME
    store.add_runs(benchmark_runs())
    upstream = serve(openai_routes(list(CANDIDATES), answering([])))
    with MeteringProxy(ProxyConfig(upstream.url, port=0), store=store, log=lambda line: None) as proxy:
        auto_request(proxy.url)
        wait_recorded(proxy, 1)

    app = AppTest.from_file(USAGE_PAGE, default_timeout=60).run()
    assert not app.exception and not app.error
    usage_table, requests_table = app.table[0].value, app.dataframe[0].value  # the first drawn as text
    assert usage_table["model"].to_list() == ["small-1b"] and usage_table["requests"].to_list() == ["1"]
    assert requests_table["routed to"].to_list() == ["small-1b"]
    assert "quality >= 70" in requests_table["why"][0]
    assert [metric.label for metric in app.metric][:2] == ["Requests", "Energy"]


def test_the_proxy_starts_from_the_page_and_read_only_mode_refuses_it(serve, monkeypatch, isolated_home):
    upstream = serve(openai_routes(list(CANDIDATES), answering([])))
    app = AppTest.from_file(USAGE_PAGE, default_timeout=60).run()
    assert "No request through the proxy" in texts(app)
    app.text_input[0].input(upstream.url)
    app.radio[1].set_value("openai")
    app.number_input[0].set_value(0)
    app.button[0].click().run()
    try:
        running = app_proxy()
        assert running is not None and f"Running at {running.url}" in texts(app)
        assert httpx.get(running.url + "/v1/models").status_code == 200
    finally:
        stop_app_proxy()

    monkeypatch.setenv("ENVIROLLM_READ_ONLY", "1")
    app = AppTest.from_file(USAGE_PAGE, default_timeout=60).run()
    assert "cannot be started from here" in texts(app)
    assert not app.button  # no start button to press
