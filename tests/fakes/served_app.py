"""A real `streamlit run` of the app on a free loopback port, for the browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from envirollm_core.backends.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90


@contextmanager
def streamlit_app(home: Path, log: Path, *extra_args: str) -> Iterator[str]:
    """Serve the app with `home` as its ENVIROLLM_HOME, its output kept in `log`; yields its URL."""
    port = free_port("127.0.0.1")
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", *extra_args],
            cwd=REPO_ROOT, env={**os.environ, "ENVIROLLM_HOME": str(home)}, stdout=sink, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"streamlit did not start: {log.read_text(errors='replace')[-2000:]}")
