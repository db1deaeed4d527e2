"""DNS rebinding in a real browser: Chromium resolves `attacker.test` to 127.0.0.1 (a host-resolver rule, as a
rebinding DNS server would), so the attacker's page is same-origin with itself and Streamlit's Origin check
passes; the app must still run no page for that Host."""

from __future__ import annotations

from pathlib import Path

import pytest

from envirollm_core.host_check import ALLOWED_HOSTS_ENV, host_refusal
from envirollm_core.store import Store
from tests.fakes.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fakes.served_app import streamlit_app
from tests.fakes.runs import full_run

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000
RULES = "MAP attacker.test 127.0.0.1, MAP envirollm.lan 127.0.0.1"


def test_host_names_allowed_and_refused(monkeypatch):
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "envirollm.lan, proxy.example:443")
    for host in ("localhost:8501", "127.0.0.1:8501", "[::1]:8501", "app.localhost", "ENVIROLLM.LAN.", "proxy.example"):
        assert host_refusal(host, "127.0.0.1") is None, host
    assert host_refusal("attacker.test:8501", "127.0.0.1") is not None
    assert host_refusal("attacker.test", None) is not None  # listening on the LAN changes nothing for other names
    import socket
    assert host_refusal(socket.gethostname(), None) is None  # own name, served on the LAN
    assert host_refusal(socket.gethostname(), "127.0.0.1") is not None  # but not when served on the loopback only


def test_a_rebound_name_gets_no_page_in_chromium(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    run = full_run()
    Store(home / "envirollm.duckdb").add_run(run)
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "envirollm.lan")
    with streamlit_app(home, tmp_path / "streamlit.log") as url, sync_playwright() as playwright:
        port = url.rsplit(":", 1)[1]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[*CHROMIUM_ARGS, f"--host-resolver-rules={RULES}"])
        try:
            page = browser.new_page()
            page.goto(f"http://attacker.test:{port}/results")
            page.get_by_text("does not answer to the name 'attacker.test'", exact=False).wait_for(timeout=TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "refused.png"))
            assert page.get_by_role("heading", name="Results", exact=True).count() == 0
            assert page.get_by_role("button", name="Delete").count() == 0
            assert page.get_by_text(run.id[:8], exact=False).count() == 0  # nothing stored is shown
            for name in ("localhost", "envirollm.lan"):  # the names it was started for, one configured
                page.goto(f"http://{name}:{port}/results")
                page.get_by_role("heading", name="Results", exact=True).wait_for(timeout=TIMEOUT_MS)
                assert page.get_by_text("does not answer to the name", exact=False).count() == 0
        finally:
            browser.close()
    assert [stored.id for stored in Store(home / "envirollm.duckdb").runs()] == [run.id]
