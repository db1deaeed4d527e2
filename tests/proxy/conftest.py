"""Fixtures for the proxy tests: a metering proxy in front of a scripted upstream, each with its own database."""

from __future__ import annotations

import pytest

from envirollm_core.proxy.server import MeteringProxy, ProxyConfig
from envirollm_core.store import Store
from tests.fakes.fixtures import closed_port, serve  # noqa: F401 - fixtures


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "proxy.duckdb")


@pytest.fixture
def proxy_logs() -> list[str]:
    return []


@pytest.fixture
def start_proxy(store, proxy_logs):
    """Start a metering proxy on a free loopback port in front of `upstream_url`; stopped after the test."""
    started: list[MeteringProxy] = []

    def start(upstream_url: str, **options) -> MeteringProxy:
        proxy = MeteringProxy(ProxyConfig(upstream_url, port=0, **options), store=store, log=proxy_logs.append)
        started.append(proxy.start())
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
