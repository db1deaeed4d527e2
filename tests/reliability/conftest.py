"""Shared helpers of the reliability tests: leak checks, the CLI as a user runs it, a server that restarts.

The scripted servers and their fixtures come from tests/fakes (imported, not copied); the browser
fixtures from tests/app/conftest.py.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from envirollm_core.errors import EnviroLLMError
from tests.app.conftest import browser, page  # noqa: F401  (pytest fixtures: headless Chromium)
from tests.fakes.served_app import streamlit_app
from tests.fakes.fixtures import closed_port, serve  # noqa: F401  (pytest fixtures)
from tests.fakes.scripted_server import Route, ScriptedServer

CLI = [sys.executable, "-m", "envirollm_core"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`envirollm ARGS` in a subprocess, as a user runs it (the test's ENVIROLLM_HOME is inherited)."""
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def run_cli_all(commands: Sequence[Sequence[str | bytes]], env: dict[str, str] | None = None,
                envs: Sequence[dict[str, str]] | None = None, timeout: float = 240,
                cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Several CLI commands at once (each CLI start costs seconds of imports on a loaded 2-core machine);
    `envs` gives each command its own extra environment. Arguments may be bytes (not valid UTF-8, say).
    `cwd`: where files a command writes by default (an export's default name) land."""
    extra = envs or [{}] * len(commands)
    started = [
        subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {}), **own}, cwd=cwd)
        for args, own in zip(commands, extra, strict=True)
    ]
    results = []
    for args, process in zip(commands, started, strict=True):
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess([*CLI, *args], process.returncode, stdout, stderr))
    return results


def assert_one_line_usage_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit 2, no traceback, and the last line on stderr is the error saying what was wrong: `envirollm: error:
    ...` from the core, or argparse's own `envirollm COMMAND: error: ...` (after its usage lines)."""
    assert result.returncode == 2, (result.args, result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines and re.match(r"envirollm( [\w-]+)?: error: ", lines[-1]), result.stderr[-2000:]
    for text in expected:
        assert text in lines[-1], (text, lines[-1])


def cli_in_process(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """`envirollm ARGS` through the same `main` in this process: seconds faster than a new interpreter,
    for checks where the process itself (argv bytes, signals, exit) is not the point."""
    from envirollm_core.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["envirollm", *args], code, out, err)


# -- nothing left behind ------------------------------------------------------------------------


@dataclass
class Leftovers:
    threads: list[threading.Thread] = field(default_factory=list)
    children: list[psutil.Process] = field(default_factory=list)


@contextmanager
def nothing_left_behind(grace_s: float = 5.0) -> Iterator[None]:
    """Fail if the block leaves a thread or a child process running (compared with before the block)."""
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + grace_s
    while True:
        left = Leftovers(
            [t for t in threading.enumerate() if t not in threads_before and t.is_alive()],
            [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before and _alive(p)],
        )
        if not (left.threads or left.children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left.threads, f"threads left behind: {[t.name for t in left.threads]}"
    assert not left.children, f"child processes left behind: {[p.pid for p in left.children]}"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class WindowLedger:
    """The real sampler, with a record of every energy window opened and closed through it."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.opened: list[str] = []
        self.closed: list[str] = []

    def begin_window(self, name: str, pids: Sequence[int] = ()) -> None:
        self.sampler.begin_window(name, pids=pids)
        self.opened.append(name)

    def end_window(self, name: str) -> Any:
        measurement = self.sampler.end_window(name)
        self.closed.append(name)
        return measurement

    def measure_idle(self, duration_s: float) -> Any:
        return self.sampler.measure_idle(duration_s)

    def assert_all_closed(self) -> None:
        assert self.opened and sorted(self.opened) == sorted(self.closed)
        for name in self.opened:  # the sampler itself says so too
            with pytest.raises(EnviroLLMError, match="no energy window"):
                self.sampler.read_window(name)


# -- a server that goes away and comes back at the same address ----------------------------------


@dataclass
class PinnedServer(ScriptedServer):
    """A scripted server bound to a port the caller picks, so that a restarted one answers at the same URL."""

    pinned_port: int = 0

    def start(self) -> PinnedServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.pinned_port))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        accept = threading.Thread(target=self._accept_loop, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self


class RestartingServer:
    """One address, served by a fresh scripted server after each `restart()`; `down()` leaves it refusing."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        self.routes = routes
        self.current: ScriptedServer | None = PinnedServer(routes).start()
        self.port = self.current.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list = []

    def down(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.requests.extend(self.current.requests)
            self.current = None

    def restart(self) -> None:
        self.down()
        self.current = PinnedServer(self.routes, pinned_port=self.port).start()

    def stop(self) -> None:
        self.down()


# -- the app served as on a LAN, with its log kept ------------------------------------------------


@dataclass
class ServedApp:
    url: str
    home: Path
    log: Path

    @property
    def db(self) -> Path:
        return self.home / "envirollm.duckdb"


@pytest.fixture(scope="module")
def served_app(tmp_path_factory) -> Iterator[ServedApp]:
    """`streamlit run` of the app on a free loopback port, its own ENVIROLLM_HOME, stdout and stderr kept in a file."""
    home = tmp_path_factory.mktemp("served-home")
    log = home.parent / f"{home.name}-streamlit.log"
    with streamlit_app(home, log, "--logger.level", "info") as url:
        yield ServedApp(url, home, log)
